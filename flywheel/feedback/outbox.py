"""The outbox relay: delivers the store's pending events (``FeedbackStore.pending_events``) to an event sink, at
least once, oldest first.

A feedback row and its event are committed in one transaction, so an acknowledged feedback always has its event
in the outbox. The relay sends pending events in batches; a sink that raises (the events API is down) leaves
them pending, and the relay retries with a growing pause (``min_backoff_s`` doubling up to ``max_backoff_s``).
Each event carries the id fixed when it was written, so a receiver that has seen it (Prefect's triggers keep
seen ids) counts it once. A gateway killed between send and ``mark_delivered`` sends that batch again on start.

    relay = OutboxRelay(store, sink)    # sink.send([...]) raises on failure
    relay.start(); relay.wake()         # wake: new feedback was written
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger("flywheel.outbox")


class BatchSink(Protocol):
    def send(self, events: list[dict]) -> None:
        """Deliver ``events`` (``event, event_id, resource, payload, created``) or raise."""


class OutboxRelay:
    def __init__(
        self,
        store,
        sink: BatchSink,
        batch: int = 100,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        poll_s: float = 5.0,
    ):
        self.store, self.sink, self.batch = store, sink, batch
        self.min_backoff_s, self.max_backoff_s, self.poll_s = min_backoff_s, max_backoff_s, poll_s
        self.delivered = 0
        self.failures = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deliver_once(self) -> int:
        """Send what is pending now; returns how many were delivered (raises what the sink or store raised)."""
        sent = 0
        while rows := self.store.pending_events(self.batch):
            seqs = [r["seq"] for r in rows]
            try:
                self.sink.send(rows)
            except Exception as e:
                self.store.mark_failed(seqs, f"{type(e).__name__}: {e}")
                raise
            self.store.mark_delivered(seqs)
            sent += len(rows)
            self.delivered += len(rows)
        return sent

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> OutboxRelay:
        self._thread = threading.Thread(target=self._loop, name="outbox-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """One last delivery attempt, then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        backoff = 0.0
        while True:
            try:
                self.deliver_once()
                backoff, self.last_error = 0.0, None
            except Exception as e:  # noqa: BLE001 - an outage: keep the events, try again later
                self.failures += 1
                self.last_error = f"{type(e).__name__}: {e}"
                backoff = min(self.max_backoff_s, max(self.min_backoff_s, backoff * 2))
                log.warning("outbox: delivery failed (%s); retrying in %.1f s", self.last_error, backoff)
            if self._stop.is_set():
                return
            self._wake.wait(backoff or self.poll_s)
            self._wake.clear()
