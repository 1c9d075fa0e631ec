"""Tasks: ingest files into a document Dataset (quarantine what cannot be read), and chunk it."""

from __future__ import annotations

import json
import time

import pandas as pd
from prefect import task

from flywheel.core.config import ChunkingConfig, IngestConfig
from flywheel.core.dataset import DatasetWriter, read_dataset
from flywheel.ingest.engine import COLUMNS, run_ingest
from tasks.common import home, logger, publish_counts


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "page" else "str") for c in COLUMNS})


@task(name="ingest-documents", retries=1, tags=["ingest"])
def ingest_documents(paths: list[str], name: str, config: IngestConfig | None = None, out: str | None = None) -> dict:
    """Files/folders -> Dataset ``name`` (at ``out``, or content-addressed under the home) + quarantine.jsonl.

    Files already ingested with the same content and reader settings come from the cache
    (``<home>/cache/ingest``); a retry of this task therefore re-reads only what was not finished.
    """
    log = logger()
    h = home()
    cfg = config or IngestConfig()
    t0 = time.perf_counter()
    if cfg.backend == "nv_ingest":
        from flywheel.ingest.nv_ingest import run_nv_ingest

        result = run_nv_ingest(paths, cfg, cache_dir=h.cache / "ingest")
    else:
        def progress(s: dict) -> None:
            pages = f", {s['pages_done']}/{s['pages_known']} PDF pages" if s["pages_known"] else ""
            log.info("ingest %s: %d/%d files%s", name, s["files_done"], s["files"], pages)

        result = run_ingest(paths, cfg, cache_dir=h.cache / "ingest", progress=progress)
    writer = DatasetWriter(h.datasets, name, config={"paths": sorted(map(str, paths)), "ingest": cfg.model_dump()}, path=out)
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
    qfile = ds.path / "quarantine.jsonl"
    with qfile.open("w") as f:
        for q in result.quarantine:
            f.write(json.dumps(q) + "\n")
    for q in result.quarantine:
        where = f":{q['line']}" if "line" in q else f" p.{q['page']}" if "page" in q else ""
        log.warning("%s %s%s: %s (%s)", "noted" if q.get("partial") else "quarantined", q["path"], where, q["reason"], q["error"])
    counts = result.stats.as_dict()
    counts.pop("seconds", None)
    seconds = time.perf_counter() - t0
    log.info("ingest %s: %s files -> %s rows in %.1f s, %s quarantined, %s unchanged files reused", name, result.files,
             ds.rows, seconds, sum(1 for q in result.quarantine if not q.get("partial")), result.extra["skipped_known"])
    publish_counts(f"ingest-{name}", f"Ingest counts for {name}", {**counts, **{k: v for k, v in result.extra.items()
                                                                                  if isinstance(v, int)}})
    return {**ds.summary(), "files": result.files, "counts": counts, "extra": result.extra, "seconds": round(seconds, 2),
            "quarantine": result.quarantine, "quarantine_file": str(qfile)}


@task(name="chunk-documents", tags=["ingest"])
def chunk_documents(dataset: str, name: str, config: ChunkingConfig, out: str | None = None) -> dict:
    """Dataset -> ``name`` with token-window chunks (tables split only between rows)."""
    from flywheel.ingest.chunking import Chunker, encoder

    log = logger()
    h = home()
    src = read_dataset(dataset)
    chunker = Chunker(config, encoder(config.tokenizer, h.models))
    info_total = {"chunks": 0, "split_rows": 0, "oversize_table_rows": 0}
    with DatasetWriter(h.datasets, name, parents=[src.digest], config=config.model_dump(), path=out) as w:
        from flywheel.core.steps import StepStats

        stats = StepStats("chunk")
        parts = sorted(src.path.glob("part-*.parquet"))
        for part in parts:  # part by part: memory stays one part
            chunks, st, info = chunker.apply(pd.read_parquet(part))
            w.write(chunks)
            stats.total += st.total
            stats.kept += st.kept
            stats.dropped.update(st.dropped)
            stats.modified += st.modified
            for k, v in info.items():
                info_total[k] += v
    ds = w.dataset
    counts = {**stats.as_dict(), **info_total}
    counts.pop("seconds", None)
    log.info("chunk %s: %s rows -> %s chunks (%s tokens max, %s overlap, tokenizer %s)", name, stats.total, ds.rows,
             config.chunk_tokens, config.overlap_tokens, config.tokenizer)
    publish_counts(f"chunk-{name}", f"Chunk counts for {name}", counts)
    return {**ds.summary(), "counts": counts}
