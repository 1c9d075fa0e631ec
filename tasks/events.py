"""Prefect events: the one place that emits them (the domain gets an EventSink instead)."""

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


class PrefectEventSink:
    """EventSink for the gateway: forwards domain events to the Prefect API."""

    def emit(self, event: str, resource: dict, payload: dict) -> None:
        from prefect.events import emit_event

        if emit_event(event=event, resource=resource, payload=payload) is None:
            log.warning("event %s was not emitted (no Prefect API configured?)", event)

    def flush(self) -> None:
        from prefect.events.worker import EventsWorker

        try:
            EventsWorker.drain_all(timeout=10)
        except Exception:  # noqa: BLE001 - best effort at shutdown
            log.exception("could not flush events")
