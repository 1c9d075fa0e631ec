"""Flow ``retrain``: what the feedback automation runs (deployment ``retrain/retrain-<workload>``).

Prefect starts it when ``flywheel.feedback.received`` events for ``flywheel.workload.<name>``
reach the workload's ``retrain.feedback_threshold``, with the firing event's feedback seq as ``watermark``.
It runs a flywheel cycle on the feedback up to that watermark, by the workload's continual policy.

    flywheel retrain --workload configs/workloads/fraud.yaml     (by hand)
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.states import Cancelled

from flows.cycle import cycle
from flywheel.core.workload import load_named
from tasks.budget import retrains_in_last_day

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "workloads"


@flow(name="retrain", log_prints=True, persist_result=True)
def retrain(
    workload: str = "fraud",
    config_path: str | None = None,
    trigger_event: str | None = None,
    watermark: str | None = None,
) -> dict:
    """``watermark``: the seq of the feedback whose event fired the trigger (the feedback read stops there);
    empty for a manual run (all the feedback so far)."""
    cfg = load_named(workload, config_path, CONFIG_DIR)
    budget = cfg.retrain.max_runs_per_day
    if budget is not None:
        used = retrains_in_last_day(workload)
        if used >= budget:
            msg = f"daily budget: {used} of {budget} retrains of {workload} in the last 24 h; this one is not started"
            get_run_logger().warning(msg)
            return Cancelled(message=msg)
    mark = int(watermark) if watermark and watermark.strip().isdigit() else None
    get_run_logger().info(
        "retraining %s (trigger event %s, feedback up to %s)",
        workload,
        trigger_event or "none: manual run",
        mark if mark is not None else "the latest",
    )
    return cycle(cfg, cfg.retrain.include_feedback, trigger_event or "manual", mark)
