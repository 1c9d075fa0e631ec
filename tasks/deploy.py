"""Tasks of the deploy-model flow: the trtllm options file, the canary prompt set, the rollout or promotion."""

from __future__ import annotations

from prefect import task

from flywheel.core.workload import WorkloadConfig
from flywheel.feedback.store import FeedbackStore
from flywheel.serving import deploy, rollout
from flywheel.serving.config import GatewaySettings, RolloutConfig
from tasks.common import home, logger, registry


@task(name="trtllm-options", tags=["deploy"])
def trtllm_options(workload: WorkloadConfig, version: str, settings: GatewaySettings) -> dict:
    reg = registry()
    return deploy.write_trtllm_options(reg, reg.version(workload.name, version), workload, home(), settings)


@task(name="canary-prompts", tags=["deploy"])
def canary(
    workload: WorkloadConfig, version: str, policy: RolloutConfig, target: str, settings: GatewaySettings,
    upstream_url: str | None,
) -> dict:  # fmt: skip
    """The version answers the workload's most recent live prompts (locally, or through vLLM with its adapter
    loaded); passed when none fails and enough keep the answer contract. ``upstream_url`` may name an OpenAI
    endpoint block (``block:<name>``: its URL and API key)."""
    from blocks.endpoints import resolve_endpoint

    h, reg = home(), registry()
    ref = reg.version(workload.name, version)
    upstream_url, _, key = resolve_endpoint(upstream_url)
    engine = deploy.engine_for(reg, ref, workload, h.models, target, settings, upstream_url, key)
    try:
        prompts = deploy.canary_prompts(FeedbackStore(h.database_url()), workload.name, policy.canary_prompts)
        result = deploy.run_canary(engine, prompts, workload.labels, policy)
    finally:
        engine.close()
    logger().info(
        "v%s canary: %s/%s answered, %.0f%% well-formed -> %s",
        version, result["answered"], result["prompts"], 100 * result["format_rate"],
        "passed" if result["passed"] else "FAILED",
    )  # fmt: skip
    return result


@task(name="start-rollout", tags=["deploy", "registry"])
def start_rollout(workload: WorkloadConfig, version: str, policy: RolloutConfig) -> dict:
    """direct: the version becomes the champion now; canary / shadow: the gateway takes it from here."""
    from flywheel.evaluation.promotion import promote

    reg = registry()
    if policy.mode == "direct":
        promote(reg, workload.name, version, "deploy", "canary prompts passed")
        return {"mode": "direct", "champion": str(version)}
    return rollout.start(reg, workload.name, version, policy.mode, policy.share).__dict__
