"""Drift in live traffic, from the feedback store: the recent window against the window before it.

Three signals per workload — the positive-feedback rate (rated +1 among rated answers), live accuracy (rated
answers not corrected) and the guard-block rate (requests a rail refused). A signal drifts when it moved the
wrong way by more than its bound (``DriftConfig``) *and* a one-sided two-proportion z-test says the move is
unlikely by chance; a window with too few rated answers (or requests) is not judged.

    report = detect(store, "fraud", DriftConfig())      # {"drift": bool, "signals": [...], "windows": {...}}
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from flywheel.feedback.config import DriftConfig


def window_stats(rows: list[dict]) -> dict:
    rated = [r for r in rows if r.get("rating") is not None or r.get("correction")]
    return {
        "requests": len(rows),
        "rated": len(rated),
        "positive": sum(1 for r in rated if (r.get("rating") or 0) > 0),
        "correct": sum(1 for r in rated if not r.get("correction") and (r.get("rating") or 0) >= 0),
        "blocked": sum(1 for r in rows if any(f.startswith("blocked") for f in r.get("guard_flags") or [])),
    }


def one_sided_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """P(a drop from k1/n1 to k2/n2 at least this large | both rates equal): two-proportion z-test."""
    if not n1 or not n2:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0 if k1 / n1 <= k2 / n2 else 0.0
    z = (k1 / n1 - k2 / n2) / se
    return 0.5 * math.erfc(z / math.sqrt(2))


def detect(store, workload: str, cfg: DriftConfig, now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    recent_from = now - timedelta(hours=cfg.window_hours)
    base_from = recent_from - timedelta(hours=cfg.baseline_hours)
    rows = store.list(workload, since=base_from)

    def ts(r):
        t = r["ts"] if isinstance(r["ts"], datetime) else datetime.fromisoformat(str(r["ts"]))
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    before = window_stats([r for r in rows if ts(r) < recent_from])
    after = window_stats([r for r in rows if recent_from <= ts(r) <= now])
    signals = []
    # (name, numerator, denominator, minimum, bound, direction: +1 a drop is bad, -1 a rise is bad)
    for name, k, n, least, bound, sign in (
        ("positive_rate", "positive", "rated", cfg.min_rated, cfg.max_positive_drop, 1),
        ("live_accuracy", "correct", "rated", cfg.min_rated, cfg.max_accuracy_drop, 1),
        ("guard_block_rate", "blocked", "requests", cfg.min_requests, cfg.max_block_rise, -1),
    ):
        n1, n2 = before[n], after[n]
        if n1 < least or n2 < least:
            signals.append({"signal": name, "judged": False, "reason": f"fewer than {least} {n} in a window",
                            "n_before": n1, "n_after": n2})  # fmt: skip
            continue
        r1, r2 = before[k] / n1, after[k] / n2
        change = r2 - r1
        if sign > 0:
            p = one_sided_p(before[k], n1, after[k], n2)
        else:
            p = one_sided_p(n1 - before[k], n1, n2 - after[k], n2)  # a rise in blocks = a drop in passes
        drift = (sign * -change) > bound and p < cfg.significance
        signals.append({"signal": name, "judged": True, "before": round(r1, 4), "after": round(r2, 4),
                        "change": round(change, 4), "bound": bound, "p_value": round(p, 5), "drift": drift,
                        "n_before": n1, "n_after": n2})  # fmt: skip
    return {
        "workload": workload,
        "drift": any(s.get("drift") for s in signals),
        "signals": signals,
        "windows": {
            "recent_from": recent_from.isoformat(),
            "baseline_from": base_from.isoformat(),
            "now": now.isoformat(),
            "before": before,
            "after": after,
        },  # fmt: skip
    }
