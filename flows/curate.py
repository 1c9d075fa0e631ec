"""Flow ``curate``: a document Dataset (or raw files, ingested first) -> curated Dataset + removed rows with reasons.

    flywheel curate --in DATASET_DIR|FILES --out DIR [--config configs/curation/nemo-heuristics-en.yaml] [--json]
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flywheel.core.config import CurationConfig, IngestConfig
from tasks.curate import curate_dataset
from tasks.ingest import ingest_documents


@flow(name="curate", log_prints=True)
def curate(dataset_path: str, name: str, config: CurationConfig = CurationConfig(), out: str | None = None) -> dict:
    source = dataset_path
    if not (Path(dataset_path) / "manifest.json").exists():  # JSONL / Parquet / documents: ingest them first
        source = ingest_documents([dataset_path], f"{name}-raw", IngestConfig(chunking={"enabled": False}))["path"]
    return curate_dataset(source, name, config, out)
