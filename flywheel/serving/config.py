"""Gateway settings (``flywheel serve --config configs/gateway/*.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from flywheel.core.config import ConfigModel
from flywheel.curation.config import PiiConfig
from flywheel.guard.config import GuardConfig
from flywheel.rag.config import GatewayRagConfig


class ConfiguredKey(ConfigModel):
    tenant: str = Field(..., min_length=1, max_length=128)
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the key (never the key).")
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)


class CacheConfig(ConfigModel):
    """The response cache (``flywheel.serving.cache``)."""

    mode: Literal["off", "exact", "semantic"] = Field(
        "semantic", description="off; exact (the same user message); semantic (MiniLM cosine + near-miss guard)."
    )
    threshold: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Semantic: least cosine similarity of a hit (0.75: chosen on the validation pairs, "
        "bench/cache_pairs.py).",
    )
    near_miss_guard: bool = Field(
        True, description="Semantic: a hit must state the same numbers, amounts, times and names."
    )
    model: str | None = Field(
        None,
        description="Semantic: a trained similarity model (flywheel cache-train writes <home>/models/"
        "cache-similarity/<workload>.json); a cosine hit must also reach its threshold.",
    )
    ttl_s: float = Field(3600, gt=0, description="Seconds an answer stays reusable.")
    max_entries: int = Field(10_000, ge=1, description="Entries kept (least recently used go first).")


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
    upstream_url: str | None = Field(
        None,
        description="Base URL of the upstream engine when engine=upstream, or block:<name> (an OpenAI endpoint "
        "block: its URL and API key).",
    )
    upstream_api_key: SecretStr | None = Field(
        None, description="Bearer token of the upstream engine (set from its block; keep it out of config files)."
    )
    upstream_model: str = Field(
        "{workload}",
        description="The model name sent upstream, {workload} and {version} filled in: the LoRA adapter's name "
        "there (vLLM --lora-modules, trtllm-serve, SGLang --lora-paths).",
    )
    max_new_tokens: int = Field(32, ge=1, le=32_768)
    emit_events: bool = Field(
        True, description="Send flywheel.feedback.received for every feedback (through the store's outbox)."
    )
    reload_interval_s: float = Field(
        10.0,
        ge=0,
        le=86_400,
        description="How often the champion alias is re-read; a promotion is served within this delay.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device of the local engine.")
    max_batch_size: int = Field(8, ge=1, le=512, description="Local engine: most requests in one generate call.")
    batch_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="Local engine: how long an idle engine waits for more requests to batch."
    )
    prefix_cache: bool = Field(
        False, description="Local engine: compute each system prompt's KV cache once and reuse it (lone requests)."
    )
    speculative: Literal["none", "prompt_lookup", "draft"] = Field(
        "none",
        description="Local engine, lone requests: speculative decoding through transformers' assisted generation "
        "(prompt_lookup: n-grams of the prompt; draft: draft_model proposes). Greedy answers do not change.",
    )
    num_speculative_tokens: int = Field(10, ge=1, le=64, description="Tokens proposed per verification step.")
    draft_model: str | None = Field(None, description="speculative: draft — a smaller model with the same tokenizer.")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="The response cache of every workload.")
    cache_per_workload: dict[str, CacheConfig] = Field(
        default_factory=dict, description="A workload's own cache settings (mode off / exact / semantic...)."
    )
    pii: PiiConfig = Field(
        default_factory=PiiConfig,
        description="PII rail: Presidio masking of requests and answers before the engine, the store, the logs and "
        "the user (enabled: true to turn it on; the same recognisers as curation).",
    )
    pii_per_workload: dict[str, PiiConfig] = Field(default_factory=dict, description="A workload's own pii settings.")
    guard: GuardConfig = Field(
        default_factory=GuardConfig,
        description="Rails of every workload: injection (on), topic (off), moderation (on), fact_check (off).",
    )
    guard_per_workload: dict[str, GuardConfig] = Field(
        default_factory=dict,
        description="A workload's own rails (topic exemplars, refusal text...), set field by field over guard.",
    )
    rag: GatewayRagConfig = Field(
        default_factory=GatewayRagConfig, description="RAG of every workload (off by default): the KB's sources."
    )
    rag_per_workload: dict[str, GatewayRagConfig] = Field(
        default_factory=dict, description="A workload's own RAG settings (its knowledge base)."
    )
    auth: Literal["auto", "required", "off"] = Field(
        "auto",
        description="API keys: required; off (the tenant is X-Tenant or user); auto: required once a key was created.",
    )
    api_keys: list[ConfiguredKey] = Field(default_factory=list, description="Keys in config (hashed).")
    default_rpm: int | None = Field(None, ge=1, description="Requests per minute of a tenant without its own.")
    default_tpm: int | None = Field(None, ge=1, description="Tokens per minute of a tenant without its own.")

    def guard_for(self, workload: str) -> GuardConfig:
        """The workload's rails: ``guard`` with what ``guard_per_workload[workload]`` sets on top (field by field,
        so a workload that only adds its topic keeps the global refusal, lists and thresholds)."""
        own = self.guard_per_workload.get(workload)
        if own is None:
            return self.guard

        def merge(base: dict, top: dict) -> dict:
            return {k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                    for k, v in {**base, **top}.items()}  # fmt: skip

        return GuardConfig.model_validate(merge(self.guard.model_dump(), own.model_dump(exclude_unset=True)))

    def rag_for(self, workload: str) -> GatewayRagConfig:
        return self.rag_per_workload.get(workload, self.rag)

    @model_validator(mode="after")
    def _one_speed_up(self):
        # Measured (bench/serving_engine.py): assisted generation over a reused prefix cache changed greedy
        # answers; the two are not combined.
        if self.prefix_cache and self.speculative != "none":
            raise ValueError("prefix_cache: cannot be combined with speculative decoding (it changes answers)")
        if self.speculative == "draft" and not self.draft_model:
            raise ValueError("draft_model: speculative: draft needs a draft model folder")
        return self


class RolloutConfig(ConfigModel):
    """How a new version reaches live traffic (a workload's ``deploy:``; ``flywheel deploy-model``)."""

    mode: Literal["direct", "canary", "shadow"] = Field(
        "direct",
        description="direct: all traffic at once; canary: `share` of live requests answered by the new version; "
        "shadow: it answers `share` of requests in the background, never to the user.",
    )
    share: float = Field(0.2, gt=0, le=1, description="Share of live requests the new version takes (or shadows).")
    canary_prompts: int = Field(20, ge=0, le=10_000, description="Recent live prompts it must answer first.")
    canary_min_format: float = Field(
        0.9, ge=0, le=1, description="Share of those answers that must start with a workload label."
    )
    min_rated: int = Field(20, ge=1, description="Rated answers of the new version before it is decided.")
    max_accuracy_drop: float = Field(
        0.05, ge=0, le=1, description="Rolled back when its rated accuracy is this far below the champion's."
    )
    max_guard_block_rate: float = Field(0.05, ge=0, le=1, description="Rolled back above this share of blocks.")
    max_latency_ratio: float = Field(
        3.0, gt=0, description="Rolled back when its p95 latency is this many times the champion's."
    )
