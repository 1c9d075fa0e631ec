"""Flow ``refresh-data``: the workload's inputs ingested and curated again (incrementally: unchanged files come
from the ingest cache), and its knowledge base brought up to date — the first half of a cycle, on a schedule
(deployment ``refresh-data/nightly-<workload>``, ``schedules.refresh_cron``). Each new Dataset announces itself
(``flywheel.dataset.created``).

    flywheel deploy --workload configs/workloads/fraud.yaml     (creates the nightly deployment)
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flywheel.core.workload import load_named
from tasks.common import home
from tasks.curate import curate_dataset
from tasks.ingest import ingest_documents
from tasks.kb import build as build_kb

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "workloads"


@flow(name="refresh-data", log_prints=False)
def refresh_data(workload: str = "fraud", config_path: str | None = None) -> dict:
    cfg = load_named(workload, config_path, CONFIG_DIR)
    inp = cfg.inputs.resolved(home().root, workload, require=("train",))
    raw_train = ingest_documents(inp.train, f"{workload}-train-raw", cfg.ingest)
    train = curate_dataset(raw_train["path"], f"{workload}-train", cfg.curation)
    out = {"workload": workload, "train": {k: train[k] for k in ("digest", "rows", "counts")}}
    if inp.documents:
        raw_docs = ingest_documents(inp.documents, f"{workload}-documents-raw", cfg.ingest)
        docs = curate_dataset(raw_docs["path"], f"{workload}-documents", cfg.curation)
        out["documents"] = {k: docs[k] for k in ("digest", "rows", "counts")}
        if cfg.kb is not None:
            out["kb"] = build_kb(docs["path"], str(home().kb / workload), cfg.kb)
    return out
