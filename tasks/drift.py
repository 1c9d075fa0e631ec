"""Task of the drift-check flow: the workload's live traffic, recent window vs the one before; an event on drift."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from flywheel.core.workload import WorkloadConfig
from flywheel.feedback.drift import detect
from flywheel.feedback.store import FeedbackStore
from tasks.common import home, logger
from tasks.events import emit

DRIFT_EVENT = "flywheel.drift.detected"


@task(name="check-drift", tags=["drift"], retries=2, retry_delay_seconds=30)
def check_drift(workload: WorkloadConfig) -> dict:
    """Compare the windows; on drift emit ``flywheel.drift.detected`` (resource ``flywheel.workload.<name>``) with
    the signals that moved, which the retrain deployment's drift trigger answers."""
    report = detect(FeedbackStore(home().database_url()), workload.name, workload.drift)
    rows = ["| signal | before | after | change | p | drift |", "|---|---|---|---|---|---|"]
    for s in report["signals"]:
        if s["judged"]:
            rows.append(f"| {s['signal']} | {s['before']} (n={s['n_before']}) | {s['after']} (n={s['n_after']}) | "
                        f"{s['change']:+.3f} | {s['p_value']} | {'**yes**' if s['drift'] else 'no'} |")  # fmt: skip
        else:
            rows.append(f"| {s['signal']} | n={s['n_before']} | n={s['n_after']} | — | — | not judged: {s['reason']} |")
    create_markdown_artifact("\n".join(rows), key=f"drift-{workload.name}", description="Drift check")
    drifted = [s for s in report["signals"] if s.get("drift")]
    logger().info("drift check %s: %s", workload.name, [s["signal"] for s in drifted] or "no drift")
    if drifted:
        emit(DRIFT_EVENT, workload.name, {"signals": drifted, "windows": report["windows"]})
    return report
