"""MinHash throughput per core side by side: Flywheel's kernels vs datasketch and rensa, in one run.

Two Flywheel kernels: ``murmur3`` (the Curator preset: NeMo Curator's / cuDF's exact signatures)
and ``rolling`` (the faster CPU-only hash).

    pip install -e '.[bench]'     # datasketch and rensa
    python -m bench.minhash_vs_peers [--mb 8] [--ngram 24] [--hashes 260]

Same input, same shingles (character n-grams), same number of hashes, one core each. The peers get
their shingles from Python slicing (their documented way to feed them); that shingling is timed
with them, as ours is timed with our kernel. MB are UTF-8 megabytes of document text. Also checks
that the three agree on the Jaccard estimate of near-duplicate pairs (mean absolute difference to
the exact value).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from examples.near_duplicates import near_duplicate_corpus
from flywheel.curation.minhash import jaccard, shingle_set, signatures


def shingles(text: str, n: int) -> list[str]:
    return [text[i : i + n] for i in range(max(1, len(text) - n + 1))]


def ours(texts, n, k):
    return signatures(texts, "char", n, k, 42, hash="murmur3")


def ours_rolling(texts, n, k):
    return signatures(texts, "char", n, k, 42, hash="rolling")


def datasketch_sigs(texts, n, k):
    from datasketch import MinHash

    out = []
    for t in texts:
        m = MinHash(num_perm=k, seed=42)
        m.update_batch([s.encode("utf-8") for s in shingles(t, n)])
        out.append(m.hashvalues)
    return np.array(out)


def rensa_sigs(texts, n, k):
    from rensa import RMinHash

    out = []
    for t in texts:
        m = RMinHash(num_perm=k, seed=42)
        m.update(shingles(t, n))
        out.append(m.digest())
    return np.array(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=8.0, help="Corpus size for ours and rensa (datasketch gets a tenth)")
    p.add_argument("--ngram", type=int, default=24)
    p.add_argument("--hashes", type=int, default=260)
    a = p.parse_args(argv)
    print(
        json.dumps(
            {
                "machine": platform.machine(),
                "cores": os.cpu_count(),
                "numba_threads": 1,
                "ngram": a.ngram,
                "hashes": a.hashes,
            }
        )
    )
    df, _ = near_duplicate_corpus(int(a.mb * 1e6 / 2600) + 1, copies=(1, 1), seed=1)
    df = df.sort_values("id").reset_index(drop=True)  # each base next to its near-duplicate
    texts = df.text.tolist()
    mb = sum(len(t.encode()) for t in texts) / 1e6
    ours(texts[:4], a.ngram, a.hashes)  # compile (cached on disk after the first run)
    ours_rolling(texts[:4], a.ngram, a.hashes)
    rates = {}
    for name, fn, share in (
        ("flywheel", ours, 1.0),
        ("flywheel_rolling", ours_rolling, 1.0),
        ("rensa", rensa_sigs, 1.0),
        ("datasketch", datasketch_sigs, 0.1),
    ):
        sub = texts[: max(2, int(len(texts) * share))]
        sub_mb = sum(len(t.encode()) for t in sub) / 1e6
        t0 = time.perf_counter()
        sig = fn(sub, a.ngram, a.hashes)
        dt = time.perf_counter() - t0
        pairs = [(i, i + 1) for i in range(0, min(len(sub) - 1, 120), 2)]
        err = (
            float(
                np.mean(
                    [
                        abs(
                            (sig[i] == sig[j]).mean()
                            - jaccard(shingle_set(texts[i], "char", a.ngram), shingle_set(texts[j], "char", a.ngram))
                        )
                        for i, j in pairs
                    ]
                )
            )
            if pairs
            else None
        )
        rates[name] = sub_mb / dt
        print(
            json.dumps(
                {
                    "impl": name,
                    "mb": round(sub_mb, 2),
                    "seconds": round(dt, 3),
                    "mb_per_s_core": round(sub_mb / dt, 2),
                    "jaccard_abs_error": round(err, 4) if err is not None else None,
                    "pairs_checked": len(pairs),
                }
            )
        )
    print(
        json.dumps(
            {
                "corpus_mb": round(mb, 2),
                "ratios": {
                    "flywheel_vs_rensa": round(rates["flywheel"] / rates["rensa"], 1),
                    "flywheel_rolling_vs_rensa": round(rates["flywheel_rolling"] / rates["rensa"], 1),
                    "flywheel_vs_datasketch": round(rates["flywheel"] / rates["datasketch"], 1),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
