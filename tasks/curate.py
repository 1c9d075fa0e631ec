"""Task: curate a document Dataset on Dask; removed rows go to a ``<name>-removed`` Dataset (or ``OUT/removed``)."""

from __future__ import annotations

import json

from prefect import task

from flywheel.core.config import CurationConfig
from flywheel.core.dataset import DatasetWriter, read_dataset, write_dataset
from flywheel.curation.pipeline import curate
from flywheel.curation.streaming import curate_streaming, use_streaming
from tasks.common import home, logger, publish_counts, registry


def _log_mlflow(cfg: CurationConfig, src, out, gone, stats: dict, name: str) -> str | None:
    """One MLflow run per curation (experiment ``flywheel-curation``): the recipe, every count, the datasets."""
    reg = registry()
    with reg.mlflow.start_run(experiment_id=reg.experiment_id("curation"), run_name=f"curate-{name}", nested=True) as run:
        params = {k: (json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)
                  for k, v in cfg.model_dump().items()}
        reg.mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
        reg.mlflow.log_metrics({k: float(v) for k, v in stats["summary"].items()})
        for step, counts in stats["steps"].items():
            reg.mlflow.log_metrics({f"{step}.{k}": float(v) for k, v in counts.items() if isinstance(v, (int, float))})
        reg.log_dataset(str(src.path), src.name, src.digest, "source")
        reg.log_dataset(str(out.path), out.name, out.digest, "curated")
        reg.mlflow.log_dict(stats, "curation_counts.json")
        return run.info.run_id


@task(name="curate-dataset", retries=1, tags=["curation"])
def curate_dataset(dataset_path: str, name: str, cfg: CurationConfig, out: str | None = None) -> dict:
    log = logger()
    h = home()
    src = read_dataset(dataset_path)
    if use_streaming(cfg, src.rows):
        # Bounded memory: part by part on the workers, streamed into the two Datasets. With --out DIR the
        # removed rows belong inside the kept Dataset (DIR/removed): they are staged beside it and moved in
        # once DIR is published.
        kept_w = DatasetWriter(h.datasets, name, parents=[src.digest], config=cfg.model_dump(), path=out)
        removed_w = DatasetWriter(h.datasets, f"{name}-removed", parents=[src.digest], config=cfg.model_dump(),
                                  path=f"{out}.removed-staging" if out else None)
        log.info("curate %s: streaming %s rows part by part", name, src.rows)
        try:
            stats = curate_streaming(src, cfg, kept_w, removed_w, h.cache / f"curate-{name}-work", h.dask_address())
            ds, gone = kept_w.close(), removed_w.close()
        except BaseException:
            kept_w.abort()
            removed_w.abort()
            raise
        if out:
            gone.path.rename(ds.path / "removed")
            gone = read_dataset(ds.path / "removed")
    else:
        kept, removed, stats = curate(src.to_pandas(), cfg, h.dask_address())
        ds = write_dataset(kept, h.datasets, name, parents=[src.digest], config=cfg.model_dump(), path=out)
        gone = write_dataset(removed, h.datasets, f"{name}-removed", parents=[src.digest], config=cfg.model_dump(),
                             path=f"{out}/removed" if out else None)
    log.info("curate %s: %s", name, stats["summary"])
    for step, counts in stats["steps"].items():
        log.info("  %-15s %s", step, counts)
    publish_counts(f"curate-{name}", f"Curation counts for {name}", stats["summary"])
    run_id = _log_mlflow(cfg, src, ds, gone, stats, name)
    return {**ds.summary(), "removed": gone.summary(), "counts": stats["summary"], "steps": stats["steps"],
            "parent": src.digest, "mlflow_run_id": run_id}
