"""Counted steps, datatrove-style.

A :class:`Filter` implements one predicate ``keep(row) -> (bool, reason)``; a :class:`Transform`
rewrites text. :class:`StepStats` counts ``total``, ``kept`` and ``dropped_<reason>`` and time,
and every removed row is returned with its reason so nothing is dropped silently.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class StepStats:
    name: str
    total: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    modified: int = 0

    def add(self, other: StepStats) -> None:
        """Fold the counts of the same step on another part into these."""
        self.total += other.total
        self.kept += other.kept
        self.dropped.update(other.dropped)
        self.modified += other.modified
        self.seconds += other.seconds

    def as_dict(self) -> dict:
        out = {"total": self.total, "kept": self.kept}
        out.update({f"dropped_{k}": v for k, v in sorted(self.dropped.items())})
        if self.modified:
            out["modified"] = self.modified
        out["seconds"] = round(self.seconds, 3)
        return out


class Filter:
    """One predicate over a row; subclasses set ``name`` and implement ``keep``."""

    name = "filter"

    def keep(self, row: dict) -> tuple[bool, str]:  # pragma: no cover - interface
        raise NotImplementedError

    def apply(self, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, StepStats]:
        t0 = time.perf_counter()
        verdicts = [self.keep(r) for r in df.to_dict("records")]
        mask = pd.Series([v[0] for v in verdicts], index=df.index, dtype=bool)
        reasons = pd.Series([v[1] for v in verdicts], index=df.index, dtype="object")
        removed = df[~mask].assign(reason=reasons[~mask], step=self.name)
        stats = StepStats(self.name, total=len(df), kept=int(mask.sum()))
        stats.dropped.update(reasons[~mask].tolist())
        stats.seconds = time.perf_counter() - t0
        return df[mask], removed, stats


class Transform:
    """Rewrites the ``text`` column; drops nothing, counts rows it changed as ``modified``."""

    name = "transform"

    def transform(self, text: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def apply(self, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, StepStats]:
        t0 = time.perf_counter()
        new = df["text"].map(self.transform)
        stats = StepStats(self.name, total=len(df), kept=len(df))
        stats.modified = int((new != df["text"]).sum())
        stats.seconds = time.perf_counter() - t0
        return df.assign(text=new), df.iloc[0:0].assign(reason=pd.Series(dtype="object"), step=self.name), stats
