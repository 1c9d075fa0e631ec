"""Asking an OpenAI-compatible endpoint (the gateway, vLLM, trtllm-serve, a teacher) for one greedy answer per
prompt, and reading answers written as ``a | b | c`` lines — what the KB's LLM extractor and the synthetic-data
teacher both do.

    answers = chat_each("http://127.0.0.1:8088", "fraud", ["Extract the facts: ..."], max_tokens=256)
    rows = pipe_fields(answers[0], 3)        # [["subject", "relation", "object"], ...]
"""

from __future__ import annotations


def chat_each(
    url: str, model: str | None, prompts: list[str], api_key: str | None = None, max_tokens: int = 256,
    timeout: float = 60.0,
) -> list[str]:  # fmt: skip
    """One chat completion (temperature 0) per prompt; "" where the request failed or the answer had no text."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    out = []
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers) as client:
        for prompt in prompts:
            body = {"model": model, "temperature": 0, "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
            try:
                r = client.post("/v1/chat/completions", json=body)
                r.raise_for_status()
                out.append(r.json()["choices"][0]["message"]["content"] or "")
            except (httpx.HTTPError, KeyError, IndexError, ValueError):
                out.append("")
    return out


def pipe_fields(text: str, n: int) -> list[list[str]]:
    """The lines of ``text`` that are ``n`` fields separated by ``|`` (list bullets removed), fields stripped."""
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip("-* ").split("|")]
        if len(parts) == n:
            rows.append(parts)
    return rows
