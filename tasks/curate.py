"""Task: curate a document Dataset on Dask; removed rows go to a ``<name>-removed`` Dataset (or ``OUT/removed``)."""

from __future__ import annotations

from prefect import task

from flywheel.core.dataset import read_dataset
from flywheel.curation.config import CurationConfig
from flywheel.curation.run import curate_dataset as curate
from tasks.common import home, logger, publish_counts, registry
from tasks.events import dataset_created


@task(name="curate-dataset", retries=1, tags=["curation"])
def curate_dataset(dataset_path: str, name: str, cfg: CurationConfig, out: str | None = None) -> dict:
    log = logger()
    h = home()
    src = read_dataset(dataset_path)
    ds, gone, stats = curate(src, name, cfg, h.datasets, h.cache, h.dask_address(), out, log=log.info)
    log.info("curate %s: %s", name, stats["summary"])
    for step, counts in stats["steps"].items():
        log.info("  %-15s %s", step, counts)
    publish_counts(f"curate-{name}", f"Curation counts for {name}", stats["summary"])
    run_id = registry().log_curation(cfg, src, ds, stats, name)
    dataset_created(ds.summary(), "curate")
    return {
        **ds.summary(),
        "removed": gone.summary(),
        "counts": stats["summary"],
        "steps": stats["steps"],
        "parent": src.digest,
        "mlflow_run_id": run_id,
    }
