"""What each gateway rail adds per request on this machine, p50 / p95: the PII rail (Presidio + spaCy on the
prompt, and on a one-line answer), the response cache's lookup (MiniLM embedding of the query + the index), the
injection rail (rules; rules + the MiniLM head on a transaction and on a 4,000-character prompt), the topic rail
(configs/gateway/default.yaml's fraud exemplars) and output moderation (the term list on an answer).

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

    from pathlib import Path

    from flywheel.core.config import load_config
    from flywheel.guard.config import InjectionConfig, ModerationConfig
    from flywheel.guard.injection import InjectionDetector
    from flywheel.guard.moderation import Moderation
    from flywheel.guard.topic import TopicRail
    from flywheel.serving.config import GatewaySettings

    rules = InjectionDetector(InjectionConfig(classifier=None))
    show("injection rail, rules only (transaction)", timed(rules.check, texts))
    det = InjectionDetector(InjectionConfig())
    det.check(texts[0])
    show("injection rail, rules + head (transaction)", timed(det.check, texts))
    long = [" ".join(texts[i : i + 20])[:4000] for i in range(a.n // 4)]
    show("injection rail, rules + head (4,000 chars)", timed(det.check, long))
    gw = load_config(Path(__file__).resolve().parents[1] / "configs/gateway/default.yaml", GatewaySettings)
    topic = TopicRail(gw.guard_per_workload["fraud"].topic)
    topic.similarity(texts[0])
    show("topic rail (fraud exemplars)", timed(topic.similarity, texts))
    mod = Moderation(ModerationConfig())
    show("moderation (answer 'FRAUD: cross-border $1,240')", timed(mod.find, ["FRAUD: cross-border $1,240"] * a.n))
    print(f"date {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
