"""Blocks for the endpoints the stages run on: a Dask scheduler for ingest and curation."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, field_validator


class DaskScheduler(Block):
    """A running Dask scheduler (CPU workers, or dask-cuda workers for ``backend: cudf``)."""

    _block_type_name = "Flywheel Dask Scheduler"
    _block_type_slug = "flywheel-dask-scheduler"
    _description = "The Dask scheduler Flywheel's ingest and curation run on instead of an in-process cluster."

    address: str = Field(..., description="Scheduler address, e.g. tcp://dask-scheduler:8786.")

    @field_validator("address")
    @classmethod
    def _has_scheme(cls, address: str) -> str:
        if "://" not in address:
            raise ValueError("address needs a scheme, e.g. tcp://host:8786")
        return address

    def environment(self) -> dict[str, str]:
        return {"FLYWHEEL_DASK_ADDRESS": self.address}
