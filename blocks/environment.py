"""Blocks named in the environment become the variables the domain reads.

    FLYWHEEL_FEEDBACK_BLOCK=prod python -c "from blocks.environment import apply_blocks; print(apply_blocks())"
    -> ['FLYWHEEL_DATABASE_URL']

Each block is loaded once per process (a flow run is a process); a name with no block behind it fails fast,
with the variable's name, as a ConfigError.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from blocks.endpoints import DaskScheduler
from blocks.stores import DatasetStore, FeedbackDatabase, MlflowServer
from flywheel.core.errors import ConfigError

NAMED_BY = {
    "FLYWHEEL_FEEDBACK_BLOCK": FeedbackDatabase,
    "FLYWHEEL_MLFLOW_BLOCK": MlflowServer,
    "FLYWHEEL_DASK_BLOCK": DaskScheduler,
    "FLYWHEEL_DATASETS_BLOCK": DatasetStore,
}
_loaded: dict[tuple[str, str], dict[str, str]] = {}


def block_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The variables that the blocks named in ``environ`` (default: this process's) stand for."""
    environ = os.environ if environ is None else environ
    env: dict[str, str] = {}
    for var, cls in NAMED_BY.items():
        name = environ.get(var)
        if not name:
            continue
        if (var, name) not in _loaded:
            try:
                block = cls.load(name)
            except ValueError as e:
                raise ConfigError(
                    f"{var}={name}: no {cls.get_block_type_name()} block of that name on the Prefect server ({e})"
                ) from None
            _loaded[var, name] = block.environment()
        env.update(_loaded[var, name])
    return env


def apply_blocks(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set the variables of every named block in ``environ`` (over any plain value); returns their names."""
    environ = os.environ if environ is None else environ
    env = block_environment(environ)
    environ.update(env)
    return sorted(env)


def register_block_types() -> list[str]:
    """Register the block types with the Prefect API (idempotent), so the UI offers their forms."""
    from blocks import BLOCK_TYPES

    for cls in BLOCK_TYPES:
        cls.register_type_and_schema()
    return [cls.get_block_type_slug() for cls in BLOCK_TYPES]
