"""Gateway settings (``flywheel serve --config configs/gateway/*.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flywheel.core.config import ConfigModel


class GatewaySettings(ConfigModel):
    host: str = Field("127.0.0.1", description="Loopback by default; bind 0.0.0.0 only behind an auth proxy.")
    port: int = Field(8088, ge=1, le=65535)
    workloads: list[str] = Field(
        default_factory=lambda: ["fraud"], description="Workload names served as OpenAI model ids."
    )
    engine: Literal["local", "upstream"] = Field(
        "local",
        description="local: transformers in-process; upstream: an OpenAI-compatible engine (vLLM, trtllm-serve, NIM).",
    )
    upstream_url: str | None = Field(None, description="Base URL of the upstream engine when engine=upstream.")
    max_new_tokens: int = Field(32, ge=1, le=32_768)
    emit_events: bool = Field(True, description="Emit flywheel.feedback.received events for every feedback.")
    reload_interval_s: float = Field(
        10.0,
        ge=0,
        le=86_400,
        description="How often the champion alias is re-read; a promotion is served within this delay.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device of the local engine.")
