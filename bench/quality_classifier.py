"""Quality classifier (embedding head) side by side with NeMo Curator's heuristic filter set, in one run:
what each removes of labelled junk and keeps of prose, and the classifier's throughput on one core.

    python -m bench.quality_classifier [--train 400] [--docs 1000]

Data: examples/quality.py (coherent prose = High; SEO copy, word salad, clickbait, listing spam = Low),
training and test sets from different seeds. The heuristic side is configs/curation/nemo-heuristics-en.yaml
without its WordCountFilter (these documents are 30-120 words; Curator's 50-word floor would judge length,
not quality). Throughput: MiniLM embeddings + the linear head, batch 64, one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

from examples.quality import quality_corpus
from flywheel.core.config import load_config
from flywheel.curation.config import CurationConfig
from flywheel.curation.heuristics import FilterSet
from flywheel.curation.quality import load_classifier, train_classifier


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=400)
    p.add_argument("--docs", type=int, default=1000)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    print(json.dumps({"machine": platform.machine(), "cores": os.cpu_count(), "torch_threads": 1}))
    test = quality_corpus(a.docs, seed=101)
    texts = [r["text"] for r in test]
    is_low = np.array([r["label"] == "Low" for r in test])
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        metrics = train_classifier(quality_corpus(a.train, seed=100), d)
        train_s = time.perf_counter() - t0
        clf = load_classifier(d, "cpu")
        clf.predict(texts[:8])  # load the encoder
        t0 = time.perf_counter()
        preds, _ = clf.predict(texts)
        dt = time.perf_counter() - t0
    removed_clf = np.array([x == "Low" for x in preds])
    specs = [
        s
        for s in load_config("configs/curation/nemo-heuristics-en.yaml", CurationConfig).heuristics
        if s["filter"] != "WordCountFilter"
    ]
    fs = FilterSet(specs)
    removed_heur = np.array([fs.reason(t) is not None for t in texts])
    mb = sum(len(t.encode()) for t in texts) / 1e6
    for name, removed in (
        ("quality_classifier", removed_clf),
        ("nemo_heuristics", removed_heur),
        ("both", removed_clf | removed_heur),
    ):
        kinds = {
            k: round(float(removed[[r["kind"] == k for r in test]].mean()), 3)
            for k in ("seo", "salad", "clickbait", "listing")
        }
        print(
            json.dumps(
                {
                    "method": name,
                    "junk_removed": round(float(removed[is_low].mean()), 3),
                    "prose_kept": round(float((~removed[~is_low]).mean()), 3),
                    "removed_by_kind": kinds,
                }
            )
        )
    print(
        json.dumps(
            {
                "train_rows": a.train,
                "train_seconds": round(train_s, 1),
                "holdout_accuracy": metrics["holdout_accuracy"],
                "docs": len(texts),
                "docs_per_s_core": round(len(texts) / dt, 1),
                "mb_per_s_core": round(mb / dt, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
