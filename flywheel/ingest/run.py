"""The ingest stage as the Prefect tasks call it: files -> a document Dataset (+ ``quarantine.jsonl``), and a
Dataset -> its chunks. The backend (local readers on Dask, or an NV-Ingest service) is chosen here, by config.

    from flywheel.ingest.run import chunk_dataset, ingest_dataset
    ingested = ingest_dataset(["docs/"], "docs", IngestConfig(), home.datasets, home.cache / "ingest")
    ingested.dataset, ingested.quarantine, ingested.counts
    chunks, counts = chunk_dataset(ingested.dataset, "docs-chunks", cfg.chunking, home.datasets, home.models)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from flywheel.core.dataset import Dataset, DatasetWriter
from flywheel.core.steps import StepStats
from flywheel.ingest.config import ChunkingConfig, IngestConfig
from flywheel.ingest.engine import COLUMNS, run_ingest


@dataclass
class Ingested:
    dataset: Dataset
    files: int
    counts: dict  # total / kept / dropped_<reason> per file and per record
    extra: dict  # pages, table_pages_scanned, ocr_pages, skipped_known, ...
    quarantine: list[dict] = field(default_factory=list)  # also in <dataset>/quarantine.jsonl
    seconds: float = 0.0

    @property
    def quarantine_file(self) -> Path:
        return self.dataset.path / "quarantine.jsonl"

    @property
    def dropped(self) -> list[dict]:
        """Quarantined files and records; ``partial`` notes (a page whose OCR failed, ...) lose nothing."""
        return [q for q in self.quarantine if not q.get("partial")]

    def summary(self) -> dict:
        return {
            **self.dataset.summary(),
            "files": self.files,
            "counts": self.counts,
            "extra": self.extra,
            "seconds": round(self.seconds, 2),
            "quarantine": self.quarantine,
            "quarantine_file": str(self.quarantine_file),
        }


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "page" else "str") for c in COLUMNS})


def ingest_dataset(
    paths: list[str],
    name: str,
    cfg: IngestConfig,
    datasets_root: str | Path,
    cache_dir: str | Path,
    out: str | Path | None = None,
    progress=None,
) -> Ingested:
    """Files/folders -> Dataset ``name`` (at ``out``, or content-addressed under ``datasets_root``).

    Files already ingested with the same content and reader settings come from ``cache_dir``, so a
    retry re-reads only what was not finished. ``progress(stats)`` is called as files complete."""
    t0 = time.perf_counter()
    if cfg.backend == "nv_ingest":
        from flywheel.ingest.nv_ingest import run_nv_ingest

        result = run_nv_ingest(paths, cfg, cache_dir=cache_dir)
    else:
        result = run_ingest(paths, cfg, cache_dir=cache_dir, progress=progress)
    writer = DatasetWriter(
        datasets_root, name, config={"paths": sorted(map(str, paths)), "ingest": cfg.model_dump()}, path=out
    )
    try:
        wrote = False
        for df in result.frames():
            writer.write(df[COLUMNS])
            wrote = True
        if not wrote:
            writer.write(_empty())
        ds = writer.close()
    except BaseException:
        writer.abort()
        raise
    with (ds.path / "quarantine.jsonl").open("w") as f:
        for q in result.quarantine:
            f.write(json.dumps(q) + "\n")
    counts = result.stats.as_dict()
    counts.pop("seconds", None)
    return Ingested(ds, result.files, counts, result.extra, result.quarantine, time.perf_counter() - t0)


def chunk_dataset(
    src: Dataset,
    name: str,
    cfg: ChunkingConfig,
    datasets_root: str | Path,
    models_dir: str | Path,
    out: str | Path | None = None,
) -> tuple[Dataset, dict]:
    """Dataset -> ``name`` with token-window chunks (tables split only between rows), part by part so memory
    stays one part. Counts: total / kept / dropped_<reason> of the rows, plus ``chunks``, ``split_rows`` and
    ``oversize_table_rows``."""
    from flywheel.ingest.chunking import Chunker, encoder

    chunker = Chunker(cfg, encoder(cfg.tokenizer, models_dir))
    stats = StepStats("chunk")
    info_total = {"chunks": 0, "split_rows": 0, "oversize_table_rows": 0}
    with DatasetWriter(datasets_root, name, parents=[src.digest], config=cfg.model_dump(), path=out) as w:
        for part in src.parts():
            chunks, st, info = chunker.apply(pd.read_parquet(part))
            w.write(chunks)
            stats.add(st)
            for k, v in info.items():
                info_total[k] += v
    counts = {**stats.as_dict(), **info_total}
    counts.pop("seconds", None)
    return w.dataset, counts
