"""Flow ``deploy-model``: a registered version in front of live traffic.

flywheel deploy-model VERSION [--target local|vllm|trtllm] [--mode direct|canary|shadow] [--share S]
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flywheel.core.workload import WorkloadConfig
from flywheel.serving.config import GatewaySettings, RolloutConfig
from tasks.deploy import canary, start_rollout, trtllm_options


@flow(name="deploy-model", log_prints=False)
def deploy_model(
    workload: WorkloadConfig,
    version: str,
    policy: RolloutConfig,
    target: str = "local",
    settings: GatewaySettings | None = None,
    upstream_url: str | None = None,
) -> dict:
    log = get_run_logger()
    settings = settings or GatewaySettings()
    out: dict = {"workload": workload.name, "version": str(version), "target": target, "mode": policy.mode}
    # trtllm: the options file for the GPU pool's trtllm-serve; the rollout starts once it serves the version
    if target == "trtllm":
        return {**out, **trtllm_options(workload, version, settings)}
    # 1. the version answers recent live prompts (vllm: with its adapter loaded there); nothing moves if it fails
    out["canary"] = canary(workload, version, policy, target, settings, upstream_url)
    if not out["canary"]["passed"]:
        log.warning("v%s failed its canary prompts; nothing moved", version)
        return out
    # 2. direct: champion now; canary / shadow: the gateway routes its share and decides from live feedback
    out["rollout"] = start_rollout(workload, version, policy)
    return out
