"""Task of the retrain flow's daily budget: how many retrains of a workload ran in the last 24 hours."""

from __future__ import annotations

from prefect import task


@task(name="count-retrains", tags=["budget"])
def retrains_in_last_day(workload: str) -> int:
    """Retrain runs of ``workload`` that started in the last 24 h and ran (or run): this one left out."""
    from datetime import UTC, datetime, timedelta

    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowRunFilter
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run

    since = datetime.now(UTC) - timedelta(days=1)
    states = [StateType.COMPLETED, StateType.RUNNING, StateType.FAILED]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name={"any_": ["retrain"]}),
            flow_run_filter=FlowRunFilter(start_time={"after_": since}, state={"type": {"any_": states}}),
        )
    return sum(1 for r in runs if r.parameters.get("workload") == workload and str(r.id) != str(flow_run.id))
