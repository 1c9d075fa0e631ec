"""Flow ``kb-build``: a Dataset (or document files, ingested first) -> the knowledge base, rebuilt incrementally
(only new or changed documents are re-embedded).

flywheel kb build --in DATASET|FILES --out KB_DIR [--config F] [--rebuild]
"""

from __future__ import annotations

from prefect import flow

from flywheel.core.dataset import is_dataset
from flywheel.ingest.config import ChunkingConfig, IngestConfig
from flywheel.rag.config import KbConfig
from tasks.ingest import ingest_documents
from tasks.kb import build


@flow(name="kb-build", log_prints=False)
def kb_build(source: str, kb_dir: str, config: KbConfig | None = None, rebuild: bool = False, name: str = "kb") -> dict:
    config = config or KbConfig()
    dataset = source
    if not is_dataset(source):  # documents: ingest them first (rows as read; the KB chunks them itself)
        rows_as_read = IngestConfig(chunking=ChunkingConfig(enabled=False))
        dataset = ingest_documents([source], f"{name}-documents", rows_as_read)["path"]
    return {"dataset": dataset, "kb": kb_dir, **build(dataset, kb_dir, config, rebuild)}
