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


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=1, description="Only n=1 is served.")
    stream: bool = False
    user: str | None = None
    seed: int | None = None


class FeedbackRequest(_Lenient):
    id: str = Field(..., description="The chat completion id the feedback is about.")
    rating: Literal[1, -1] | None = None
    correction: str | None = Field(None, max_length=20_000)
    comment: str | None = Field(None, max_length=20_000)


def completion_response(
    iid: str, model: str, text: str, prompt_tokens: int, completion_tokens: int, finish_reason: str, extra: dict
) -> dict:
    return {
        "id": iid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": extra.get("model_version"),
        "flywheel": extra,
    }


def chunk(iid: str, model: str, delta: dict, finish_reason: str | None) -> dict:
    return {
        "id": iid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"
