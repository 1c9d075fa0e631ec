"""Flow ``drift-check``: the live traffic of a workload watched for drift (deployment
``drift-check/drift-<workload>``, on the workload's ``drift.cron``); on drift it emits
``flywheel.drift.detected``, and the retrain deployment's drift trigger starts a retrain.

    flywheel drift --workload configs/workloads/fraud.yaml [--json]
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flywheel.core.workload import load_named
from tasks.drift import check_drift

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "workloads"


@flow(name="drift-check", log_prints=False)
def drift_check(workload: str = "fraud", config_path: str | None = None) -> dict:
    cfg = load_named(workload, config_path, CONFIG_DIR)
    return check_drift(cfg)
