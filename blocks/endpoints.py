"""Blocks for the endpoints the stages run on and call: a Dask scheduler for ingest and curation, and any
OpenAI-compatible server (teacher, judge, KB extractor, upstream engine, the gateway) — named ``block:<name>``
wherever a setting takes an endpoint URL."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator


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


class OpenAIEndpoint(Block):
    """Any OpenAI-compatible endpoint Flywheel calls as a client: a teacher for synthetic data, a judge, the
    KB's LLM extractor, an upstream engine (vLLM, trtllm-serve, NIM) or the Flywheel gateway itself."""

    _block_type_name = "Flywheel OpenAI Endpoint"
    _block_type_slug = "flywheel-openai-endpoint"
    _description = "An OpenAI-compatible server (base URL, model, API key) that Flywheel's flows call."

    base_url: str = Field(..., description="The server's base URL, e.g. http://vllm:8000 (without /v1).")
    model: str | None = Field(None, description="The model name to send (a setting's own model wins when given).")
    api_key: SecretStr | None = Field(None, description="Bearer token, if the endpoint wants one.")

    @field_validator("base_url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return url.rstrip("/").removesuffix("/v1")


def resolve_endpoint(value: str | None) -> tuple[str | None, str | None, str | None]:
    """(base URL, model, API key) of a setting that is a URL or ``block:<name>`` (an OpenAIEndpoint block): the
    flows accept a block name wherever they accept an endpoint URL."""
    if not value or not value.startswith("block:"):
        return value, None, None
    block = OpenAIEndpoint.load(value.removeprefix("block:"))
    key = block.api_key.get_secret_value() if block.api_key else None
    return block.base_url, block.model, key


def resolve_into(cfg, url_field: str, model_field: str):
    """(``cfg`` with its ``url_field`` resolved when it names a block — and ``model_field`` filled from the block
    when unset —, the block's API key or None)."""
    if not (getattr(cfg, url_field) or "").startswith("block:"):
        return cfg, None
    url, model, key = resolve_endpoint(getattr(cfg, url_field))
    return cfg.model_copy(update={url_field: url, model_field: getattr(cfg, model_field) or model}), key
