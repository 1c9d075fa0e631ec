"""What each gateway rail adds per request on this machine, p50 / p95: the PII rail (Presidio + spaCy on the
prompt, and on a one-line answer) and the response cache's lookup (MiniLM embedding of the query + the index).

    OMP_NUM_THREADS=2 python -m bench.rails_latency [--n 200]
"""

from __future__ import annotations

import argparse
import statistics
import time


def timed(fn, items) -> list[float]:
    out = []
    for x in items:
        t0 = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t0) * 1000)
    return sorted(out)


def show(name: str, ms: list[float]) -> None:
    print(f"{name:42} p50 {statistics.median(ms):6.1f} ms   p95 {ms[int(0.95 * len(ms))]:6.1f} ms   (n={len(ms)})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()

    from examples.fraud import generate
    from flywheel.curation.config import PiiConfig
    from flywheel.guard.pii import PiiRail
    from flywheel.serving.cache import ResponseCache
    from flywheel.serving.config import CacheConfig

    texts = [r["text"] for r in generate(a.n, seed=31, noise=0.0)]
    rail = PiiRail(PiiConfig(enabled=True))
    rail.mask(texts[0])  # spaCy and Presidio loaded
    show("PII rail: prompt (one fraud transaction)", timed(rail.mask, texts))
    show("PII rail: answer ('FRAUD: cross-border $1,240')", timed(rail.mask, ["FRAUD: cross-border $1,240"] * a.n))
    cache = ResponseCache(CacheConfig())
    for t in texts[: a.n // 2]:
        cache.store("p", t, {"text": "LEGIT: ok"})
    show(f"cache lookup, miss ({len(cache)} entries)", timed(lambda t: cache.lookup("p", t), texts[a.n // 2 :]))
    show(f"cache lookup, exact hit ({len(cache)} entries)", timed(lambda t: cache.lookup("p", t), texts[: a.n // 2]))
    print(f"date {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
