"""Engines: what turns a request into text, whole (``generate``) or token by token (``stream``).

- :class:`LocalEngine` runs a transformers model in-process (base + merged LoRA adapter), CPU or CUDA. Concurrent
  requests are batched dynamically (``serving.batching``): requests that arrive within ``batch_wait_ms`` of each
  other share one ``generate`` call, and each one's tokens stream to its own client as they are decoded.
- :class:`UpstreamEngine` forwards to an OpenAI-compatible engine (vLLM, ``trtllm-serve``, SGLang, NIM); the
  request's workload and version pick the LoRA adapter there by model name, as those servers do.

``stream`` yields ``str`` deltas and, last, the :class:`Generation` (the whole text and the token counts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass
class GenRequest:
    """One request to an engine: chat ``messages`` (the chat template applies) or a raw ``prompt``."""

    messages: list[dict] | None = None
    prompt: str | None = None
    max_tokens: int = 32
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    use_cache: bool = True  # False: the request bypasses the gateway's response cache
    contexts: list[str] | None = None  # retrieved knowledge the answer must be consistent with (fact-check rail)
    rag: bool | None = None  # the request's own choice (None: the workload's rag.mode decides)

    @property
    def sampled(self) -> bool:
        return bool(self.temperature and self.temperature > 0)

    def batch_key(self) -> tuple | None:
        """Requests with equal keys can share one ``generate`` call: every greedy request, and sampled ones with
        the same temperature and top_p. A seeded sampled request runs alone (its answer must not depend on
        what it was batched with)."""
        if not self.sampled:
            return ("greedy",)
        if self.seed is not None:
            return None
        return ("sample", self.temperature, self.top_p)


class Engine(Protocol):
    model_version: str | None

    def generate(self, req: GenRequest) -> Generation: ...

    def stream(self, req: GenRequest) -> Iterator[str | Generation]: ...

    def queue_depth(self) -> int: ...

    def close(self) -> None: ...


def collect(events: Iterator[str | Generation]) -> Generation:
    """The final :class:`Generation` of a stream."""
    final = None
    for ev in events:
        if isinstance(ev, Generation):
            final = ev
    if final is None:
        raise RuntimeError("the engine's stream ended without a result")
    return final


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop string (not streamed yet)."""
    hold = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:n]):
                hold = n
                break
    return hold


@dataclass
class DecodeOptions:
    """What a lone request (a batch of one) may use: the system prompt's KV cache computed once and reused
    (``prefix_cache``), and speculative decoding through transformers' assisted generation — ``prompt_lookup``
    (candidate tokens copied from the prompt's n-grams) or ``draft`` (a small model with the same tokenizer
    proposes them) — verified by the model, so greedy answers do not change. Not both: assisted generation
    over a reused prefix cache changed answers when measured. Batches of several run plainly
    (left padding breaks a shared prefix, and assisted generation takes one sequence)."""

    prefix_cache: bool = False
    speculative: str = "none"  # none | prompt_lookup | draft
    num_speculative_tokens: int = 10
    draft: object | None = None  # the loaded draft model
    _prefixes: dict = field(default_factory=dict)  # system prompt -> (token ids, cache)

    def prefix_for(self, model, tok, req: GenRequest, ids):
        """A copy of the cached KV of the request's system prompt (computed on first use), or None."""
        import copy

        import torch

        if not self.prefix_cache or not req.messages or req.messages[0].get("role") != "system":
            return None
        key = req.messages[0].get("content") or ""
        if key not in self._prefixes:
            text = tok.apply_chat_template(req.messages[:1], tokenize=False)
            pids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(ids.device)
            with torch.no_grad():
                out = model(input_ids=pids, use_cache=True)
            cache = getattr(out, "cache", None) or out.past_key_values
            if len(self._prefixes) >= 16:
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[key] = (pids[0].tolist(), cache)
        pids, cache = self._prefixes[key]
        if ids.shape[1] <= len(pids) or ids[0, : len(pids)].tolist() != pids:
            return None  # the prompt does not start with those tokens (a tokenizer boundary): no reuse
        return copy.deepcopy(cache)


class LocalEngine:
    """A transformers model in this process, fed by a dynamic batcher."""

    def __init__(
        self,
        base_path: str | Path,
        adapter: str | Path | None,
        model_version: str | None,
        device: str = "auto",
        max_batch_size: int = 8,
        batch_wait_ms: float = 5.0,
        options: DecodeOptions | None = None,
        draft_path: str | Path | None = None,
    ):
        import torch

        from flywheel.serving.batching import Batcher
        from flywheel.training.models import load_model_and_tokenizer, pick_device

        self.device = pick_device(device)
        dtype = torch.bfloat16 if self.device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        self.model, self.tok = load_model_and_tokenizer(base_path, adapter, self.device, dtype)
        self.model_version = model_version
        self.options = options or DecodeOptions()
        if self.options.speculative == "draft":
            if not draft_path:
                from flywheel.core.errors import ConfigError

                raise ConfigError("speculative: draft needs draft_model (a folder with a smaller model)")
            self.options.draft = load_model_and_tokenizer(draft_path, None, self.device, dtype)[0]
        self._batcher = Batcher(self._run_batch, max_batch_size, batch_wait_ms, name=f"engine-v{model_version}")

    def generate(self, req: GenRequest) -> Generation:
        return collect(self.stream(req))

    def stream(self, req: GenRequest) -> Iterator[str | Generation]:
        return self._batcher.submit(req)

    def queue_depth(self) -> int:
        return self._batcher.depth()

    def close(self) -> None:
        self._batcher.stop()

    def _run_batch(self, jobs) -> None:
        run_batch(self.model, self.tok, jobs, self.options)


def _prompt_text(tok, req: GenRequest) -> str:
    if req.messages is not None:
        return tok.apply_chat_template(req.messages, add_generation_prompt=True, tokenize=False)
    return req.prompt or ""


def run_batch(model, tok, jobs, options: DecodeOptions | None = None) -> None:
    """One ``generate`` call for ``jobs`` (``batching.Job``: a request and where its tokens go), left-padded.
    Each job gets its deltas as they are decoded and its :class:`Generation` when it ends: at EOS, at a stop
    string, at its own ``max_tokens``, or when its client went away; the call stops when every job has ended.
    Greedy batched answers equal one-at-a-time answers (``test_evaluation``'s batched == single check)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList
    from transformers.generation.streamers import BaseStreamer

    reqs = [j.req for j in jobs]
    tok.padding_side = "left"
    # the chat template writes its own special tokens; a raw prompt is taken as it is (as vLLM's completions)
    enc = tok([_prompt_text(tok, r) for r in reqs], return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {k: v.to(next(model.parameters()).device) for k, v in enc.items()}
    prompt_tokens = [int(n) for n in enc["attention_mask"].sum(dim=1)]
    eos, pad = tok.eos_token_id, tok.pad_token_id
    states = [_JobState(j, p) for j, p in zip(jobs, prompt_tokens, strict=True)]

    class Fanout(BaseStreamer):
        """Hands each step's token of row i to job i (the first ``put`` is the prompt)."""

        def __init__(self):
            self.prompt_seen = False

        def put(self, value):
            if not self.prompt_seen:
                self.prompt_seen = True
                return
            col = value.reshape(len(states), -1)
            for st, row in zip(states, col.tolist(), strict=True):
                for t in row:
                    st.add(tok, t, eos, pad)

        def end(self):
            pass

    class AllEnded(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.tensor([st.done for st in states], device=input_ids.device)

    r0 = reqs[0]
    kwargs = {
        "max_new_tokens": max(r.max_tokens for r in reqs),
        "do_sample": r0.sampled,
        "pad_token_id": pad,
        "streamer": Fanout(),
        "stopping_criteria": StoppingCriteriaList([AllEnded()]),
    }
    if r0.sampled:
        kwargs["temperature"] = r0.temperature
        if r0.top_p is not None:
            kwargs["top_p"] = r0.top_p
    if options is not None and len(jobs) == 1:
        cache = options.prefix_for(model, tok, r0, enc["input_ids"]) if options.speculative == "none" else None
        if cache is not None:  # never with assisted generation: together they changed answers (measured)
            kwargs["cache"] = cache
        if options.speculative == "prompt_lookup":
            kwargs["prompt_lookup_num_tokens"] = options.num_speculative_tokens
        elif options.speculative == "draft" and options.draft is not None:
            kwargs["assistant_model"] = options.draft
            kwargs["num_assistant_tokens"] = options.num_speculative_tokens
    try:
        with torch.no_grad():
            if r0.seed is not None:
                torch.manual_seed(r0.seed)
            model.generate(**enc, **kwargs)
    except BaseException as e:
        for st in states:
            st.fail(e)
        raise
    for st in states:
        st.finish(tok, "length")


class _JobState:
    """One job's decoded tokens, what of them was streamed, and how it ended."""

    def __init__(self, job, prompt_tokens: int):
        self.job, self.prompt_tokens = job, prompt_tokens
        self.tokens: list[int] = []
        self.sent = ""
        self.done = False

    def add(self, tok, t: int, eos, pad) -> None:
        if self.done:
            return
        if self.job.cancelled:
            self.done = True
            return
        if t == eos:
            self.tokens.append(t)
            self.finish(tok, "stop")
            return
        if pad is not None and pad != eos and t == pad:
            return
        self.tokens.append(t)
        text = tok.decode(self.tokens, skip_special_tokens=True).lstrip()
        text, stopped = cut_at_stop(text, self.job.req.stop)
        if stopped:
            self.finish(tok, "stop", text)
            return
        if len(self.tokens) >= self.job.req.max_tokens:
            self.finish(tok, "length", text)
            return
        if text.endswith("\ufffd"):  # half a multi-byte character: wait for the rest
            return
        upto = len(text) - held_back(text, self.job.req.stop)
        if upto > len(self.sent):
            self.job.put(text[len(self.sent) : upto])
            self.sent = text[:upto]

    def finish(self, tok, reason: str, text: str | None = None) -> None:
        if self.done:
            return
        self.done = True
        if text is None:
            text = tok.decode(self.tokens, skip_special_tokens=True).lstrip()
            text = cut_at_stop(text, self.job.req.stop)[0]
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.job.put(text[len(self.sent) :])
        self.job.put(Generation(text.strip(), self.prompt_tokens, len(self.tokens), reason))

    def fail(self, e: BaseException) -> None:
        if not self.done:
            self.done = True
            self.job.put(e)


def generate_chat(
    model,
    tok,
    conversations: list[list[dict]],
    max_new_tokens: int,
    temperature: float | None = None,
    seed: int | None = None,
) -> list[Generation]:
    """Answer several conversations in one batch (left-padded), greedy unless ``temperature`` > 0: what the
    gateway's local engine runs (``run_batch``), and what the evaluation runs on the golden set."""
    from flywheel.serving.batching import Job

    jobs = [
        Job(GenRequest(messages=m, max_tokens=max_new_tokens, temperature=temperature, seed=seed))
        for m in conversations
    ]
    run_batch(model, tok, jobs)
    return [collect(j.events()) for j in jobs]


class UpstreamEngine:
    """An OpenAI-compatible upstream (vLLM, trtllm-serve, SGLang, NIM); ``model`` names the LoRA adapter there."""

    def __init__(
        self,
        base_url: str,
        model: str,
        model_version: str | None = None,
        timeout: float = 120,
        api_key: str | None = None,
    ):
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)
        self.model = model
        self.model_version = model_version

    def _body(self, req: GenRequest, stream: bool) -> tuple[str, dict]:
        body: dict = {"model": self.model, "max_tokens": req.max_tokens}
        for k in ("temperature", "top_p", "seed"):
            if getattr(req, k) is not None:
                body[k] = getattr(req, k)
        if req.stop:
            body["stop"] = req.stop
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        if req.messages is not None:
            return "/v1/chat/completions", body | {"messages": req.messages}
        return "/v1/completions", body | {"prompt": req.prompt or ""}

    @staticmethod
    def _text(choice: dict) -> str:
        if "message" in choice:
            return choice["message"].get("content") or ""
        if "delta" in choice:
            return choice["delta"].get("content") or ""
        return choice.get("text") or ""

    def generate(self, req: GenRequest) -> Generation:
        path, body = self._body(req, stream=False)
        r = self.client.post(path, json=body)
        r.raise_for_status()
        data = r.json()
        choice, usage = data["choices"][0], data.get("usage") or {}
        return Generation(
            self._text(choice),
            usage.get("prompt_tokens", 0),
            usage.get("completion_tokens", 0),
            choice.get("finish_reason") or "stop",
        )

    def stream(self, req: GenRequest) -> Iterator[str | Generation]:
        path, body = self._body(req, stream=True)
        parts, finish, usage = [], "stop", {}
        with self.client.stream("POST", path, json=body) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                obj = json.loads(data)
                usage = obj.get("usage") or usage
                for choice in obj.get("choices") or []:
                    if delta := self._text(choice):
                        parts.append(delta)
                        yield delta
                    finish = choice.get("finish_reason") or finish
        text = "".join(parts)
        yield Generation(text, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), finish)

    def queue_depth(self) -> int:
        return 0  # the upstream queues; its own metrics say how deep

    def close(self) -> None:
        self.client.close()
