"""Evaluation pieces without Prefect: answer parsing, batched generation, metrics against scikit-learn,
bootstrap and paired intervals, McNemar, the judge's score parser, the harness cross-check, the report."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from flywheel.evaluation.metrics import Outcomes, classification, compare, metric_samples, scorecard
from flywheel.evaluation.stats import mcnemar, percentile_interval, resample_weights

LABELS = ["FRAUD", "LEGIT"]


def outcomes(gold, pred, name="m", ids=None, valid=None) -> Outcomes:
    ids = ids or [f"x{i}" for i in range(len(gold))]
    ex = pd.DataFrame(
        {
            "id": ids,
            "gold": gold,
            "pred": pred,
            "valid": valid if valid is not None else [p in LABELS for p in pred],
            "answer": [f"{p}: r" for p in pred],
        }
    )
    return Outcomes(name, "k", ex)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("FRAUD: cross-border $1,200", ("FRAUD", True)),
        ("LEGIT: no fraud rule applies", ("LEGIT", True)),
        ("legit - looks fine", ("LEGIT", False)),
        ("FRAUD.", ("FRAUD", False)),
        ("FRAUD:", ("FRAUD", False)),  # a label and a colon but no reason
        ("This card is counterfeit.", (None, False)),
        ("FRAUDULENT: yes", (None, False)),
        ("", (None, False)),
    ],
)
def test_answers_are_parsed_into_label_and_format(text, expected):
    from flywheel.evaluation.scorers import parse_answer

    assert parse_answer(text, LABELS) == expected


def test_batched_generation_gives_the_answers_of_one_by_one(tiny_model):
    from examples.fraud import generate
    from flywheel.evaluation.scorers import conversation
    from flywheel.serving.engine import generate_chat
    from flywheel.training.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(tiny_model)
    convs = [conversation("You triage.", r["text"]) for r in generate(6, seed=3)]
    convs[2] = conversation("You triage.", "short")  # very different lengths: left padding must not matter
    batched = generate_chat(model, tok, convs, 12)
    single = [generate_chat(model, tok, [c], 12)[0] for c in convs]
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in single]
    assert [g.prompt_tokens for g in batched] == [g.prompt_tokens for g in single]


def test_classification_metrics_equal_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(3)
    gold = rng.choice(LABELS, 300).tolist()
    pred = rng.choice([*LABELS, ""], 300, p=[0.45, 0.45, 0.1]).tolist()  # "" = an answer without a label
    got = {k: float(v[0]) for k, v in metric_samples(outcomes(gold, pred), LABELS).items()}
    assert got["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert got["macro_f1"] == pytest.approx(f1_score(gold, pred, labels=LABELS, average="macro"))
    for label in LABELS:
        key = label.lower()
        assert got[f"precision_{key}"] == pytest.approx(precision_score(gold, pred, labels=[label], average="macro"))
        assert got[f"recall_{key}"] == pytest.approx(recall_score(gold, pred, labels=[label], average="macro"))
    assert got["format_valid"] == pytest.approx(np.mean([p != "" for p in pred]))


def test_a_constant_classifier_has_zero_precision_and_recall_on_the_other_label():
    m = classification(np.ones((1, 100)), np.array([0] * 45 + [1] * 55), np.ones(100, dtype=int), LABELS)
    assert float(m["accuracy"][0]) == 0.55 and float(m["recall_fraud"][0]) == 0.0
    assert float(m["precision_fraud"][0]) == 0.0 and float(m["recall_legit"][0]) == 1.0
    assert float(m["macro_f1"][0]) == pytest.approx((0 + 2 * 0.55 / 1.55) / 2)


def test_bootstrap_interval_has_the_textbook_width_and_is_seeded():
    correct = np.array([1.0] * 280 + [0.0] * 120)  # accuracy 0.70 on 400
    W = resample_weights(400, 2000, seed=0)
    low, high = percentile_interval(W @ correct / 400, 0.95)
    assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(0.7 * 0.3 / 400), rel=0.12)  # about +-0.045
    assert low < 0.70 < high
    assert np.array_equal(resample_weights(400, 50, seed=0), resample_weights(400, 50, seed=0))
    assert (resample_weights(400, 50, seed=0).sum(axis=1) == 400).all()


def test_paired_difference_is_narrower_than_two_separate_intervals():
    rng = np.random.default_rng(0)
    gold = rng.choice(LABELS, 400).tolist()
    a = [g if rng.random() < 0.75 else ("LEGIT" if g == "FRAUD" else "FRAUD") for g in gold]
    b = list(a)  # b = a, with 12 more right: the models agree on almost everything
    flips = [i for i in range(400) if a[i] != gold[i]][:12]
    for i in flips:
        b[i] = gold[i]
    ca, cb = outcomes(gold, a, "a"), outcomes(gold, b, "b")
    diff = compare(cb, ca, LABELS, [], 1000, 0, 0.95)["metrics"]["accuracy"]
    assert diff["value"] == pytest.approx(12 / 400)
    sa = scorecard(ca, LABELS, [], 1000, 0, 0.95)["metrics"]["accuracy"]
    assert diff["high"] - diff["low"] < (sa["high"] - sa["low"]) / 2
    assert diff["low"] > 0  # 12 wins and no loss: significant


def test_mcnemar_counts_only_discordant_pairs():
    a = np.array([1] * 10 + [0] * 2 + [1] * 50 + [0] * 38, dtype=bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50 + [0] * 38, dtype=bool)
    out = mcnemar(a, b)
    assert (out["a_only"], out["b_only"]) == (10, 2)
    assert out["p_value"] == pytest.approx(0.0386, abs=1e-4)  # binomial 10 of 12 at 1/2, two-sided
    assert mcnemar(a, a)["p_value"] == 1.0


def test_paired_comparison_aligns_examples_by_id():
    gold = ["FRAUD", "LEGIT"] * 50
    pred = ["FRAUD"] * 100
    a = outcomes(gold, pred, "a")
    shuffled = outcomes(gold[::-1], pred[::-1], "b", ids=[f"x{i}" for i in range(100)][::-1])
    assert compare(a, shuffled, LABELS, [], 200, 0, 0.95)["metrics"]["accuracy"]["value"] == 0.0
    with pytest.raises(ValueError, match="not evaluated on the same examples"):
        compare(a, outcomes(gold[:50], pred[:50], "c"), LABELS, [], 200, 0, 0.95)


def test_slices_by_label_and_meta_field():
    gold = ["FRAUD"] * 4 + ["LEGIT"] * 4
    pred = ["FRAUD", "LEGIT", "LEGIT", "LEGIT", "LEGIT", "LEGIT", "LEGIT", "FRAUD"]
    o = outcomes(gold, pred)
    o.examples["meta.rule"] = ["velocity", "velocity", "cross_border", "cross_border", "none", "none", "none", "none"]
    card = scorecard(o, LABELS, ["rule"], 200, 0, 0.95)
    assert card["slices"]["label=FRAUD"]["recall"]["value"] == 0.25 and card["slices"]["label=FRAUD"]["n"] == 4
    assert card["slices"]["rule=velocity"]["accuracy"]["value"] == 0.5
    assert card["slices"]["rule=cross_border"]["accuracy"]["value"] == 0.0
    assert card["slices"]["rule=none"]["accuracy"]["value"] == 0.75 and card["slices"]["rule=none"]["n"] == 4


@pytest.mark.parametrize(
    "reply,score",
    [
        ("10", 1.0),
        ("7/10", 0.7),
        ("Score: 8", 0.8),
        ("score = 6.5", 0.65),
        ("I would rate this answer 9 because the reason is right.", 0.9),
        ("7 out of 10", 0.7),
        ("  3. ", 0.3),
        ("The answer scores 4/5.", 0.8),
    ],
)
def test_judge_scores_are_parsed(reply, score):
    from flywheel.evaluation.judge import parse_score

    assert parse_score(reply) == pytest.approx(score)


@pytest.mark.parametrize("reply", ["", None, "no idea", "N/A", "15", "-2", "between 3 and 5", "11/10"])
def test_malformed_judge_replies_are_nan(reply):
    from flywheel.evaluation.judge import parse_score

    assert math.isnan(parse_score(reply))


def test_judge_sends_the_rubric_and_counts_unusable_replies():
    """A scripted OpenAI-compatible client stands in for a judge model (no capable model runs here)."""
    from types import SimpleNamespace

    from flywheel.evaluation.config import JudgeConfig
    from flywheel.evaluation.judge import Judge

    replies, sent = iter(["8", "Score: 6/10", "I cannot grade this"]), []

    def create(**kw):
        sent.append(kw)
        msg = SimpleNamespace(content=next(replies))
        return SimpleNamespace(choices=[SimpleNamespace(message=msg)])

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    judge = Judge(JudgeConfig(enabled=True, model="grader"), client=client)
    scores = judge.score_many(["t1", "t2", "t3"], ["FRAUD: a", "LEGIT: b", "x"], ["FRAUD: a", "FRAUD: c", "LEGIT"])
    assert scores[:2] == [0.8, 0.6] and math.isnan(scores[2])
    assert sent[1]["model"] == "grader" and sent[1]["temperature"] == 0
    assert (
        "Reference answer: FRAUD: c" in sent[1]["messages"][0]["content"]
        and "LEGIT: b" in sent[1]["messages"][0]["content"]
    )
    o = outcomes(["FRAUD", "FRAUD", "LEGIT"], ["FRAUD", "LEGIT", ""])
    o.examples["judge_score"] = scores
    card = scorecard(o, LABELS, [], 200, 0, 0.95)
    assert card["metrics"]["judge_score"]["value"] == pytest.approx(0.7)  # the NaN is left out, not a 0
    assert card["metrics"]["judge_invalid"]["value"] == 1


def test_the_shipped_general_set_is_what_the_generator_writes(root):
    from examples.general_knowledge import generate

    shipped = [json.loads(x) for x in (root / "flywheel/evaluation/data/general_mc.jsonl").read_text().splitlines()]
    assert shipped == generate() and len(shipped) == 203
    assert all(len(q["choices"]) == 4 and len(set(q["choices"])) == 4 for q in shipped)
    assert all(0 <= q["answer"] < 4 for q in shipped)


def test_harness_and_native_scoring_pick_the_same_choices(tiny_model, root):
    """lm-evaluation-harness scores the shipped set the way the project's own scorer does: same choice on
    every question (a random tiny model: the choices are noise, which makes agreement a strict check)."""
    from flywheel.evaluation.harness import harness_multiple_choice
    from flywheel.evaluation.scorers import multiple_choice
    from flywheel.training.models import load_model_and_tokenizer

    path = root / "flywheel/evaluation/data/general_mc.jsonl"
    questions = [json.loads(x) for x in path.read_text().splitlines()]
    model, tok = load_model_and_tokenizer(tiny_model)
    native = multiple_choice(model, tok, questions, batch_size=64)
    harness, info = harness_multiple_choice(model, tok, path, batch_size=64)
    assert harness["id"].tolist() == native["id"].tolist() == [q["id"] for q in questions]
    assert (harness["pred"] == native["pred"]).mean() >= 0.99, "the two scorers disagree"
    assert info["acc"] == pytest.approx(harness["correct"].mean())
    assert info["lm_eval"] == "0.4.13"


def test_report_shows_every_row_with_intervals_and_the_gate(tmp_path):
    from flywheel.evaluation.config import GateConfig
    from flywheel.evaluation.gate import decide
    from flywheel.evaluation.report import markdown, plot

    gold = ["FRAUD", "LEGIT"] * 100
    rows = {
        "base": outcomes(gold, ["FRAUD"] * 200, "base"),
        "champion": outcomes(gold, ["FRAUD"] * 200, "v1"),
        "candidate": outcomes(gold, gold[:160] + ["LEGIT"] * 40, "v2"),
    }
    cards = {n: scorecard(o, LABELS, [], 300, 0, 0.95) for n, o in rows.items()}
    comps = {r: compare(rows["candidate"], rows[r], LABELS, [], 300, 0, 0.95) for r in ("champion", "base")}
    decision = decide(cards["candidate"], {r: (cards[r], comps[r]) for r in comps}, GateConfig(metrics={}))
    result = {
        "workload": "fraud",
        "candidate_label": "v2",
        "champion_version": "1",
        "key": "k",
        "golden": {"digest": "abc123" * 8},
        "n_examples": 200,
        "rows": cards,
        "comparisons": comps,
        "decision": decision.as_dict(),
        "leakage": {"dropped_leakage": 3},
    }
    md = markdown(result)
    assert "| metric | base | champion | candidate |" in md
    assert "| accuracy | 0.500 [" in md and "0.900 [" in md  # candidate: 160 + 20 of 200 right
    assert "McNemar on accuracy vs champion: candidate alone right on 100, champion alone right on 20" in md
    assert "3 training rows that duplicated golden rows" in md and "gate PASSED" in md
    png = plot(result, tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # the loop report: the base row, then each cycle's candidate, from the same scorecards
    from flywheel.evaluation.report import loop_markdown, loop_plot

    cycles = [{"name": "cycle 1", "summary": {"evaluation": result, "candidate": {"version": "2"}, "promoted": True}}]
    loop = loop_markdown("fraud", cycles, LABELS)
    assert "| base | 0.500 [" in loop and "| cycle 1 v2 | 0.900 [" in loop and "| promoted |" in loop
    png = loop_plot("fraud", cycles, LABELS, tmp_path / "loop" / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
