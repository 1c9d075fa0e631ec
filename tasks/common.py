"""Helpers shared by the tasks: the home, the registry, and publishing stage counts."""

from __future__ import annotations

import logging

from prefect.artifacts import create_table_artifact
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from flywheel.core.home import Home
from flywheel.registry.mlflow_registry import Registry


def home() -> Home:
    return Home.resolve()


def registry(h: Home | None = None) -> Registry:
    h = h or home()
    return Registry(h.tracking_uri(), h.artifact_root())


def publish_counts(key: str, title: str, counts: dict) -> None:
    """Stage counts as a Prefect table artifact (the house rule: every stage shows total/kept/dropped)."""
    rows = [{"count": k, "value": v} for k, v in counts.items() if not isinstance(v, dict)]
    create_table_artifact(rows, key=key, description=title)


def logger():
    """The run logger inside a flow/task run (logs reach the Prefect UI), a plain logger outside."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("flywheel")
