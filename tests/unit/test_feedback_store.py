"""Feedback store: interactions, feedback, and the SFT rows derived from them."""

import pytest
from sqlalchemy import text

from flywheel.core.errors import UnknownInteraction
from flywheel.feedback.store import FeedbackStore

SYS = {"role": "system", "content": "triage"}


def _log(store, user, response):
    return store.log_interaction(
        workload="fraud",
        model="fraud",
        model_version="2",
        latency_ms=12.5,
        messages=[SYS, {"role": "user", "content": user}],
        response=response,
    )


def test_interactions_feedback_and_training_rows(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    a = _log(store, "txn A", "FRAUD: abroad")
    b = _log(store, "txn B", "FRAUD: velocity")
    c = _log(store, "txn C", "LEGIT: normal")
    d = _log(store, "txn D", "LEGIT: normal")
    store.add_feedback(a, 1)
    store.add_feedback(b, -1, correction="LEGIT: normal grocery purchase")
    store.add_feedback(c, -1)  # no correction: nothing to learn for SFT
    row = store.get(a)
    assert row["rating"] == 1 and row["messages"][1]["content"] == "txn A" and row["model_version"] == "2"
    assert store.counts("fraud") == {"interactions": 4, "feedback": 3, "positive": 1, "negative": 2, "corrections": 1}
    rows = store.training_rows("fraud")
    assert [(r["text"], r["answer"], r["label"]) for r in rows] == [
        ("txn A", "FRAUD: abroad", "FRAUD"),
        ("txn B", "LEGIT: normal grocery purchase", "LEGIT"),
    ]
    assert d not in {r["id"][3:] for r in rows}


def test_bad_feedback_is_rejected(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    iid = _log(store, "x", "LEGIT: y")
    with pytest.raises(UnknownInteraction):
        store.add_feedback("ix-missing", 1)
    with pytest.raises(ValueError, match="rating"):
        store.add_feedback(iid, 5)
    with pytest.raises(ValueError, match="needs a rating"):
        store.add_feedback(iid, None)


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    with store.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_a_database_from_an_older_release_gets_the_new_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = FeedbackStore(url)
    old_id = old.log_interaction(workload="w", model="w", messages=[], response="LEGIT: ok", latency_ms=1.0)
    with old.engine.begin() as c:  # what the first release created: no token columns
        c.execute(text("ALTER TABLE interactions DROP COLUMN prompt_tokens"))
        c.execute(text("ALTER TABLE interactions DROP COLUMN completion_tokens"))
    store = FeedbackStore(url)
    iid = store.log_interaction(
        workload="w", model="w", messages=[], response="LEGIT: ok", latency_ms=1.0, prompt_tokens=7, completion_tokens=3
    )
    assert store.get(iid)["prompt_tokens"] == 7 and store.get(old_id)["prompt_tokens"] is None
    assert store.usage() == {"default": {"requests": 2, "prompt_tokens": 7, "completion_tokens": 3}}
