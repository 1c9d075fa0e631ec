"""Flow ``redteam``: garak's jailbreak and prompt-injection probes and the benign set against a running gateway;
block rate, false positives and latency per rail, as a Prefect artifact and an MLflow run.

flywheel redteam [--gateway http://127.0.0.1:8088] [--model fraud] [--probes dan,promptinject,...]
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow

from flywheel.guard.redteam import DEFAULT_PROBES
from tasks.redteam import benign_set, garak_scan, gateway_endpoint, outcomes, probe_outcomes, publish


@flow(name="redteam", log_prints=False)
def redteam(
    gateway: str = "http://127.0.0.1:8088",
    model: str = "fraud",
    probes: list[str] | None = None,
    garak: str = ".venv-garak/bin/garak",
    out_dir: str | None = None,
    generations: int = 1,
    api_key: str = "none",
) -> dict:
    probes = probes or DEFAULT_PROBES
    gateway, api_key = gateway_endpoint(gateway, api_key)  # a URL, or block:<name>
    run = f"redteam-{int(time.time())}"
    out = Path(out_dir or Path(".flywheel") / "redteam" / run)
    # 1. garak as a real client of the gateway; its requests are logged under the tenant `<run>`
    scan = garak_scan(garak, gateway, model, probes, str(out), run, generations=generations, api_key=api_key)
    # 2. the benign set under `<run>-benign`
    sent = benign_set(gateway, model, f"{run}-benign", api_key)
    # 3. what the gateway did with each, from its own log
    result = {
        "gateway": gateway, "model": model, "probes": probes, "tenant": run, "report": scan["report"],
        "garak": scan["garak"], "attacks": outcomes(run), "benign": outcomes(f"{run}-benign", sent, benign=True),
        "by_probe": probe_outcomes(scan["report"], run),
    }  # fmt: skip
    result["mlflow_run"] = publish(result)
    return result
