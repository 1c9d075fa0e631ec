"""Flow ``loop-report``: the loop's story after several cycles — the base model and each cycle's candidate on
the same golden set, with intervals, per label and general ability — as Markdown + PNG, a Prefect artifact and
an MLflow run. ``flywheel demo`` runs it at the end."""

from __future__ import annotations

from prefect import flow

from flywheel.core.workload import WorkloadConfig
from tasks.evaluate import publish_loop_report


@flow(name="loop-report", log_prints=True)
def loop_report(workload: WorkloadConfig, cycles: list[dict]) -> dict:
    """``cycles``: ``{"name", "summary"}`` per cycle, in order (a cycle's summary is what flow ``flywheel``
    returns)."""
    return publish_loop_report(workload, cycles)
