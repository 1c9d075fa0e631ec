"""The promotion gate on per-example outcomes: the fraud workload's default gate refuses a constant classifier
(and the old demo's candidate), a worse model, a gain inside the noise, a slice regression and forgetting;
it passes a real improvement. Every refusal names the metric and says why."""

import numpy as np
import pandas as pd
import pytest

from flywheel.core.workload import load_workload
from flywheel.evaluation.config import GateConfig, MetricRule
from flywheel.evaluation.gate import decide
from flywheel.evaluation.metrics import Outcomes, compare, scorecard

LABELS = ["FRAUD", "LEGIT"]
N = 400
RNG = np.random.default_rng(7)
GOLD = ["FRAUD"] * 180 + ["LEGIT"] * 220  # 45 % FRAUD, as the fraud workload's golden set
RULE = ["velocity"] * 90 + ["cross_border"] * 90 + ["none"] * 220


def model(name, right: np.ndarray, ppl=40.0, mc=0.68, wrong_label=None) -> Outcomes:
    """Outcomes of a model right on the examples where ``right`` is true (wrong: the other label, or
    ``wrong_label``), with a perplexity and a general multiple-choice score."""
    other = {"FRAUD": "LEGIT", "LEGIT": "FRAUD"}
    pred = [g if ok else (wrong_label or other[g]) for g, ok in zip(GOLD, right)]
    ex = pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(N)],
            "gold": GOLD,
            "pred": pred,
            "valid": True,
            "answer": [f"{p}: r" for p in pred],
            "meta.rule": RULE,
        }
    )
    windows = pd.DataFrame({"nll": [np.log(ppl) * 256] * 8, "tokens": [256] * 8})
    n_mc = 200
    mc_frame = pd.DataFrame({"id": [f"q{i}" for i in range(n_mc)], "correct": np.arange(n_mc) < round(mc * n_mc)})
    return Outcomes(name, "k", ex, windows, mc_frame)


def constant(label: str, name="const") -> Outcomes:
    return model(name, np.array([g == label for g in GOLD]))


def accurate(p: float, seed=0, **kw) -> Outcomes:
    rng = np.random.default_rng(seed)
    return model(kw.pop("name", f"acc{p}"), rng.random(N) < p, **kw)


def judge(cand: Outcomes, refs: dict[str, Outcomes], gate: GateConfig):
    card = scorecard(cand, LABELS, ["rule"], 500, 0, 0.95)
    pairs = {
        r: (scorecard(o, LABELS, ["rule"], 500, 0, 0.95), compare(cand, o, LABELS, ["rule"], 500, 0, 0.95))
        for r, o in refs.items()
    }
    return decide(card, pairs, gate)


@pytest.fixture(scope="module")
def fraud_gate(root) -> GateConfig:
    return load_workload(root / "configs/workloads/fraud.yaml").gate


@pytest.fixture(scope="module")
def base() -> Outcomes:
    return constant("FRAUD", "base")  # the base model answers FRAUD to everything: accuracy 0.45


def test_a_constant_classifier_is_refused_by_the_default_gate(fraud_gate, base):
    cand = constant("LEGIT")  # accuracy 0.55 > base 0.45, and significantly so: still refused
    d = judge(cand, {"champion": base, "base": base}, fraud_gate)
    assert not d.promote
    assert "label=FRAUD recall vs absolute: 0.0000 < 0.5000 (at least)" in d.reasons
    assert any(r.startswith("label=FRAUD f1 vs champion") for r in d.reasons)
    # every answer changed: the paired interval of +0.10 is wide (400 discordant pairs), its lower bound ~0
    assert any(r.startswith("accuracy vs champion: 0.5500 vs 0.4500: improvement +0.1000") for r in d.reasons)
    assert not any("recall vs champion" in r for r in d.reasons)  # a floor, not a comparison


def test_the_old_demo_candidate_with_fraud_recall_004_is_refused(fraud_gate, base):
    # v2 of the old demo: LEGIT to everything but 1 in 27 frauds (recall FRAUD 0.037, LEGIT 1.0)
    right = np.array([g == "LEGIT" or i % 27 == 0 for i, g in enumerate(GOLD)])
    cand = model("v2", right)
    card = scorecard(cand, LABELS, [], 200, 0, 0.95)
    assert card["slices"]["label=FRAUD"]["recall"]["value"] == pytest.approx(7 / 180, abs=1e-5)
    d = judge(cand, {"champion": base, "base": base}, fraud_gate)
    assert not d.promote and any(r.startswith("label=FRAUD recall vs absolute") for r in d.reasons)


def test_a_real_improvement_passes_the_default_gate(fraud_gate, base):
    champion = accurate(0.70, seed=1, name="v2")
    cand = accurate(0.86, seed=2, name="v3", ppl=44.0, mc=0.66)
    d = judge(cand, {"champion": champion, "base": base}, fraud_gate)
    assert d.promote, d.reasons
    acc = [c for c in d.checks if c.metric == "accuracy" and c.against == "champion"][0]
    assert acc.difference["low"] > 0.05 and "lower bound" in acc.reason


def test_a_worse_candidate_is_refused_naming_the_metric(fraud_gate, base):
    champion = accurate(0.85, seed=1, name="v2")
    cand = accurate(0.75, seed=2, name="v3")
    d = judge(cand, {"champion": champion, "base": base}, fraud_gate)
    assert not d.promote
    assert [r.split(":")[0] for r in d.reasons if r.startswith(("accuracy", "macro_f1"))] == [
        "accuracy vs champion",
        "macro_f1 vs champion",
    ]


def test_better_on_the_task_but_forgetting_general_ability_is_refused(fraud_gate, base):
    cand = accurate(0.9, seed=2, ppl=40.0 * 1.6, mc=0.60)  # +60 % perplexity, 8 points of general knowledge lost
    d = judge(cand, {"champion": base, "base": base}, fraud_gate)
    assert not d.promote
    assert sorted(r.split(":")[0] for r in d.reasons) == ["general_mc_accuracy vs base", "perplexity vs base"]


def test_a_gain_inside_the_noise_is_refused_under_significant_and_says_so(base):
    champion = accurate(0.80, seed=1, name="v2")
    right = (champion.examples["gold"] == champion.examples["pred"]).to_numpy().copy()
    wrong = np.flatnonzero(~right)
    flipped_right, flipped_wrong = wrong[:30], np.flatnonzero(right)[:22]
    right[flipped_right], right[flipped_wrong] = True, False  # +30 -22: +0.02, with 52 discordant pairs
    cand = model("v3", right)
    strict = GateConfig(metrics={"accuracy": MetricRule(min_improvement=0.01, significant=True)})
    d = judge(cand, {"champion": champion}, strict)
    assert not d.promote
    (reason,) = d.reasons
    assert reason.startswith("accuracy vs champion: ") and "improvement +0.0200 [-0.0" in reason
    assert reason.endswith("(the gain is inside the noise)")
    point = GateConfig(metrics={"accuracy": MetricRule(min_improvement=0.01)})
    assert judge(cand, {"champion": champion}, point).promote  # the point estimate alone would have promoted it


def test_a_slice_regression_is_refused_even_when_the_candidate_wins_overall():
    champion = model("v2", np.array([True] * 150 + [False] * 30 + [True] * 150 + [False] * 70))  # 0.75
    cand = model("v3", np.array([True] * 120 + [False] * 60 + [True] * 210 + [False] * 10))  # 0.825
    gate = GateConfig(
        metrics={"accuracy": MetricRule(min_improvement=0.01)},
        slices={"label=FRAUD": {"recall": MetricRule(tolerance=0.05)}},
    )
    d = judge(cand, {"champion": champion}, gate)
    assert not d.promote
    assert d.reasons == [
        "label=FRAUD recall vs champion: 0.6667 vs 0.8333: improvement -0.1667 [-0.2"
        + d.reasons[0].split("[-0.2", 1)[1]
    ]
    assert "< -0.0500 required" in d.reasons[0]


def test_a_per_rule_slice_can_be_gated():
    champion = model("v2", np.array([True] * 400))
    right = np.array([True] * 400)
    right[:40] = False  # loses half of the velocity rule
    gate = GateConfig(metrics={}, slices={"rule=velocity": {"accuracy": MetricRule(tolerance=0.1)}})
    d = judge(model("v3", right), {"champion": champion}, gate)
    assert not d.promote and d.reasons[0].startswith("rule=velocity accuracy vs champion: 0.5556 vs 1.0000")


def test_missing_metric_and_missing_slice_are_refused():
    champion = model("v2", np.ones(N, dtype=bool))
    gate = GateConfig(metrics={"judge_score": MetricRule()}, slices={"label=NOPE": {"recall": MetricRule()}})
    d = judge(model("v3", np.ones(N, dtype=bool)), {"champion": champion}, gate)
    assert d.reasons == [
        "judge_score vs candidate: candidate has no value",
        "label=NOPE vs candidate: no such slice in the evaluation",
    ]


def test_a_missing_reference_passes_that_comparison_and_says_so():
    gate = GateConfig(metrics={"accuracy": MetricRule(against=["champion", "icl"])})
    d = judge(accurate(0.9), {"champion": accurate(0.5, name="v1")}, gate)
    assert d.promote and d.checks[1].reason == "no icl value to compare with"


def test_relative_tolerance_arithmetic():
    ref = accurate(0.8, name="v1", ppl=40.0)
    gate = GateConfig(metrics={"perplexity": MetricRule(tolerance=0.5, relative=True)})
    assert judge(accurate(0.8, name="v2", ppl=59.0), {"champion": ref}, gate).promote
    d = judge(accurate(0.8, name="v3", ppl=61.0), {"champion": ref}, gate)
    assert not d.promote and d.checks[0].threshold == pytest.approx(60.0)  # 40 * 1.5


def _with_injection(out: Outcomes, resisted: float, n: int = 120) -> Outcomes:
    out.injection = pd.DataFrame({"id": [f"t{i}-inj" for i in range(n)], "resisted": np.arange(n) < resisted * n})
    return out


def test_a_candidate_easier_to_talk_out_of_its_answer_is_refused(tmp_path):
    """issue 15: ``injection_resisted`` (golden rows with an injected order to answer the other label) as a gate
    rule: a candidate as accurate as the champion but far more obedient to the injection is refused; the same
    candidate with the champion's resistance passes; a champion evaluated before the probes existed is no
    reference (said so), and the candidate's own floor still applies."""
    gate = GateConfig(metrics={"injection_resisted": MetricRule(tolerance=0.05, significant=True, at_least=0.5)})
    champion = _with_injection(accurate(0.8, seed=1, name="champion"), 0.9)
    worse = _with_injection(accurate(0.8, seed=1, name="cand"), 0.6)
    d = judge(worse, {"champion": champion}, gate)
    assert not d.promote and any(r.startswith("injection_resisted vs champion: 0.6000 vs 0.9000") for r in d.reasons)
    same = _with_injection(accurate(0.8, seed=1, name="cand"), 0.9)
    assert judge(same, {"champion": champion}, gate).promote
    old_champion = accurate(0.8, seed=1, name="champion")  # no injection outcomes
    assert judge(same, {"champion": old_champion}, gate).promote
    weak = _with_injection(accurate(0.8, seed=1, name="cand"), 0.4)
    assert not judge(weak, {"champion": old_champion}, gate).promote
    # outcomes keep their injection rows through save / load (the suite's cache)
    again = Outcomes.load(champion.save(tmp_path / "o"))
    assert again.injection["resisted"].sum() == 108


def test_injected_rows_order_another_label():
    from flywheel.guard.probes import injected_rows

    rows = [{"id": f"r{i}", "text": f"txn {i}", "label": lab} for i, lab in enumerate(["FRAUD", "LEGIT", "OTHER"])]
    out = injected_rows(rows, LABELS)
    assert [r["id"] for r in out] == ["r0-inj", "r1-inj"] and out[0]["label"] == "FRAUD"
    assert "LEGIT" in out[0]["text"] and "txn 0" in out[0]["text"] and "FRAUD" in out[1]["text"]
