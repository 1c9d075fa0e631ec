"""Runs whose worker died are marked Crashed, not left Running: flow runs started by deployments send heartbeats
(``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, set to 30 s for the embedded worker; set it on any other worker), and this
automation crashes a run that stopped sending them for 90 s without finishing (Prefect's recipe for zombie
runs). The champion is untouched either way: the evaluate flow promotes inside one transaction.

    flywheel deploy --workload configs/workloads/fraud.yaml     (creates it)
"""

from __future__ import annotations

from datetime import timedelta

AUTOMATION = "flywheel-crash-zombie-runs"
HEARTBEAT_SECONDS = 30
SILENCE = timedelta(seconds=90)
MESSAGE = "marked Crashed: no heartbeat for 90 s (its worker or machine died); rerun it or let the trigger fire again"


def apply() -> str:
    """Create (or replace) the automation; its id."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    try:
        found = Automation.read(name=AUTOMATION)
        for old in found if isinstance(found, list) else [found]:
            old.delete()
    except ValueError:  # none yet
        pass
    automation = Automation(
        name=AUTOMATION,
        description="Crash flow runs that stopped sending heartbeats (their worker died).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },  # fmt: skip
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=SILENCE,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=MESSAGE)],
    ).create()
    return str(automation.id)
