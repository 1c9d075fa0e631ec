"""Flow ``drift-check``: the live traffic of a workload watched for drift (deployment
``drift-check/drift-<workload>``, on the workload's ``drift.cron``); on drift it emits
``flywheel.drift.detected``, and the retrain deployment's drift trigger starts a retrain.

    flywheel drift --workload configs/workloads/fraud.yaml [--json]
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flywheel.core.errors import ConfigError
from flywheel.core.workload import load_workload
from tasks.drift import check_drift

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "workloads"


@flow(name="drift-check", log_prints=False)
def drift_check(workload: str = "fraud", config_path: str | None = None) -> dict:
    cfg = load_workload(config_path or CONFIG_DIR / f"{workload}.yaml")
    if cfg.name != workload:
        raise ConfigError(f"config {config_path} is workload {cfg.name!r}, not {workload!r}")
    return check_drift(cfg)
