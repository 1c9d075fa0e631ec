"""Engines: what turns messages into text.

- :class:`LocalEngine` runs a transformers model in-process (base + merged LoRA adapter). CPU
  by default; CUDA with bf16 when present.
- :class:`UpstreamEngine` forwards to an OpenAI-compatible engine (vLLM, ``trtllm-serve``, NIM);
  the LoRA is chosen by model name, as those servers do.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class Engine(Protocol):
    model_version: str | None

    def generate(
        self, messages: list[dict], max_tokens: int, temperature: float | None, seed: int | None
    ) -> Generation: ...


class LocalEngine:
    def __init__(
        self, base_path: str | Path, adapter: str | Path | None, model_version: str | None, device: str = "auto"
    ):
        import torch

        from flywheel.training.models import load_model_and_tokenizer, pick_device

        self.device = pick_device(device)
        dtype = torch.bfloat16 if self.device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        self.model, self.tok = load_model_and_tokenizer(base_path, adapter, self.device, dtype)
        self.model_version = model_version
        self._lock = threading.Lock()  # one generate at a time: a CPU has no spare cores for two

    def generate(self, messages, max_tokens, temperature=None, seed=None) -> Generation:
        with self._lock:
            return generate_chat(self.model, self.tok, [messages], max_tokens, temperature, seed)[0]


def generate_chat(
    model,
    tok,
    conversations: list[list[dict]],
    max_new_tokens: int,
    temperature: float | None = None,
    seed: int | None = None,
) -> list[Generation]:
    """Answer several conversations in one batch (left-padded), greedy unless ``temperature`` > 0: what the
    gateway's local engine runs, and what the evaluation runs on the golden set."""
    import torch

    tok.padding_side = "left"
    prompts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in conversations]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {k: v.to(next(model.parameters()).device) for k, v in enc.items()}
    sample = bool(temperature and temperature > 0)
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": sample, "pad_token_id": tok.pad_token_id}
    if sample:
        kwargs["temperature"] = temperature
    with torch.no_grad():
        if seed is not None:
            torch.manual_seed(seed)
        out = model.generate(**enc, **kwargs)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    width = enc["input_ids"].shape[1]
    gens = []
    for i in range(len(conversations)):
        new = out[i, width:].tolist()
        ended = eos in new
        if ended:  # what follows the first EOS is padding of a batch that was still running
            new = new[: new.index(eos) + 1]
        elif pad is not None and pad != eos:
            new = [t for t in new if t != pad]
        text = tok.decode(new, skip_special_tokens=True).strip()
        prompt_tokens = int(enc["attention_mask"][i].sum())
        gens.append(
            Generation(text, prompt_tokens, len(new), "stop" if ended or len(new) < max_new_tokens else "length")
        )
    return gens


class UpstreamEngine:
    """An OpenAI-compatible upstream; the served model name selects the LoRA there."""

    def __init__(self, base_url: str, model: str, model_version: str | None = None, timeout: float = 120):
        import httpx

        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self.model = model
        self.model_version = model_version

    def generate(self, messages, max_tokens, temperature=None, seed=None) -> Generation:
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens}
        if temperature is not None:
            body["temperature"] = temperature
        if seed is not None:
            body["seed"] = seed
        r = self.client.post("/v1/chat/completions", json=body)
        r.raise_for_status()
        data = r.json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Generation(
            choice["message"].get("content") or "",
            usage.get("prompt_tokens", 0),
            usage.get("completion_tokens", 0),
            choice.get("finish_reason") or "stop",
        )
