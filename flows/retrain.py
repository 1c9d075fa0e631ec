"""Flow ``retrain``: what the feedback automation runs (deployment ``retrain/retrain-<workload>``).

Prefect starts it when ``flywheel.feedback.received`` events for ``flywheel.workload.<name>``
reach the workload's ``retrain.feedback_threshold``, with the firing event's feedback seq as ``watermark``.
It runs a flywheel cycle on the feedback up to that watermark, by the workload's continual policy. When a run
crashes (its worker died), the deployment's recovery trigger starts it again with ``resume_of``: the rerun takes
the crashed run's trigger and watermark and continues its training from the last checkpoint; a failed run is
retried once (a Prefect outage while a task starts fails it), continuing its own training likewise.

    flywheel retrain --workload configs/workloads/fraud.yaml     (by hand)
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed

from flows.cycle import cycle
from flywheel.core.workload import load_named
from tasks.budget import retrain_usage
from tasks.recovery import crashed_retrain

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "workloads"


# A retry (after a failure: a Prefect server outage while a task starts fails it) continues the same training run
# from its last checkpoint; the training task itself retries a crash once more (tasks/train.py).
@flow(name="retrain", log_prints=True, persist_result=True, retries=1, retry_delay_seconds=30)
def retrain(
    workload: str = "fraud",
    config_path: str | None = None,
    trigger_event: str | None = None,
    watermark: str | None = None,
    resume_of: str | None = None,
) -> dict:
    """``watermark``: the seq of the feedback whose event fired the trigger (the feedback read stops there);
    empty for a manual run (all the feedback so far). ``resume_of``: a crashed retrain (flow run id) to rerun with
    its trigger and watermark, training from its last checkpoint (the recovery trigger sets it)."""
    cfg = load_named(workload, config_path, CONFIG_DIR)
    log = get_run_logger()
    rc = cfg.retrain
    if resume_of:
        crashed = crashed_retrain(resume_of, workload)
        why = crashed["message"] or crashed["state"]
        if crashed["depth"] > rc.resume_crashed:
            msg = (
                f"retrain {crashed['name']} crashed ({why}); that is {crashed['depth']} crashes in a row and "
                f"retrain.resume_crashed is {rc.resume_crashed}: not rerun"
            )
            log.error(msg)
            return Failed(message=msg)
        trigger_event, watermark = crashed["parameters"].get("trigger_event"), crashed["parameters"].get("watermark")
        mark = int(watermark) if watermark and str(watermark).strip().isdigit() else None
        if mark is not None and crashed["consumed"] >= mark:
            msg = f"crashed retrain {crashed['name']}'s feedback (up to {mark}) was trained on by a later retrain"
            log.info(msg)
            return Cancelled(message=msg)
        log.warning("rerunning crashed retrain %s (%s)", crashed["name"], why)
        resume_of = crashed["id"]
    else:  # (a rerun finishes a run the budget counted already)
        if rc.max_runs_per_day is not None or rc.max_minutes_per_day is not None:
            refused = rc.refusal(workload, retrain_usage(workload))
            if refused:
                log.warning(refused)
                return Cancelled(message=refused)
        if (flow_run.run_count or 1) > 1:
            resume_of = flow_run.id  # this run's retry: its own training run, from its last checkpoint
    mark = int(watermark) if watermark and str(watermark).strip().isdigit() else None
    log.info(
        "retraining %s (trigger event %s, feedback up to %s)",
        workload,
        trigger_event or "none: manual run",
        mark if mark is not None else "the latest",
    )
    return cycle(cfg, rc.include_feedback, trigger_event or "manual", mark, resume_of)
