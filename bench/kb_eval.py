"""The knowledge base measured: vector-only vs BM25-only vs hybrid (reciprocal-rank fusion), with the KB's section
chunker and with the ingest rows as they are, on the bundled policy library (examples/policies.py) — the
hand-checked questions and the extractive ones generated from the documents — then build rate and query latency
at 10,000 chunks.

    OMP_NUM_THREADS=2 python -m bench.kb_eval [--scale 10000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=10_000, help="chunks of the latency run (0: skip it)")
    a = ap.parse_args()

    from examples.policies import QUESTIONS, write_policies
    from flywheel.ingest.config import ChunkingConfig, IngestConfig
    from flywheel.ingest.run import ingest_dataset
    from flywheel.rag.config import KbConfig
    from flywheel.rag.kb import KnowledgeBase, build_kb, evaluate, generated_questions

    tmp = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    write_policies(tmp / "pdfs")
    raw = IngestConfig(chunking=ChunkingConfig(enabled=False))
    df = ingest_dataset([str(tmp / "pdfs")], "policies", raw, tmp / "ds", tmp / "cache").dataset.to_pandas()
    hand = [{"question": q, "evidence": e} for q, e, _ in QUESTIONS]
    gen = generated_questions(df)
    print(f"corpus: {df['source'].nunique()} PDFs, {len(df)} ingest rows; {len(hand)} hand-checked questions, "
          f"{len(gen)} generated")  # fmt: skip
    # the fusion weight: chosen on the generated questions (validation), reported on the hand-checked ones (test)
    build_kb(df, tmp / "kb-choose", KbConfig())
    choose = KnowledgeBase.load(tmp / "kb-choose")
    grid = [round(w, 1) for w in np.arange(0.0, 1.01, 0.1)]
    scores = {}
    for w in grid:
        choose.cfg = KbConfig(bm25_weight=w)
        scores[w] = evaluate(choose, gen, modes=("hybrid",))["hybrid"]["ndcg@10"]
    best = max(grid, key=lambda w: (scores[w], -abs(w - 0.5)))
    print("hybrid nDCG@10 on the generated questions by bm25_weight: " + ", ".join(f"{w}: {s:.3f}" for w, s in
          scores.items()) + f" -> {best}")  # fmt: skip
    print(f"{'chunker':9} {'questions':13} {'mode':7} {'recall@5':>8} {'MRR':>6} {'nDCG@10':>8} {'p50 ms':>7}")
    for chunker in ("sections", "ingest"):
        kb_dir = tmp / f"kb-{chunker}"
        counts = build_kb(df, kb_dir, KbConfig(chunker=chunker, bm25_weight=best))
        kb = KnowledgeBase.load(kb_dir)
        for name, qs in (("hand-checked", hand), ("generated", gen)):
            res = evaluate(kb, qs)
            for mode in ("vector", "bm25", "hybrid"):
                r = res[mode]
                print(f"{chunker:9} {name:13} {mode:7} {r['recall@5']:8.3f} {r['mrr']:6.3f} {r['ndcg@10']:8.3f} "
                      f"{r['latency_ms_p50']:7.1f}")  # fmt: skip
        print(f"  ({counts['chunks']} chunks; {res['unjudged']} generated questions without a relevant chunk)")

    if a.scale:
        rng = random.Random(0)
        words = " ".join(df["text"]).split()
        rows = []
        for i in range(a.scale):
            body = " ".join(rng.choice(words) for _ in range(60))
            rows.append({"text": f"Policy {i // 20}\n{i % 20 + 1}. Section {i}\n{body}.", "source": f"doc-{i // 20}",
                         "page": 1, "kind": "text"})  # fmt: skip
        big = pd.DataFrame(rows)
        t0 = time.perf_counter()
        counts = build_kb(big, tmp / "kb-big", KbConfig(chunker="ingest"))
        build_s = time.perf_counter() - t0
        kb = KnowledgeBase.load(tmp / "kb-big")
        qs = [q for q, _, _ in QUESTIONS] * 3
        for mode in ("vector", "bm25", "hybrid"):
            kb.search(qs[0], mode)
            ms = []
            for q in qs:
                t1 = time.perf_counter()
                kb.search(q, mode)
                ms.append((time.perf_counter() - t1) * 1000)
            print(f"{counts['chunks']} chunks, {mode:7}: query p50 {np.percentile(ms, 50):6.1f} ms, "
                  f"p95 {np.percentile(ms, 95):6.1f} ms")  # fmt: skip
        print(f"build: {counts['chunks']} chunks in {build_s:.1f} s ({counts['chunks'] / build_s:.0f} chunks/s)")
    print(f"date {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
