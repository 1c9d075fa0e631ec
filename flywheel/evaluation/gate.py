"""The promotion gate: a candidate replaces the champion only if every rule passes.

A rule compares the candidate with one or more references (``champion``, ``base``, ``icl``) on the same golden
examples. Improvement is ``candidate - reference`` where greater is better and ``reference - candidate`` where
lower is better; it must reach ``required = (min_improvement - tolerance) * scale`` (scale = the reference's
value when ``relative``, else 1). Two examples of the arithmetic:

- accuracy 0.62 -> 0.80, ``min_improvement: 0.01``: improvement +0.18 >= +0.01, pass. With ``significant: true``
  the lower bound of the paired interval of the improvement (say +0.12) must reach +0.01: pass; a gain of
  +0.02 [-0.01, +0.05] is refused — it is inside the noise.
- perplexity 40.5 -> 64.0, ``tolerance: 0.5, relative: true``: improvement -23.5 < -20.25 required, refused.

``at_least`` / ``at_most`` bound the candidate's own value (``label=FRAUD`` recall at least 0.5 refuses a
model that answers LEGIT to everything, whatever the champion did). A candidate without a value for a rule's
metric is refused (never promoted on partial evidence); a missing reference passes that comparison and says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from flywheel.evaluation.config import GateConfig, MetricRule
from flywheel.evaluation.metrics import LOWER_IS_BETTER


@dataclass
class Check:
    metric: str  # "accuracy", or "label=FRAUD recall" for a slice
    against: str  # champion | base | icl | absolute
    candidate: float | None
    reference: float | None
    difference: dict | None  # {"value", "low", "high"}: candidate - reference with its paired interval
    threshold: float | None
    passed: bool
    reason: str


@dataclass
class GateDecision:
    promote: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.metric} vs {c.against}: {c.reason}" for c in self.checks if not c.passed]

    def as_dict(self) -> dict:
        return {"promote": self.promote, "checks": [asdict(c) for c in self.checks], "reasons": self.reasons}


def _value(card: dict | None, metric: str, slice_name: str | None) -> float | None:
    if card is None:
        return None
    src = card["slices"].get(slice_name, {}) if slice_name else card["metrics"]
    v = src.get(metric)
    v = v.get("value") if isinstance(v, dict) else v
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _difference(comparison: dict | None, metric: str, slice_name: str | None) -> dict | None:
    if comparison is None:
        return None
    src = comparison["slices"].get(slice_name, {}) if slice_name else comparison["metrics"]
    return src.get(metric)


def _bounds(name: str, cand: float, rule: MetricRule, label: str) -> list[Check]:
    out = []
    if rule.at_least is not None:
        ok = cand >= rule.at_least
        out.append(
            Check(
                label,
                "absolute",
                cand,
                None,
                None,
                rule.at_least,
                ok,
                f"{cand:.4f} {'>=' if ok else '<'} {rule.at_least:.4f} (at least)",
            )
        )
    if rule.at_most is not None:
        ok = cand <= rule.at_most
        out.append(
            Check(
                label,
                "absolute",
                cand,
                None,
                None,
                rule.at_most,
                ok,
                f"{cand:.4f} {'<=' if ok else '>'} {rule.at_most:.4f} (at most)",
            )
        )
    return out


def check_rule(metric: str, rule: MetricRule, cand: dict, refs: dict, slice_name: str | None = None) -> list[Check]:
    """The checks of one rule: ``refs`` maps champion/base/icl to ``(scorecard, paired comparison)``."""
    label = f"{slice_name} {metric}" if slice_name else metric
    value = _value(cand, metric, slice_name)
    if value is None:
        return [Check(label, "candidate", None, None, None, None, False, "candidate has no value")]
    checks = _bounds(metric, value, rule, label)
    greater = rule.greater_is_better if rule.greater_is_better is not None else metric not in LOWER_IS_BETTER
    for against in rule.against:
        card, comparison = refs.get(against, (None, None))
        ref = _value(card, metric, slice_name)
        if ref is None:
            checks.append(Check(label, against, value, None, None, None, True, f"no {against} value to compare with"))
            continue
        scale = abs(ref) if rule.relative else 1.0
        required = (rule.min_improvement - rule.tolerance) * scale
        diff = _difference(comparison, metric, slice_name) or {"value": value - ref, "low": None, "high": None}
        sign = 1.0 if greater else -1.0
        gain = sign * diff["value"]
        interval, bound = "", None
        if diff.get("low") is not None:  # the improvement's interval: the difference's, mirrored if lower is better
            low, high = (diff["low"], diff["high"]) if greater else (-diff["high"], -diff["low"])
            interval = f" [{low:+.4f}, {high:+.4f}]"
            bound = low if rule.significant else None
        judged = bound if bound is not None else gain
        ok = judged >= required - 1e-12
        judged_text = f", lower bound {judged:+.4f}" if bound is not None else ""
        text = (
            f"{value:.4f} vs {ref:.4f}: improvement {gain:+.4f}{interval}{judged_text} "
            f"{'>=' if ok else '<'} {required:+.4f} required"
        )
        if rule.significant and not ok and gain >= required:
            text += " (the gain is inside the noise)"
        threshold = ref + sign * required
        checks.append(Check(label, against, value, ref, diff, threshold, ok, text))
    return checks


def decide(candidate: dict, references: dict, cfg: GateConfig) -> GateDecision:
    """``candidate``: a scorecard (``metrics.scorecard``); ``references``: name -> (scorecard, comparison of the
    candidate against it, ``metrics.compare``) for champion, base and icl where they were measured."""
    checks: list[Check] = []
    for metric, rule in cfg.metrics.items():
        checks += check_rule(metric, rule, candidate, references)
    for slice_name, rules in cfg.slices.items():
        if slice_name not in candidate["slices"]:
            checks.append(
                Check(slice_name, "candidate", None, None, None, None, False, "no such slice in the evaluation")
            )
            continue
        for metric, rule in rules.items():
            checks += check_rule(metric, rule, candidate, references, slice_name)
    return GateDecision(all(c.passed for c in checks), checks)
