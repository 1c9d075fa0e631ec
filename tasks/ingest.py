"""Tasks: ingest files into a document Dataset (quarantine what cannot be read), and chunk it."""

from __future__ import annotations

from prefect import task

from flywheel.core.dataset import read_dataset
from flywheel.ingest.config import ChunkingConfig, IngestConfig
from flywheel.ingest.run import chunk_dataset, ingest_dataset
from tasks.common import home, logger, publish_counts
from tasks.events import dataset_created


@task(name="ingest-documents", retries=1, tags=["ingest"])
def ingest_documents(paths: list[str], name: str, config: IngestConfig | None = None, out: str | None = None) -> dict:
    """Files/folders -> Dataset ``name`` (at ``out``, or content-addressed under the home) + quarantine.jsonl.

    Files already ingested with the same content and reader settings come from the cache
    (``<home>/cache/ingest``); a retry of this task therefore re-reads only what was not finished.
    """
    log = logger()
    h = home()

    def progress(s: dict) -> None:
        pages = f", {s['pages_done']}/{s['pages_known']} PDF pages" if s["pages_known"] else ""
        log.info("ingest %s: %d/%d files%s", name, s["files_done"], s["files"], pages)

    res = ingest_dataset(paths, name, config or IngestConfig(), h.datasets, h.cache / "ingest", out, progress)
    for q in res.quarantine:
        where = f":{q['line']}" if "line" in q else f" p.{q['page']}" if "page" in q else ""
        log.warning(
            "%s %s%s: %s (%s)",
            "noted" if q.get("partial") else "quarantined",
            q["path"],
            where,
            q["reason"],
            q["error"],
        )
    log.info(
        "ingest %s: %s files -> %s rows in %.1f s, %s quarantined, %s unchanged files reused",
        name,
        res.files,
        res.dataset.rows,
        res.seconds,
        len(res.dropped),
        res.extra["skipped_known"],
    )
    publish_counts(
        f"ingest-{name}",
        f"Ingest counts for {name}",
        {**res.counts, **{k: v for k, v in res.extra.items() if isinstance(v, int)}},
    )
    dataset_created(res.dataset.summary(), "ingest")
    return res.summary()


@task(name="chunk-documents", tags=["ingest"])
def chunk_documents(dataset: str, name: str, config: ChunkingConfig, out: str | None = None) -> dict:
    """Dataset -> ``name`` with token-window chunks (tables split only between rows)."""
    log = logger()
    h = home()
    src = read_dataset(dataset)
    ds, counts = chunk_dataset(src, name, config, h.datasets, h.models, out)
    log.info(
        "chunk %s: %s rows -> %s chunks (%s tokens max, %s overlap, tokenizer %s)",
        name,
        counts["total"],
        ds.rows,
        config.chunk_tokens,
        config.overlap_tokens,
        config.tokenizer,
    )
    publish_counts(f"chunk-{name}", f"Chunk counts for {name}", counts)
    return {**ds.summary(), "counts": counts}
