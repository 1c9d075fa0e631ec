"""Runs whose worker died are marked Crashed, not left Running: flow runs started by deployments send heartbeats
(``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, set to 30 s for the embedded worker; set it on any other worker), and this
automation crashes a run that stopped sending them for 90 s (``flywheel deploy --crash-after``) without finishing
(Prefect's recipe for zombie runs). The champion is untouched either way: the evaluate flow promotes inside one
transaction; a crashed retrain is rerun from its last checkpoint by the retrain deployment's recovery trigger.

    flywheel deploy --workload configs/workloads/fraud.yaml     (creates it)
"""

from __future__ import annotations

from datetime import timedelta

AUTOMATION = "flywheel-crash-zombie-runs"
HEARTBEAT_SECONDS = 30
SILENCE_SECONDS = 90


def message(silence_s: int) -> str:
    return (
        f"marked Crashed: no heartbeat for {silence_s} s (its worker or machine died); a retrain is rerun from its "
        "last checkpoint (retrain.resume_crashed), other runs: rerun it or let the trigger fire again"
    )


def apply(silence_s: int = SILENCE_SECONDS) -> str:
    """Create (or replace) the automation: a run silent for ``silence_s`` seconds (more than the heartbeat
    interval) is Crashed; its id."""
    if silence_s <= HEARTBEAT_SECONDS:
        raise ValueError(f"crash_after ({silence_s} s) must exceed the heartbeat interval ({HEARTBEAT_SECONDS} s)")
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
            within=timedelta(seconds=silence_s),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=message(silence_s))],
    ).create()
    return str(automation.id)
