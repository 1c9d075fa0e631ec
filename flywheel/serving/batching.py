"""Dynamic batching for the local engine: one worker thread owns the model; requests queue, and the worker
takes the first waiting request plus every compatible one that arrives within ``wait_ms`` (up to
``max_batch_size``) into one ``generate`` call. While the model is busy, requests pile up and form the next
batch by themselves; ``wait_ms`` only delays a request that finds the engine idle.

Each request is a :class:`Job`: the HTTP side reads its events (text deltas, then the ``Generation``) as the
worker produces them, so batched requests still stream token by token. A client that goes away cancels its
job; the batch goes on without it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

log = logging.getLogger("flywheel.gateway")

_DONE = object()


class Job:
    def __init__(self, req):
        self.req = req
        self.cancelled = False
        self._events: queue.Queue = queue.Queue()

    def put(self, item) -> None:
        """A text delta, the final ``Generation``, or an exception (the batch failed)."""
        self._events.put(item)

    def events(self) -> Iterator:
        """Deltas (``str``) as they come, then the ``Generation`` (the one item that is not a string); an engine
        failure is raised here."""
        try:
            while True:
                item = self._events.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if not isinstance(item, str):
                    return
        finally:
            self.cancelled = True  # a closed stream (client gone) stops this job's decoding


class Batcher:
    def __init__(self, run: Callable[[list[Job]], None], max_batch_size: int = 8, wait_ms: float = 5.0, name=""):
        self.run, self.max_batch_size, self.wait_s = run, max(1, max_batch_size), max(0.0, wait_ms) / 1000
        self._q: queue.Queue = queue.Queue()
        self._aside: deque[Job] = deque()  # taken from the queue but not compatible with the batch being formed
        self._stopped = False
        self.batches = 0
        self.batched_requests = 0
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, req) -> Iterator:
        if self._stopped:
            raise RuntimeError("the engine is closed")
        job = Job(req)
        self._q.put(job)
        return job.events()

    def depth(self) -> int:
        """Requests waiting for a batch (not counting the one running)."""
        return self._q.qsize() + len(self._aside)

    def stop(self) -> None:
        """Finish what is queued, then end the worker (a replaced model version drains this way)."""
        self._stopped = True
        self._q.put(_DONE)

    def _next(self, timeout: float | None):
        if self._aside:
            return self._aside.popleft()
        try:
            return self._q.get(timeout=timeout) if timeout is None or timeout > 0 else self._q.get_nowait()
        except queue.Empty:
            return None

    def _form(self, first: Job) -> list[Job]:
        batch, key = [first], first.req.batch_key()
        if key is None:
            return batch
        deadline = time.monotonic() + self.wait_s
        aside = []
        while len(batch) < self.max_batch_size:
            job = self._next(max(0.0, deadline - time.monotonic()))
            if job is None:
                break
            if job is _DONE:
                self._q.put(_DONE)  # seen again after this batch
                break
            if job.cancelled:
                continue
            (batch if job.req.batch_key() == key else aside).append(job)
        self._aside.extend(aside)
        return batch

    def _loop(self) -> None:
        while True:
            first = self._next(None)
            if first is _DONE:
                if self._aside or not self._q.empty():
                    self._q.put(_DONE)  # drain what is still queued first
                    continue
                return
            if first.cancelled:
                continue
            batch = self._form(first)
            self.batches += 1
            self.batched_requests += len(batch)
            try:
                self.run(batch)
            except BaseException:  # noqa: BLE001 - each job has its exception; the worker serves the next batch
                log.exception("a batch of %d requests failed", len(batch))
