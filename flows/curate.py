"""Flow ``curate``: a document Dataset (or raw files, ingested first) -> curated Dataset + removed rows with reasons.

flywheel curate --in DATASET_DIR|FILES --out DIR [--config configs/curation/nemo-heuristics-en.yaml] [--json]
"""

from __future__ import annotations

from prefect import flow

from flywheel.core.dataset import is_dataset
from flywheel.curation.config import CurationConfig
from flywheel.ingest.config import ChunkingConfig, IngestConfig
from tasks.curate import curate_dataset
from tasks.ingest import ingest_documents


@flow(name="curate", log_prints=True)
def curate(dataset_path: str, name: str, config: CurationConfig = CurationConfig(), out: str | None = None) -> dict:
    source = dataset_path
    if not is_dataset(dataset_path):  # JSONL / Parquet / documents: ingest them first
        raw = IngestConfig(chunking=ChunkingConfig(enabled=False))
        source = ingest_documents([dataset_path], f"{name}-raw", raw)["path"]
    return curate_dataset(source, name, config, out)
