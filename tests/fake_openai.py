"""A fake OpenAI-compatible engine server (what vLLM / trtllm-serve / SGLang look like from the gateway) that
records every request it receives. For tests of the upstream engine and for the gateway's load benchmark, where
the engine must be fast and predictable; never a stand-in for the real model's answers.

    python -m tests.fake_openai --port 8100 [--token-delay-ms 0]
    GET /recorded -> the request bodies received so far

Its answer is ``"LEGIT: no fraud rule applies"`` (streamed as five pieces), or the ``answers`` mapping's value for
the request's model name.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

ANSWER = "LEGIT: no fraud rule applies"


def create_fake(token_delay_ms: float = 0.0, answers: dict | None = None) -> FastAPI:
    app = FastAPI()
    app.state.recorded = []
    app.state.loras = {}

    def pieces(text: str) -> list[str]:
        words = text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    async def answer(request: Request, chat: bool):
        body = await request.json()
        auth = request.headers.get("authorization")
        app.state.recorded.append({"path": request.url.path, **({"authorization": auth} if auth else {}), **body})
        text = (answers or {}).get(body.get("model"), ANSWER)
        parts = pieces(text)[: body.get("max_tokens") or None]
        text = "".join(parts)
        rid, now = f"cmpl-{len(app.state.recorded)}", int(time.time())
        usage = {"prompt_tokens": 12, "completion_tokens": len(parts), "total_tokens": 12 + len(parts)}
        obj = "chat.completion" if chat else "text_completion"
        if not body.get("stream"):
            if token_delay_ms:
                await asyncio.sleep(token_delay_ms * len(parts) / 1000)
            choice = {"index": 0, "finish_reason": "stop"}
            choice |= {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            return JSONResponse(
                {"id": rid, "object": obj, "created": now, "model": body["model"], "choices": [choice], "usage": usage}
            )

        async def sse():
            for p in parts:
                if token_delay_ms:
                    await asyncio.sleep(token_delay_ms / 1000)
                choice = {"index": 0, "finish_reason": None} | ({"delta": {"content": p}} if chat else {"text": p})
                piece = {"id": rid, "object": obj + (".chunk" if chat else ""), "choices": [choice]}
                yield f"data: {json.dumps(piece)}\n\n"
            last = {"index": 0, "finish_reason": "stop"} | ({"delta": {}} if chat else {"text": ""})
            yield f"data: {json.dumps({'id': rid, 'choices': [last]})}\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield f"data: {json.dumps({'id': rid, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await answer(request, True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await answer(request, False)

    @app.post("/v1/load_lora_adapter")
    async def load_lora(request: Request):  # vLLM's runtime LoRA endpoint (VLLM_ALLOW_RUNTIME_LORA_UPDATING)
        body = await request.json()
        app.state.recorded.append({"path": request.url.path, **body})
        app.state.loras[body["lora_name"]] = body["lora_path"]
        return JSONResponse({"status": "ok"})

    @app.post("/v1/unload_lora_adapter")
    async def unload_lora(request: Request):
        body = await request.json()
        app.state.recorded.append({"path": request.url.path, **body})
        app.state.loras.pop(body["lora_name"], None)
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": k, "object": "model"} for k in ["base", *app.state.loras]]}

    @app.get("/recorded")
    async def recorded():
        return app.state.recorded

    return app


if __name__ == "__main__":
    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token-delay-ms", type=float, default=0.0)
    a = ap.parse_args()
    uvicorn.run(create_fake(a.token_delay_ms), host="127.0.0.1", port=a.port, log_level="warning")
