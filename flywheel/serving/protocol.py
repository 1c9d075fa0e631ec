"""OpenAI wire schemas, lenient like vLLM's: unknown fields are accepted and logged, not rejected."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger("flywheel.gateway")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _log_unknown(self):
        if self.model_extra:
            log.info("ignoring unknown request fields: %s", sorted(self.model_extra))
        return self


class ChatMessage(_Lenient):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text parts
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Sampling(_Lenient):
    model: str
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=1, description="Only n=1 is served.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    user: str | None = None
    seed: int | None = None

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4:
            raise ValueError("stop: at most 4 sequences")
        return [s for s in stops if s]

    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    rag: bool | None = Field(None, description="Flywheel: answer from the knowledge base (None: the workload decides).")


class CompletionRequest(_Sampling):
    """``POST /v1/completions``: one prompt string (a list of one is accepted), no chat template."""

    prompt: str | list[str]
    echo: bool = False

    def prompt_text(self) -> str:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise ValueError("prompt: only one prompt per request is served")
            return self.prompt[0]
        return self.prompt


class FeedbackRequest(_Lenient):
    id: str = Field(..., description="The chat completion id the feedback is about.")
    rating: Literal[1, -1] | None = None
    correction: str | None = Field(None, max_length=20_000)
    comment: str | None = Field(None, max_length=20_000)


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_response(
    iid: str,
    model: str,
    text: str,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str,
    extra: dict,
    chat: bool = True,
) -> dict:
    """A whole answer: ``chat.completion`` (``message``) or ``text_completion`` (``text``)."""
    choice = {"index": 0, "finish_reason": finish_reason, "logprobs": None}
    choice |= {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
    return {
        "id": iid,
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage(prompt_tokens, completion_tokens),
        "system_fingerprint": extra.get("model_version"),
        "flywheel": extra,
    }


def chunk(
    iid: str, model: str, delta: dict | str | None, finish_reason: str | None, chat: bool = True, fingerprint=None
) -> dict:
    """One streamed piece: ``chat.completion.chunk`` with a ``delta`` dict, or ``text_completion`` with ``text``;
    ``delta`` None: the closing usage chunk (``stream_options.include_usage``), with no choices."""
    choices = []
    if delta is not None:
        choice = {"index": 0, "finish_reason": finish_reason, "logprobs": None}
        choices = [choice | ({"delta": delta} if chat else {"text": delta})]
    return {
        "id": iid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": choices,
    }


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def new_id() -> str:
    return f"ix-{uuid.uuid4().hex}"
