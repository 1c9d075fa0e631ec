"""Task: ingest files into a document Dataset; quarantine what cannot be read."""

from __future__ import annotations

import json

import pandas as pd
from prefect import task

from flywheel.core.dataset import write_dataset
from flywheel.ingest.readers import ingest_paths
from tasks.common import home, logger, publish_counts

COLUMNS = ["id", "text", "source", "page", "kind", "meta"]


@task(name="ingest-documents", retries=1, tags=["ingest"])
def ingest_documents(paths: list[str], name: str) -> dict:
    log = logger()
    h = home()
    result = ingest_paths(paths)
    df = pd.DataFrame(result.rows, columns=COLUMNS)
    ds = write_dataset(df, h.datasets, name, config={"paths": sorted(map(str, paths))})
    qfile = ds.path / "quarantine.jsonl"
    with qfile.open("w") as f:
        for q in result.quarantine:
            f.write(json.dumps(q) + "\n")
    for q in result.quarantine:
        log.warning("quarantined %s%s: %s (%s)", q["path"], f":{q['line']}" if "line" in q else "", q["reason"], q["error"])
    counts = result.stats.as_dict()
    counts.pop("seconds", None)
    log.info("ingest %s: %s files -> %s rows, %s quarantined", name, result.files, ds.rows, len(result.quarantine))
    publish_counts(f"ingest-{name}", f"Ingest counts for {name}", counts)
    return {**ds.summary(), "files": result.files, "counts": counts, "extra": result.extra,
            "quarantine": result.quarantine,
            "quarantine_file": str(qfile)}
