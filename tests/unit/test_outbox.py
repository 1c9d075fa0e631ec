"""The outbox: feedback and its event commit together; the relay delivers at least once, keeps everything through
an outage, and retries on its own with backoff."""

import time

from flywheel.feedback.outbox import OutboxRelay
from flywheel.feedback.store import FeedbackStore


class FlakySink:
    def __init__(self):
        self.down = True
        self.received = []
        self.calls = 0

    def send(self, events):
        self.calls += 1
        if self.down:
            raise ConnectionError("events API down")
        self.received += events


def _feedback(store, n):
    for i in range(n):
        iid = store.log_interaction(
            workload="fraud", model="fraud", messages=[{"role": "user", "content": f"t{i}"}], response="LEGIT: ok",
            latency_ms=1.0,
        )  # fmt: skip
        store.add_feedback(iid, 1, emit=True)


def test_an_events_outage_delays_delivery_and_loses_nothing(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    sink = FlakySink()
    relay = OutboxRelay(store, sink, min_backoff_s=0.01, max_backoff_s=0.05, poll_s=0.05).start()
    _feedback(store, 5)
    relay.wake()
    deadline = time.monotonic() + 10
    while sink.calls < 3:  # it keeps retrying on its own
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pending = store.pending_events()
    assert [e["payload"]["feedback_seq"] for e in pending] == [1, 2, 3, 4, 5] and pending[0]["attempts"] >= 2
    assert "events API down" in pending[0]["last_error"]
    ids = [e["event_id"] for e in pending]
    sink.down = False
    while store.outbox_counts()["pending"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    relay.stop()
    assert [e["event_id"] for e in sink.received] == ids  # each once, in order, with the id fixed at write time
    assert store.outbox_counts() == {"events": 5, "delivered": 5, "pending": 0}


def test_a_restarted_relay_delivers_what_a_killed_one_left(tmp_path):
    """Events written before a crash are in the database; a new store and relay (a restarted gateway) send them."""
    url = f"sqlite:///{tmp_path / 'fb.db'}"
    _feedback(FeedbackStore(url), 3)  # acknowledged, never delivered: the process died
    sink = FlakySink()
    sink.down = False
    assert OutboxRelay(FeedbackStore(url), sink).deliver_once() == 3
    assert [e["payload"]["feedback_seq"] for e in sink.received] == [1, 2, 3]


def test_feedback_without_emit_writes_no_event_and_a_changed_one_counts_again(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    iid = store.log_interaction(workload="w", model="w", messages=[], response="LEGIT: ok", latency_ms=1.0)
    store.add_feedback(iid, 1)
    assert store.outbox_counts()["events"] == 0
    first = store.add_feedback(iid, -1, "FRAUD: x", emit=True)
    same = store.add_feedback(iid, -1, "FRAUD: x", emit=True)
    changed = store.add_feedback(iid, -1, "FRAUD: y", emit=True)
    assert (first["duplicate"], same["duplicate"], changed["duplicate"]) == (False, True, False)
    assert same["feedback_seq"] == first["feedback_seq"] < changed["feedback_seq"]
    assert store.outbox_counts()["events"] == 2
