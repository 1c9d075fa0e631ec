"""Deploying a registered version to an engine (``flywheel deploy-model VERSION --target ...``).

- ``local``: the gateway's own engine. The version answers the canary prompts here first; then the rollout
  starts (``deploy.mode``: direct promotes it; canary / shadow let the gateway load it beside the champion and
  decide from live feedback — ``flywheel.serving.rollout``).
- ``vllm``: a running vLLM server started with ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``:
  the adapter is loaded under ``<workload>-v<version>`` through ``POST /v1/load_lora_adapter`` (the folder must be
  visible to the server at the same path), the canary prompts go through it, and the rollout starts; the
  gateway (``engine: upstream``, ``upstream_model: "{workload}-v{version}"``) sends each version's share there.
- ``trtllm``: writes ``trtllm-serve``'s ``--extra_llm_api_options`` YAML (LoRA, KV-cache block reuse,
  speculative decoding) for the version and returns the command that serves it on the GPU work pool.
"""

from __future__ import annotations

from pathlib import Path

from flywheel.serving.config import RolloutConfig
from flywheel.serving.engine import GenRequest
from flywheel.serving.rollout import canary_check


def canary_prompts(store, workload: str, n: int) -> list[list[dict]]:
    """The ``n`` most recent distinct live conversations of the workload (what users really send)."""
    seen, out = set(), []
    for r in reversed(store.list(workload)):
        if "shadow" in (r.get("guard_flags") or []) or not r["messages"] or r["messages"][0].get("role") == "prompt":
            continue
        key = str(r["messages"])
        if key not in seen:
            seen.add(key)
            out.append(r["messages"])
        if len(out) >= n:
            break
    return out


def run_canary(engine, prompts: list[list[dict]], labels: list[str], cfg: RolloutConfig, max_tokens=32) -> dict:
    """The canary prompt set through ``engine``: passes when no request fails and enough answers keep the
    answer contract."""
    answers, errors = [], []
    for messages in prompts:
        try:
            answers.append(engine.generate(GenRequest(messages=messages, max_tokens=max_tokens)).text)
        except Exception as e:  # noqa: BLE001 - a failing answer fails the canary, with its reason
            errors.append(f"{type(e).__name__}: {e}")
    ok, rate = canary_check(answers, labels, cfg)
    return {
        "prompts": len(prompts),
        "answered": len(answers),
        "errors": errors[:5],
        "format_rate": round(rate, 3),
        "passed": ok and not errors,
        "examples": answers[:3],
    }


def load_vllm_lora(
    base_url: str, name: str, path: str | Path, timeout: float = 120, api_key: str | None = None
) -> None:
    """Load an adapter into a running vLLM server under ``name`` (its runtime LoRA endpoint)."""
    import httpx

    r = httpx.post(
        f"{base_url.rstrip('/')}/v1/load_lora_adapter",
        json={"lora_name": name, "lora_path": str(path)},
        timeout=timeout,
        headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
    )
    if r.status_code >= 400:
        raise RuntimeError(f"vLLM refused the adapter {name}: {r.status_code} {r.text[:300]}")


def trtllm_options(adapter: str | Path, settings, max_lora_rank: int = 64) -> dict:
    """``trtllm-serve --extra_llm_api_options`` for a LoRA version: the adapter, KV-cache block reuse (prefix
    caching) and, when the gateway is configured for it, speculative decoding."""
    opts: dict = {
        "lora_config": {"lora_dir": [str(adapter)], "max_lora_rank": max_lora_rank, "max_loras": 2},
        "kv_cache_config": {"enable_block_reuse": True, "free_gpu_memory_fraction": 0.85},
    }
    if settings.speculative == "draft" and settings.draft_model:
        opts["speculative_config"] = {
            "decoding_type": "Eagle" if "eagle" in settings.draft_model.lower() else "DraftTarget",
            "max_draft_len": settings.num_speculative_tokens,
            "speculative_model_dir": settings.draft_model,
        }
    elif settings.speculative == "prompt_lookup":
        opts["speculative_config"] = {
            "decoding_type": "NGram",
            "max_draft_len": settings.num_speculative_tokens,
            "max_matching_ngram_size": 4,
        }
    return opts


def engine_for(
    reg, ref, workload, home_models, target: str, settings, upstream_url: str | None = None, api_key: str | None = None
):
    """The engine that answers as ``ref`` would in production: local (base + adapter here), or the vLLM
    server with the adapter loaded under ``<workload>-v<version>`` (``api_key``: its bearer token)."""
    from flywheel.core.errors import ConfigError
    from flywheel.serving.engine import LocalEngine, UpstreamEngine
    from flywheel.training.models import resolve_base_model

    adapter = None if ref.is_base else reg.local_path(ref, Path(home_models) / "registry")
    if target == "vllm":
        if not upstream_url:
            raise ConfigError("upstream_url: target vllm needs the server's URL")
        if adapter is None:
            model = settings.upstream_model.format(workload=workload.name, version=ref.version)
            return UpstreamEngine(upstream_url, model, ref.version, api_key=api_key)
        name = f"{workload.name}-v{ref.version}"
        load_vllm_lora(upstream_url, name, adapter, api_key=api_key)
        return UpstreamEngine(upstream_url, name, ref.version, api_key=api_key)
    base = resolve_base_model(workload.sft.base_model, home_models)
    return LocalEngine(base, adapter, ref.version, settings.device, max_batch_size=8)


def write_trtllm_options(reg, ref, workload, home, settings) -> dict:
    """``--target trtllm``: the options file for ``trtllm-serve`` and the command that serves it."""
    import yaml

    from flywheel.core.errors import ConfigError

    if ref.is_base:
        raise ConfigError("target: trtllm serves a LoRA version; the base model needs no options file")
    adapter = reg.local_path(ref, Path(home.models) / "registry")
    path = Path(home.root) / "deploy" / f"trtllm-{workload.name}-v{ref.version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(trtllm_options(adapter, settings), sort_keys=False))
    return {
        "options": str(path),
        "command": f"trtllm-serve <base model folder> --backend pytorch --extra_llm_api_options {path}",
    }
