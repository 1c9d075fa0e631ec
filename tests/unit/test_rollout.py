"""Canary and shadow rollouts: the rules (``rollout.decide``), the scoring of live and shadow answers, and the
whole path through the gateway's service with the real MLflow registry and fake engines (a test needs an
engine that is right or wrong on purpose): a worse canary is rolled back by itself, with its event; a good one
takes all traffic; a shadow is judged by the feedback on the answers it shadowed."""

import json

import pytest

from flywheel.feedback.store import FeedbackStore
from flywheel.registry.mlflow_registry import Registry
from flywheel.serving import rollout
from flywheel.serving.config import CacheConfig, GatewaySettings, RolloutConfig
from flywheel.serving.engine import Generation, GenRequest
from flywheel.serving.service import GatewayService, Served
from flywheel.serving.tenants import Tenant
from tests.fake_engine import FakeEngine

LABELS = ["FRAUD", "LEGIT"]


def stats(judged, correct, blocks=0.0, p95=100.0):
    return {
        "requests": judged,
        "judged": judged,
        "correct": correct,
        "accuracy": correct / judged if judged else None,
        "guard_block_rate": blocks,
        "p95_latency_ms": p95,
    }


def test_the_rules():
    cfg = RolloutConfig(min_rated=20, max_accuracy_drop=0.05, max_guard_block_rate=0.05, max_latency_ratio=3)
    champ = stats(40, 32)  # 0.80
    assert rollout.decide(champ, stats(19, 0), cfg)[0] == "continue"  # too few judged answers to say
    assert rollout.decide(champ, stats(20, 14), cfg) == (
        "rollback",
        ["live accuracy 0.700 < champion 0.800 - 0.05 (20 vs 40 judged)"],
    )
    assert rollout.decide(champ, stats(20, 16), cfg)[0] == "promote"  # 0.80: not worse
    assert rollout.decide(champ, stats(20, 20, blocks=0.1), cfg)[1] == ["guard blocks 0.100 > 0.05"]
    assert "p95 latency 301 ms > 3.0 x champion's 100 ms" in rollout.decide(champ, stats(20, 20, p95=301), cfg)[1]


def _row(iid, version, response, rating=None, correction=None, flags=(), ts="2026-12-03T10:00:00"):
    return {
        "id": iid, "model_version": version, "response": response, "rating": rating, "correction": correction,
        "guard_flags": list(flags), "latency_ms": 10.0, "ts": ts,
    }  # fmt: skip


def test_shadow_answers_are_judged_by_the_feedback_on_the_live_answer():
    rows = [
        _row("a", "1", "LEGIT: ok", rating=1),  # approved: the shadow that said LEGIT was right
        _row("a-shadow", "2", "LEGIT: fine", flags=["shadow"]),
        _row("b", "1", "LEGIT: ok", rating=-1, correction="FRAUD: velocity"),  # the shadow said FRAUD: right
        _row("b-shadow", "2", "FRAUD: 8 in an hour", flags=["shadow"]),
        _row("c", "1", "FRAUD: x", rating=1),  # approved FRAUD; the shadow said LEGIT: wrong
        _row("c-shadow", "2", "LEGIT: no rule", flags=["shadow"]),
        _row("d", "1", "FRAUD: x", rating=-1),  # wrong live answer, no correction: says nothing
        _row("d-shadow", "2", "LEGIT: no rule", flags=["shadow"]),
        _row("e-shadow", "2", "LEGIT", flags=["shadow"]),  # its live answer got no feedback
        _row("old", "2", "FRAUD", rating=1, ts="2026-12-03T08:00:00"),  # before the rollout started
    ]
    s = rollout.live_stats(rows, "2", LABELS, "2026-12-03T09:00:00+00:00")
    assert (s["requests"], s["judged"], s["correct"]) == (5, 3, 2)
    live = rollout.live_stats(rows, "1", LABELS, "2026-12-03T09:00:00+00:00")
    assert (live["judged"], live["correct"]) == (4, 2)


class FixedLabelEngine(FakeEngine):
    """Answers every request with its version's fixed label."""

    def __init__(self, version, label):
        self.model_version, self.label = version, label

    def generate(self, req):
        return Generation(f"{self.label}: fixed", 5, 3, "stop")


@pytest.fixture
def setup(tmp_path):
    reg = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", (tmp_path / "artifacts").as_uri())
    reg.register_base("fraud", "tiny", {})
    for _ in range(2):  # v2 answers wrong (always LEGIT), v3 right (the traffic below is all fraud)
        with reg.start_run("fraud", "cycle") as run:
            reg.mlflow.log_dict({"r": 8}, "adapter/adapter_config.json")
        reg.register_candidate("fraud", run.info.run_id, "adapter", {})
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    labels = {"1": "FRAUD", "2": "LEGIT", "3": "FRAUD"}

    def service(mode, share):
        from flywheel.core.workload import load_workload

        wl = load_workload("configs/workloads/fraud.yaml").model_copy(deep=True)
        wl.deploy = RolloutConfig(mode=mode, share=share, min_rated=10)
        settings = GatewaySettings(workloads=["fraud"], reload_interval_s=0, cache=CacheConfig(mode="off"))
        return GatewayService(
            settings, store, lambda w, v=None: Served("", None, v or reg.champion(w).version),
            engine_factory=lambda w, s: FixedLabelEngine(s.version, labels[s.version]),
            rollouts=rollout.RegistryRollouts(reg), workloads={"fraud": wl}, seed=0,
        )  # fmt: skip

    return reg, store, service


def _traffic(svc, store, n):
    """n fraud transactions; the analyst approves FRAUD answers and corrects LEGIT ones."""
    versions = []
    for i in range(n):
        out = svc.complete("fraud", GenRequest(messages=[{"role": "user", "content": f"t{i}"}]), Tenant("t"))
        versions.append(out["model_version"])
        ok = out["text"].startswith("FRAUD")
        svc.feedback(out["id"], 1 if ok else -1, None if ok else "FRAUD: velocity", None)
        svc.judge_rollout("fraud")  # what the feedback also starts in the background, here in step
    return versions


def test_a_worse_canary_is_rolled_back_by_itself(setup):
    reg, store, service = setup
    rollout.start(reg, "fraud", "2", "canary", 0.5)
    svc = service("canary", 0.5)
    versions = _traffic(svc, store, 60)
    assert versions.count("2") >= 10  # it got its share, then no more
    r = json.loads(reg.client.get_registered_model("fraud").tags[rollout.ROLLOUT_TAG])
    assert r["status"] == "rolled_back" and r["reasons"][0].startswith("live accuracy 0.000 < champion 1.000")
    assert reg.champion("fraud").version == "1" and "canary" not in reg.client.get_registered_model("fraud").aliases
    assert versions[-10:] == ["1"] * 10  # all traffic back on the champion
    events = [(e["event"], e["payload"]["version"]) for e in store.pending_events()]
    assert ("flywheel.model.rolled_back", "2") in events


def test_a_good_canary_takes_all_traffic(setup):
    reg, store, service = setup
    reg.promote("fraud", "2")  # the (bad) champion
    rollout.start(reg, "fraud", "3", "canary", 0.3)
    svc = service("canary", 0.3)
    versions = _traffic(svc, store, 80)
    assert reg.champion("fraud").version == "3" and versions[-10:] == ["3"] * 10
    assert json.loads(reg.version("fraud", "3").tags["promotion"])["how"] == "canary"
    assert ("flywheel.model.promoted", "3") in [(e["event"], e["payload"]["version"]) for e in store.pending_events()]


def test_a_shadow_never_answers_the_user_and_is_judged(setup):
    reg, store, service = setup
    rollout.start(reg, "fraud", "2", "shadow", 1.0)
    svc = service("shadow", 1.0)
    import time

    answers = []
    for i in range(12):
        out = svc.complete("fraud", GenRequest(messages=[{"role": "user", "content": f"t{i}"}]), Tenant("t"))
        answers.append(out["model_version"])
        deadline = time.monotonic() + 5
        while not any(r["id"] == out["id"] + "-shadow" for r in store.list("fraud")):  # logged in the background
            assert time.monotonic() < deadline
            time.sleep(0.01)
        svc.feedback(out["id"], 1, None, None)
    assert answers == ["1"] * 12  # the user only ever saw the champion
    verdict, reasons = svc.judge_rollout("fraud")
    assert verdict == "rollback" and "live accuracy 0.000" in reasons[0]
    assert reg.champion("fraud").version == "1"
