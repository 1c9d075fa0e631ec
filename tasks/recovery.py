"""Task of the retrain's crash recovery: what a crashed retrain was doing, so its rerun does the same work."""

from __future__ import annotations

from prefect import task


def _flow_run_id(ref: str) -> str:
    """The flow run id in an event's resource id (``prefect.flow-run.<id>``) or a bare id."""
    return ref.removeprefix("prefect.flow-run.")


@task(name="read-crashed-retrain", tags=["recovery"])
def crashed_retrain(ref: str, workload: str) -> dict:
    """The crashed retrain ``ref``: its id, state, message and parameters, how many crashed reruns came before
    it (``depth``: 1 for a first crash, 2 when it was itself a rerun of a crashed run, ...), and the feedback
    watermark the workload's retrains have consumed since (``consumed``: a later one may have covered it)."""
    from prefect import get_client

    from flywheel.feedback.store import FeedbackStore
    from tasks.common import home

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(_flow_run_id(ref))
        depth, parent = 1, run.parameters.get("resume_of")
        while parent and depth < 100:
            depth += 1
            parent = client.read_flow_run(_flow_run_id(parent)).parameters.get("resume_of")
    return {
        "id": str(run.id),
        "name": run.name,
        "state": run.state.name if run.state else None,
        "message": run.state.message if run.state else None,
        "parameters": run.parameters,
        "depth": depth,
        "consumed": FeedbackStore(home().database_url()).consumed(workload),
    }
