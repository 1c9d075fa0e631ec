"""Write a workload's bundled sample data: labelled train/test JSONL, documents, general text.

flywheel generate --workload configs/workloads/fraud.yaml
"""

from __future__ import annotations

from pathlib import Path

from examples.documents import write_documents
from examples.fraud import generate, write_jsonl


def write_sample_data(cfg, out: Path) -> dict:
    if cfg.name != "fraud":
        raise ValueError(f"no bundled sample data for workload {cfg.name!r}: point inputs: at your own files")
    d = cfg.data
    return {
        "train": str(write_jsonl(generate(d.n_train, d.seed, d.noise, "train"), out / f"{cfg.name}-train.jsonl")),
        "test": str(write_jsonl(generate(d.n_test, d.seed + 1, 0.0, "test"), out / f"{cfg.name}-test.jsonl")),
        **write_documents(out),
    }
