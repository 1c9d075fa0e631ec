"""The promotion gate: a candidate replaces the champion only if every metric passes its rule.

For a metric where greater is better (accuracy) the candidate must reach
``champion + min_improvement - tolerance``; where lower is better (perplexity) it must stay at or
under ``champion - min_improvement + tolerance``. With ``relative: true`` both are fractions of the
champion's value. With accuracy 0.62 -> 0.80, min_improvement 0.01: 0.80 >= 0.63, pass. With
perplexity 40.5 -> 64.0, relative tolerance 0.5: 64.0 > 60.75, refused.
A candidate that lacks a metric is refused (never promoted on partial evidence).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from flywheel.evaluation.config import GateConfig


@dataclass
class MetricCheck:
    metric: str
    candidate: float | None
    champion: float | None
    threshold: float | None
    passed: bool
    rule: str


@dataclass
class GateDecision:
    promote: bool
    checks: list[MetricCheck] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.metric}: {c.rule}" for c in self.checks if not c.passed]

    def as_dict(self) -> dict:
        return {"promote": self.promote, "checks": [asdict(c) for c in self.checks], "reasons": self.reasons}


def decide(candidate: dict, champion: dict, cfg: GateConfig) -> GateDecision:
    checks = []
    for name, rule in cfg.metrics.items():
        cand, champ = candidate.get(name), champion.get(name)
        if cand is None or (isinstance(cand, float) and math.isnan(cand)):
            checks.append(MetricCheck(name, cand, champ, None, False, "candidate has no value"))
            continue
        if champ is None or (isinstance(champ, float) and math.isnan(champ)):
            checks.append(MetricCheck(name, cand, champ, None, True, "no champion value: nothing to regress from"))
            continue
        scale = abs(champ) if rule.relative else 1.0
        tol, gain = rule.tolerance * scale, rule.min_improvement * scale
        if rule.greater_is_better:
            threshold = champ + gain - tol
            ok = cand >= threshold
            text = f"{cand:.4f} {'>=' if ok else '<'} {threshold:.4f} (champion {champ:.4f})"
        else:
            threshold = champ - gain + tol
            ok = cand <= threshold
            text = f"{cand:.4f} {'<=' if ok else '>'} {threshold:.4f} (champion {champ:.4f})"
        checks.append(MetricCheck(name, cand, champ, threshold, ok, text))
    return GateDecision(all(c.passed for c in checks), checks)
