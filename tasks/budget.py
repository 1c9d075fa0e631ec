"""Task of the retrain flow's daily budget: how many retrains of a workload ran in the last 24 hours, and for how
many minutes."""

from __future__ import annotations

from prefect import task


@task(name="count-retrains", tags=["budget"])
def retrain_usage(workload: str) -> dict:
    """Retrain runs of ``workload`` that started in the last 24 h (this one left out): ``runs`` that ran or run
    (completed, failed, running), and ``minutes`` of run time, crashed runs included (they used the machine)."""
    from datetime import UTC, datetime, timedelta

    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowRunFilter
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run

    now = datetime.now(UTC)
    counted = {StateType.COMPLETED, StateType.RUNNING, StateType.FAILED}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name={"any_": ["retrain"]}),
            flow_run_filter=FlowRunFilter(
                start_time={"after_": now - timedelta(days=1)},
                state={"type": {"any_": [*counted, StateType.CRASHED]}},
            ),
        )
    mine = [r for r in runs if r.parameters.get("workload") == workload and str(r.id) != str(flow_run.id)]
    seconds = 0.0
    for r in mine:
        running = r.state and r.state.type == StateType.RUNNING and r.start_time
        seconds += (now - r.start_time).total_seconds() if running else r.total_run_time.total_seconds()
    return {
        "runs": sum(1 for r in mine if r.state and r.state.type in counted),
        "minutes": seconds / 60,
    }
