"""Prefect events: the one place that sends them (the gateway's outbox relay gets a sink from here)."""

from __future__ import annotations

import logging

log = logging.getLogger("flywheel.events")


def emit(event: str, workload: str, payload: dict) -> None:
    from prefect.events import emit_event

    emit_event(
        event=event,
        resource={"prefect.resource.id": f"flywheel.workload.{workload}", "flywheel.workload": workload},
        payload=payload,
    )


def dataset_created(summary: dict, stage: str) -> None:
    """``flywheel.dataset.created`` on resource ``flywheel.dataset.<name>`` (what a KB refresh deployment
    watches): the new Dataset's path, digest and rows. Best effort: Prefect's client sends events in the
    background and a missed one is caught by the next (every consumer is incremental)."""
    from prefect.events import emit_event

    emit_event(
        event="flywheel.dataset.created",
        resource={"prefect.resource.id": f"flywheel.dataset.{summary['name']}", "flywheel.dataset": summary["name"]},
        payload={"path": summary["path"], "digest": summary["digest"], "rows": summary["rows"], "stage": stage},
    )


class PrefectEventSink:
    """The gateway outbox's sink (``flywheel.feedback.outbox.BatchSink``): posts events to the Prefect API's
    ``POST /events`` and returns only once the server accepted them (raises otherwise, so the outbox keeps them).
    Each event keeps the id the outbox fixed: Prefect's triggers skip an id they have already seen."""

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout

    def send(self, events: list[dict]) -> None:
        import httpx
        from prefect.events import Event
        from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

        url = PREFECT_API_URL.value()
        if not url:
            raise RuntimeError("no Prefect API URL configured (PREFECT_API_URL)")
        body = [
            Event(
                id=e["event_id"],
                occurred=e["created"],
                event=e["event"],
                resource=e["resource"],
                payload=e["payload"],
            ).model_dump(mode="json")
            for e in events
        ]
        key = PREFECT_API_KEY.value()
        headers = {"Authorization": f"Bearer {key.get_secret_value() if hasattr(key, 'get_secret_value') else key}"}
        r = httpx.post(f"{url.rstrip('/')}/events", json=body, headers=headers if key else {}, timeout=self.timeout)
        r.raise_for_status()
