"""Flow ``retrain``: what the feedback automation runs (deployment ``retrain/retrain-<workload>``).

Prefect starts it when ``flywheel.feedback.received`` events for ``flywheel.workload.<name>``
reach the workload's ``retrain.feedback_threshold``. It runs a flywheel cycle whose SFT data
includes the corrected and approved production answers.

    flywheel retrain --workload configs/workloads/fraud.yaml     (by hand)
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.cycle import cycle
from flywheel.core.errors import ConfigError
from flywheel.core.workload import load_workload

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "workloads"


@flow(name="retrain", log_prints=True, persist_result=True)
def retrain(workload: str = "fraud", config_path: str | None = None, trigger_event: str | None = None) -> dict:
    cfg = load_workload(config_path or CONFIG_DIR / f"{workload}.yaml")
    if cfg.name != workload:
        raise ConfigError(f"config {config_path} is workload {cfg.name!r}, not {workload!r}")
    get_run_logger().info("retraining %s (trigger event %s)", workload, trigger_event or "none: manual run")
    return cycle(cfg, include_feedback=cfg.retrain.include_feedback, trigger=trigger_event or "manual")
