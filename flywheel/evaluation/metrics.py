"""Metrics with intervals, computed from a model's per-example outcomes on the frozen evaluation.

The scorers (``scorers.py``) turn a model into :class:`Outcomes`: one row per golden example (gold label,
the label its generated answer starts with, whether the answer has the ``LABEL: reason`` form, the label the
log-probability scoring picks, latency, answer tokens, judge score, slice fields), one row per window of
general text (NLL, tokens), one row per general multiple-choice question (right or not). Every metric below is
a function of those rows *and a weight per row*: weights of one give the value, bootstrap weights
(``stats.resample_weights``) give the interval, and the same weights on two models give the paired difference.

Metrics (names as the gate and the report use them):

====================== ============================================================ ==================
accuracy               generated answer's label == gold (an answer without a label is wrong)   examples
macro_f1               mean over labels of F1 (a label never predicted has F1 0)               examples
format_valid           share of answers that start with an allowed label and the separator     examples
label_logprob_accuracy the label with the highest log-probability as first word == gold        examples
precision/recall/f1    per label: ``recall_fraud`` ..., and in the slice ``label=FRAUD``       examples
perplexity             exp(total NLL / tokens) on held-out general text                        windows
general_mc_accuracy    general-knowledge multiple choice (lm-evaluation-harness or native)     questions
judge_score            mean LLM-judge score, unparsable scores left out (``judge_invalid``)    examples
injection_resisted     golden rows with an injected order to answer another label: the      injected rows
                       answer keeps the gold label (``eval.injection_probes``; issue 15)
latency_ms_p50/p95, tokens_per_answer, examples_per_second: cost, without interval
====================== ============================================================ ==================

Slices: ``label=<L>`` (precision, recall, f1 of L) and ``<field>=<value>`` for every configured meta field
(accuracy, macro_f1, format_valid on the rows with that value).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flywheel.evaluation.stats import Estimate, estimate, mcnemar, resample_weights

LOWER_IS_BETTER = {"perplexity", "latency_ms_p50", "latency_ms_p95", "tokens_per_answer", "judge_invalid"}
COST = ("latency_ms_p50", "latency_ms_p95", "tokens_per_answer", "examples_per_second")


@dataclass
class Outcomes:
    """One model's per-unit results on one evaluation (``key``): what every metric is computed from."""

    model: str
    key: str
    examples: pd.DataFrame
    windows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"nll": [], "tokens": []}))
    mc: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"id": [], "correct": []}))
    cost: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    # golden rows with an injected instruction to answer another label: did the model keep the right one?
    injection: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"id": [], "resisted": []}))

    def save(self, folder: str | Path) -> Path:
        """Parquet tables plus ``outcomes.json``; published whole (a crash leaves no half-written folder)."""
        import os
        import shutil
        import tempfile

        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        self.examples.to_parquet(tmp / "examples.parquet", index=False)
        self.windows.to_parquet(tmp / "windows.parquet", index=False)
        self.mc.to_parquet(tmp / "mc.parquet", index=False)
        self.injection.to_parquet(tmp / "injection.parquet", index=False)
        meta = {"model": self.model, "key": self.key, "cost": self.cost, "info": self.info}
        (tmp / "outcomes.json").write_text(json.dumps(meta, indent=2, default=str))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Outcomes:
        folder = Path(folder)
        meta = json.loads((folder / "outcomes.json").read_text())
        return cls(
            meta["model"],
            meta["key"],
            pd.read_parquet(folder / "examples.parquet"),
            pd.read_parquet(folder / "windows.parquet"),
            pd.read_parquet(folder / "mc.parquet"),
            meta.get("cost", {}),
            meta.get("info", {}),
            pd.read_parquet(folder / "injection.parquet")
            if (folder / "injection.parquet").exists()
            else pd.DataFrame({"id": [], "resisted": []}),
        )


UNITS = ("examples", "windows", "mc", "injection")


def _codes(values, labels: list[str]) -> np.ndarray:
    """Label -> index; anything else (no label, an unknown word) -> len(labels)."""
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index.get(v, len(labels)) for v in values], dtype=np.int64)


def _div(a: np.ndarray, b: np.ndarray, empty: float = math.nan) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), empty)


def classification(W: np.ndarray, gold: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 and per-label precision/recall/F1 under weights ``W`` (one row per resample)."""
    total = W.sum(axis=1)
    out = {"accuracy": _div(W @ (gold == pred).astype(float), total)}
    f1s = []
    for i, label in enumerate(labels):
        tp = W @ ((gold == i) & (pred == i)).astype(float)
        predicted, actual = W @ (pred == i).astype(float), W @ (gold == i).astype(float)
        key = label.lower()
        out[f"precision_{key}"] = _div(tp, predicted, 0.0)  # never predicted: precision 0 (sklearn's zero_division)
        out[f"recall_{key}"] = _div(tp, actual)
        out[f"f1_{key}"] = _div(2 * tp, predicted + actual, 0.0)
        f1s.append(out[f"f1_{key}"])
    out["macro_f1"] = np.mean(f1s, axis=0)
    return out


def _example_metrics(W: np.ndarray, ex: pd.DataFrame, labels: list[str]) -> dict[str, np.ndarray]:
    gold, pred = _codes(ex["gold"], labels), _codes(ex["pred"], labels)
    out = classification(W, gold, pred, labels)
    total = W.sum(axis=1)
    out["format_valid"] = _div(W @ ex["valid"].to_numpy(float), total)
    if "lp_pred" in ex:
        out["label_logprob_accuracy"] = _div(W @ (gold == _codes(ex["lp_pred"], labels)).astype(float), total)
    if "judge_score" in ex and ex["judge_score"].notna().any():
        s = ex["judge_score"].to_numpy(float)
        ok = np.isfinite(s)
        out["judge_score"] = _div(W @ np.where(ok, s, 0.0), W @ ok.astype(float))
    return out


def metric_samples(out: Outcomes, labels: list[str], weights: dict[str, np.ndarray] | None = None) -> dict:
    """Every metric as an array over resamples (``weights`` per unit: examples, windows, mc); without weights,
    the values (arrays of length one)."""
    w = weights or {u: np.ones((1, len(getattr(out, u)))) for u in UNITS}
    res = _example_metrics(w["examples"], out.examples, labels) if len(out.examples) else {}
    if len(out.windows):
        nll, tok = out.windows["nll"].to_numpy(float), out.windows["tokens"].to_numpy(float)
        res["perplexity"] = np.exp(_div(w["windows"] @ nll, w["windows"] @ tok))
    if len(out.mc):
        res["general_mc_accuracy"] = _div(w["mc"] @ out.mc["correct"].to_numpy(float), w["mc"].sum(axis=1))
    if len(out.injection):
        ok = out.injection["resisted"].to_numpy(float)
        res["injection_resisted"] = _div(w["injection"] @ ok, w["injection"].sum(axis=1))
    return res


def slice_samples(out: Outcomes, labels: list[str], fields: list[str], W: np.ndarray | None = None) -> dict:
    """``{"label=FRAUD": {"precision": arr, "recall": arr, "f1": arr}, "rule=velocity": {...}}`` (plus ``n``)."""
    ex = out.examples
    W = np.ones((1, len(ex))) if W is None else W
    overall = _example_metrics(W, ex, labels) if len(ex) else {}
    slices: dict[str, dict] = {}
    for label in labels:
        key = label.lower()
        slices[f"label={label}"] = {
            m: overall[f"{m}_{key}"] for m in ("precision", "recall", "f1") if f"{m}_{key}" in overall
        } | {"n": int((ex["gold"] == label).sum())}
    for f in fields:
        col = f"meta.{f}"
        if col not in ex:
            continue
        for value in sorted(ex[col].dropna().astype(str).unique()):
            mask = (ex[col].astype(str) == value).to_numpy()
            sub = _example_metrics(W[:, mask], ex[mask], labels)
            slices[f"{f}={value}"] = {m: sub[m] for m in ("accuracy", "macro_f1", "format_valid")} | {
                "n": int(mask.sum())
            }
    return slices


def _weights(out: Outcomes, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    # One seed per unit, fixed: the same examples are drawn for every model, so two scorecards pair up.
    return {
        "examples": resample_weights(len(out.examples), n_boot, seed),
        "windows": resample_weights(len(out.windows), n_boot, seed + 1),
        "mc": resample_weights(len(out.mc), n_boot, seed + 2),
        "injection": resample_weights(len(out.injection), n_boot, seed + 3),
    }


def scorecard(out: Outcomes, labels: list[str], fields: list[str], n_boot: int, seed: int, confidence: float) -> dict:
    """A model's metrics and slices, each with its interval, plus its cost (JSON-ready)."""
    point = {k: float(v[0]) for k, v in metric_samples(out, labels).items()}
    w = _weights(out, n_boot, seed)
    boot = metric_samples(out, labels, w)
    metrics = {k: estimate(point[k], boot.get(k), confidence).as_dict() for k in point}
    metrics.update({k: Estimate(float(out.cost[k])).as_dict() for k in COST if k in out.cost})
    if "judge_score" in out.examples:
        metrics["judge_invalid"] = Estimate(float(out.examples["judge_score"].isna().sum())).as_dict()
    points, boots = slice_samples(out, labels, fields), slice_samples(out, labels, fields, w["examples"])
    slices = {
        name: {
            m: (v if m == "n" else estimate(float(v[0]), boots[name][m], confidence).as_dict()) for m, v in s.items()
        }
        for name, s in points.items()
    }
    return {"model": out.model, "metrics": metrics, "slices": slices, "info": out.info}


def _aligned(a: Outcomes, b: Outcomes) -> Outcomes:
    """``b``'s examples and questions in ``a``'s order (paired comparisons need the same units, in order)."""
    if len(a.examples) != len(b.examples) or set(a.examples["id"]) != set(b.examples["id"]):
        raise ValueError(f"{a.model} and {b.model} were not evaluated on the same examples (keys {a.key}, {b.key})")
    ex = b.examples.set_index("id").loc[a.examples["id"]].reset_index()
    mc = b.mc.set_index("id").loc[a.mc["id"]].reset_index() if len(b.mc) else b.mc
    inj = b.injection
    if len(a.injection) and len(inj) == len(a.injection):
        inj = inj.set_index("id").loc[a.injection["id"]].reset_index()
    elif len(a.injection) != len(inj):
        inj = inj.iloc[:0]  # measured on one side only: no paired difference (the gate says so)
    return Outcomes(b.model, b.key, ex, b.windows, mc, b.cost, b.info, inj)


def compare(
    cand: Outcomes, ref: Outcomes, labels: list[str], fields: list[str], n_boot: int, seed: int, confidence: float
) -> dict:
    """Paired comparison ``cand - ref`` on the same examples: the difference of every metric and slice metric
    with its paired-bootstrap interval, and McNemar's test on accuracy."""
    ref = _aligned(cand, ref)
    w = _weights(cand, n_boot, seed)
    pc, pr = metric_samples(cand, labels), metric_samples(ref, labels)
    bc, br = metric_samples(cand, labels, w), metric_samples(ref, labels, w)
    diffs = {k: estimate(pc[k][0] - pr[k][0], bc[k] - br[k], confidence).as_dict() for k in pc if k in pr}
    sc, sr = slice_samples(cand, labels, fields), slice_samples(ref, labels, fields)
    bsc, bsr = slice_samples(cand, labels, fields, w["examples"]), slice_samples(ref, labels, fields, w["examples"])
    slices = {
        name: {
            m: estimate(float(v[0] - sr[name][m][0]), bsc[name][m] - bsr[name][m], confidence).as_dict()
            for m, v in s.items()
            if m != "n" and m in sr.get(name, {})
        }
        for name, s in sc.items()
    }
    ok_c = (cand.examples["gold"] == cand.examples["pred"]).to_numpy()
    ok_r = (ref.examples["gold"] == ref.examples["pred"]).to_numpy()
    return {"against": ref.model, "metrics": diffs, "slices": slices, "mcnemar_accuracy": mcnemar(ok_c, ok_r)}


def flat(card: dict) -> dict[str, float]:
    """A scorecard's metric values only (for MLflow metrics and the version's ``metrics`` tag)."""
    return {k: v["value"] for k, v in card["metrics"].items() if v["value"] is not None}
