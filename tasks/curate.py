"""Task: curate a document Dataset on Dask; removed rows go to a ``<name>-removed`` Dataset."""

from __future__ import annotations

from prefect import task

from flywheel.core.config import CurationConfig
from flywheel.core.dataset import read_dataset, write_dataset
from flywheel.curation.pipeline import curate
from tasks.common import home, logger, publish_counts


@task(name="curate-dataset", retries=1, tags=["curation"])
def curate_dataset(dataset_path: str, name: str, cfg: CurationConfig) -> dict:
    log = logger()
    h = home()
    src = read_dataset(dataset_path)
    kept, removed, stats = curate(src.to_pandas(), cfg, h.dask_address())
    out = write_dataset(kept, h.datasets, name, parents=[src.digest], config=cfg.model_dump())
    gone = write_dataset(removed, h.datasets, f"{name}-removed", parents=[src.digest], config=cfg.model_dump())
    log.info("curate %s: %s", name, stats["summary"])
    publish_counts(f"curate-{name}", f"Curation counts for {name}", stats["summary"])
    return {**out.summary(), "removed": gone.summary(), "counts": stats["summary"], "steps": stats["steps"],
            "parent": src.digest}
