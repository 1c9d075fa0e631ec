"""Flow ``curate``: a document Dataset -> curated Dataset (+ removed rows with reasons).

    flywheel curate DATASET_DIR --name docs-curated [--config configs/curation/default.yaml] [--json]
"""

from __future__ import annotations

from prefect import flow

from flywheel.core.config import CurationConfig
from tasks.curate import curate_dataset


@flow(name="curate", log_prints=True)
def curate(dataset_path: str, name: str, config: CurationConfig = CurationConfig()) -> dict:
    return curate_dataset(dataset_path, name, config)
