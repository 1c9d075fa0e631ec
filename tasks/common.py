"""Helpers shared by the tasks: the home, the registry, the run logger, and publishing counts and summaries."""

from __future__ import annotations

import json
import logging

from prefect.artifacts import create_table_artifact
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from blocks.environment import apply_blocks
from flywheel.core.home import Home
from flywheel.registry.mlflow_registry import Registry

TRAINING_SLOT = "flywheel-training"  # the global concurrency limit training runs take a slot of
# The slot's lease: renewed while the run lives; the server frees the slot of a dead holder (a killed worker) when
# it expires (60 s is the shortest the API takes; Prefect's default is 300).
SLOT_LEASE_S = 60


def home() -> Home:
    """The project home, with the stores and endpoints of any Prefect blocks named in the environment
    (``FLYWHEEL_FEEDBACK_BLOCK``, ``FLYWHEEL_MLFLOW_BLOCK``, ``FLYWHEEL_DASK_BLOCK``: see ``blocks``) applied."""
    apply_blocks()
    return Home.resolve()


def registry(h: Home | None = None) -> Registry:
    h = h or home()
    return Registry(h.tracking_uri(), h.artifact_root())


def publish_counts(key: str, title: str, counts: dict) -> None:
    """Stage counts as a Prefect table artifact (the house rule: every stage shows total/kept/dropped)."""
    rows = [{"count": k, "value": v} for k, v in counts.items() if not isinstance(v, dict)]
    create_table_artifact(rows, key=key, description=title)


def write_summary(run_id: str, summary: dict) -> None:
    """A cycle's summary as ``<home>/runs/<run id>/summary.json`` (beside its checkpoints and adapter)."""
    out = home().runs / run_id
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


def logger():
    """The run logger inside a flow/task run (logs reach the Prefect UI), a plain logger outside."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("flywheel")
