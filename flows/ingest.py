"""Flow ``ingest``: files -> document Dataset (+ quarantine.jsonl) -> chunks.

flywheel ingest PATH... --out DIR [--config configs/ingest/default.yaml] [--json]
"""

from __future__ import annotations

from prefect import flow

from flywheel.ingest.config import IngestConfig
from tasks.ingest import chunk_documents, ingest_documents


@flow(name="ingest", log_prints=True)
def ingest(
    paths: list[str], name: str = "documents", config: IngestConfig = IngestConfig(), out: str | None = None
) -> dict:
    docs = ingest_documents(paths, name, config, out)
    if config.chunking.enabled:
        docs["chunks"] = chunk_documents(
            docs["path"], f"{name}-chunks", config.chunking, f"{docs['path']}/chunks" if out else None
        )
    return docs
