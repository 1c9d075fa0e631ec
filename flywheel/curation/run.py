"""The curation stage as the Prefect task calls it: a document Dataset -> the curated Dataset and the removed
rows with their reasons (``<name>-removed``, or ``OUT/removed`` with an output folder).

In memory (:func:`flywheel.curation.pipeline.curate`) or, for large sets, part by part with bounded memory
(:func:`flywheel.curation.streaming.curate_streaming`), as ``streaming:`` and the row count decide.

    from flywheel.curation.run import curate_dataset
    kept, removed, stats = curate_dataset(read_dataset(path), "docs-curated", cfg, home.datasets, home.cache)
"""

from __future__ import annotations

from pathlib import Path

from flywheel.core.dataset import Dataset, DatasetWriter, read_dataset, write_dataset
from flywheel.curation.config import CurationConfig
from flywheel.curation.pipeline import curate
from flywheel.curation.streaming import curate_streaming, use_streaming


def curate_dataset(
    src: Dataset,
    name: str,
    cfg: CurationConfig,
    datasets_root: str | Path,
    work_root: str | Path,
    dask_address: str | None = None,
    out: str | Path | None = None,
    log=None,
) -> tuple[Dataset, Dataset, dict]:
    """Curate ``src``; returns (kept Dataset, removed Dataset, stats with ``summary`` and per-step counts)."""
    out = str(out) if out else None
    if use_streaming(cfg, src.rows):
        # Bounded memory: part by part on the workers, streamed into the two Datasets. With an output folder
        # the removed rows belong inside the kept Dataset (DIR/removed): they are staged beside it and moved
        # in once DIR is published.
        kept_w = DatasetWriter(datasets_root, name, parents=[src.digest], config=cfg.model_dump(), path=out)
        removed_w = DatasetWriter(
            datasets_root,
            f"{name}-removed",
            parents=[src.digest],
            config=cfg.model_dump(),
            path=f"{out}.removed-staging" if out else None,
        )
        if log:
            log(f"curate {name}: streaming {src.rows} rows part by part")
        try:
            stats = curate_streaming(src, cfg, kept_w, removed_w, Path(work_root) / f"curate-{name}-work", dask_address)
            ds, gone = kept_w.close(), removed_w.close()
        except BaseException:
            kept_w.abort()
            removed_w.abort()
            raise
        if out:
            gone.path.rename(ds.path / "removed")
            gone = read_dataset(ds.path / "removed")
        return ds, gone, stats
    kept, removed, stats = curate(src.to_pandas(), cfg, dask_address)
    ds = write_dataset(kept, datasets_root, name, parents=[src.digest], config=cfg.model_dump(), path=out)
    gone = write_dataset(
        removed,
        datasets_root,
        f"{name}-removed",
        parents=[src.digest],
        config=cfg.model_dump(),
        path=f"{out}/removed" if out else None,
    )
    return ds, gone, stats
