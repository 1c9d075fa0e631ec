"""Flow ``kb-build``: a Dataset (or document files, ingested first) -> the knowledge base, rebuilt incrementally
(only new or changed documents are re-embedded).

flywheel kb build --in DATASET|FILES --out KB_DIR [--config F] [--rebuild]

Flow ``kb-synth``: the same documents -> question -> answer (+ rationale) pairs, filtered and leakage-checked,
as a Dataset of SFT rows and KB judgments.

flywheel kb synth --in DATASET|FILES --out DATASET_DIR [--config F] [--holdout JSONL]
"""

from __future__ import annotations

from prefect import flow

from flywheel.core.dataset import is_dataset
from flywheel.ingest.config import ChunkingConfig, IngestConfig
from flywheel.rag.config import KbConfig
from flywheel.synth.config import SynthConfig
from tasks.ingest import ingest_documents
from tasks.kb import build, synthesize_qa


@flow(name="kb-build", log_prints=False)
def kb_build(source: str, kb_dir: str, config: KbConfig | None = None, rebuild: bool = False, name: str = "kb") -> dict:
    config = config or KbConfig()
    dataset = _documents(source, name)
    return {"dataset": dataset, "kb": kb_dir, **build(dataset, kb_dir, config, rebuild)}


@flow(name="kb-synth", log_prints=False)
def kb_synth(source: str, out: str, config: SynthConfig | None = None, holdout: list[str] | None = None,
             name: str = "kb") -> dict:  # fmt: skip
    dataset = _documents(source, name)
    return {"dataset": dataset, **synthesize_qa(dataset, out, config or SynthConfig(), holdout or [])}


def _documents(source: str, name: str) -> str:
    if is_dataset(source):
        return source
    rows_as_read = IngestConfig(chunking=ChunkingConfig(enabled=False))  # the KB chunks the rows itself
    return ingest_documents([source], f"{name}-documents", rows_as_read)["path"]
