"""Tasks of the redteam flow: garak against the gateway, the benign set, the gateway's own log, the report."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from flywheel.feedback.store import FeedbackStore
from flywheel.guard import redteam
from tasks.common import home, logger, registry


@task(name="garak-scan", tags=["redteam"], retries=0)
def garak_scan(garak: str, gateway: str, model: str, probes: list[str], out_dir: str, tenant: str, **kw) -> dict:
    report = redteam.run_garak(garak, gateway, model, probes, Path(out_dir), tenant, **kw)
    return {"report": str(report), "garak": redteam.garak_summary(report)}


@task(name="gateway-endpoint", tags=["redteam"])
def gateway_endpoint(gateway: str, api_key: str) -> tuple[str, str]:
    """(URL, API key) of the gateway: a URL as given, or ``block:<name>`` (an OpenAI endpoint block)."""
    from blocks.endpoints import resolve_endpoint

    url, _, key = resolve_endpoint(gateway)
    return url or gateway, key or api_key


@task(name="benign-set", tags=["redteam"])
def benign_set(gateway: str, model: str, tenant: str, api_key: str = "none") -> int:
    return redteam.send_benign(gateway, model, tenant, api_key=api_key)


@task(name="gateway-outcomes", tags=["redteam"])
def outcomes(tenant: str, expected: int = 0, benign: bool = False) -> dict:
    """Block rate, blocks per rail and latency of one tenant's requests, from the gateway's interaction log
    (``benign``: per family of the benign set too)."""
    import json

    rows = redteam.wait_logged(FeedbackStore(home().database_url()), tenant, expected)
    if not benign:
        return redteam.block_stats(rows)
    families = {row["text"]: row["family"] for row in map(json.loads, redteam.BENIGN.open())}
    return redteam.block_stats(rows, families)


@task(name="probe-outcomes", tags=["redteam"])
def probe_outcomes(report: str, tenant: str) -> dict:
    """Per garak probe: which rail blocked its prompts (joined with the gateway's log on the prompt text)."""
    rows = FeedbackStore(home().database_url()).list(tenant=tenant)
    return redteam.probe_blocks(Path(report), rows)


@task(name="redteam-report", tags=["redteam", "registry"])
def publish(result: dict) -> str:
    """The report as a Prefect artifact and an MLflow run (metrics: block and false-positive rates)."""
    md = redteam.markdown(result)
    create_markdown_artifact(md, key=f"{result['model']}-redteam", description="Red team of the gateway")
    reg = registry()
    reg.mlflow.set_experiment(f"{result['model']}-redteam")
    with reg.mlflow.start_run(run_name=f"redteam-{result['tenant']}") as run:
        reg.mlflow.log_params({"probes": ",".join(result["probes"]), "gateway": result["gateway"]})
        a, b = result["attacks"], result["benign"]
        reg.mlflow.log_metrics(
            {"attack_block_rate": a["block_rate"] or 0.0, "benign_false_positive_rate": b["block_rate"] or 0.0,
             "attack_requests": a["requests"], "benign_requests": b["requests"]}
        )  # fmt: skip
        for probe, p in result["garak"].items():
            for det, d in p["detectors"].items():
                if d["attack_success_rate"] is not None:
                    reg.mlflow.log_metric(f"asr.{probe}.{det}".replace(":", "_"), d["attack_success_rate"])
        reg.mlflow.log_text(md, "redteam.md")
        reg.mlflow.log_dict(result, "redteam.json")
    logger().info(
        "attacks blocked %.1f%% of %d; benign blocked %.1f%% of %d",
        100 * (a["block_rate"] or 0), a["requests"], 100 * (b["block_rate"] or 0), b["requests"],
    )  # fmt: skip
    return run.info.run_id
