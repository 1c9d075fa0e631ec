"""Drift from the feedback store: a real SQLite store with rows back-dated into the baseline window; each signal
drifts only when it moved past its bound and past chance, and a thin window is not judged."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from flywheel.feedback.config import DriftConfig
from flywheel.feedback.drift import detect, one_sided_p
from flywheel.feedback.store import FeedbackStore, interactions

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _fill(store, n, positive=0, corrected=0, blocked=0, hours_ago=1.0, rated=True):
    """``n`` interactions logged ``hours_ago``: ``positive`` rated +1, ``corrected`` corrected, the rest rated -1
    (unrated with ``rated`` False); ``blocked`` of them refused by a rail."""
    for i in range(n):
        flags = ["blocked:injection:rule:override"] if i < blocked else []
        iid = store.log_interaction(workload="fraud", model="fraud", messages=[{"role": "user", "content": f"t{i}"}],
                                    response="LEGIT: ok", latency_ms=1.0, guard_flags=flags)  # fmt: skip
        if i < positive:
            store.add_feedback(iid, 1, None, None)
        elif i < positive + corrected:
            store.add_feedback(iid, -1, "FRAUD: velocity", None)
        elif rated:
            store.add_feedback(iid, -1, None, None)
        with store.engine.begin() as c:
            c.execute(update(interactions).where(interactions.c.id == iid).values(ts=NOW - timedelta(hours=hours_ago)))


@pytest.fixture
def store(tmp_path):
    return FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")


def test_a_fall_in_positive_feedback_and_live_accuracy_is_drift(store):
    _fill(store, 60, positive=54, corrected=3, hours_ago=48)  # baseline: 90 % positive, 3 corrections
    _fill(store, 60, positive=36, corrected=20, hours_ago=2)  # the last day: 60 %, 20 corrections
    report = detect(store, "fraud", DriftConfig(), now=NOW)
    sig = {s["signal"]: s for s in report["signals"]}
    assert report["drift"] is True
    assert sig["positive_rate"]["before"] == 0.9 and sig["positive_rate"]["after"] == 0.6
    assert sig["positive_rate"]["drift"] and sig["positive_rate"]["p_value"] < 0.001
    assert sig["live_accuracy"]["drift"] and sig["live_accuracy"]["change"] < -0.1
    assert sig["guard_block_rate"]["judged"] and not sig["guard_block_rate"]["drift"]  # no rail refused any
    assert report["windows"]["before"]["rated"] == 60 and report["windows"]["after"]["rated"] == 60


def test_a_small_move_or_a_thin_window_is_not_drift(store):
    _fill(store, 60, positive=54, hours_ago=48)
    _fill(store, 60, positive=52, hours_ago=2)  # 90 % -> 87 %: inside the bound
    report = detect(store, "fraud", DriftConfig(), now=NOW)
    assert report["drift"] is False
    assert not {s["signal"]: s for s in report["signals"]}["positive_rate"]["drift"]
    thin = detect(store, "fraud", DriftConfig(min_rated=100), now=NOW)
    assert all(not s["judged"] for s in thin["signals"][:2]) and thin["drift"] is False
    # a 15-point fall on 10 answers a window is past the bound but not past chance
    assert one_sided_p(9, 10, 7, 10) > 0.05


def test_a_rise_in_guard_blocks_is_drift(store):
    _fill(store, 100, blocked=2, hours_ago=48, rated=False)
    _fill(store, 100, blocked=15, hours_ago=2, rated=False)
    report = detect(store, "fraud", DriftConfig(), now=NOW)
    sig = {s["signal"]: s for s in report["signals"]}
    assert sig["guard_block_rate"]["drift"] and sig["guard_block_rate"]["after"] == 0.15
    assert not sig["positive_rate"]["judged"]  # nothing rated
    assert report["drift"] is True
