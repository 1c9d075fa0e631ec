"""Notifications: a Prefect automation that posts the loop's decisions and failures to a webhook — promotions,
gate refusals and rollbacks of every workload (``flywheel.model.promoted`` / ``.refused`` / ``.rolled_back``) and
every failed or crashed flow run — through a ``CustomWebhookNotificationBlock`` (the URL is a secret of the
block, editable in the Prefect UI).

    flywheel deploy --workload configs/workloads/fraud.yaml --notify https://hooks.example.com/flywheel
"""

from __future__ import annotations

AUTOMATION = "flywheel-notify"
BLOCK = "flywheel-notify"
EVENTS = {
    "flywheel.model.promoted",
    "flywheel.model.refused",
    "flywheel.model.rolled_back",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Crashed",
}
SUBJECT = "Flywheel: {{ event.event }} ({{ event.resource.id }})"
BODY = "{{ event.event }} on {{ event.resource.id }} at {{ event.occurred }}: {{ event.payload }}"


def apply(url: str, allow_private_urls: bool = False) -> dict:
    """Create or replace the webhook block and the automation (idempotent); their ids."""
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    block = CustomWebhookNotificationBlock(
        name="flywheel",
        url=url,
        method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        allow_private_urls=allow_private_urls,
    )
    block_id = block.save(BLOCK, overwrite=True)
    for old in _existing():
        old.delete()
    automation = Automation(
        name=AUTOMATION,
        description="Post Flywheel's promotions, refusals, rollbacks and failed runs to the webhook block.",
        trigger=EventTrigger(
            expect=EVENTS,
            match={"prefect.resource.id": ["flywheel.workload.*", "prefect.flow-run.*"]},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    ).create()
    return {"automation": str(automation.id), "block": f"custom-webhook/{BLOCK}"}


def _existing() -> list:
    from prefect.automations import Automation

    try:
        found = Automation.read(name=AUTOMATION)
    except ValueError:  # none by that name
        return []
    return found if isinstance(found, list) else [found]
