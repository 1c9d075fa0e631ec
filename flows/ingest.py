"""Flow ``ingest``: files -> document Dataset (+ quarantine.jsonl).

    flywheel ingest PATH... --name docs [--json]
"""

from __future__ import annotations

from prefect import flow

from tasks.ingest import ingest_documents


@flow(name="ingest", log_prints=True)
def ingest(paths: list[str], name: str = "documents") -> dict:
    return ingest_documents(paths, name)
