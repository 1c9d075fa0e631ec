"""HTTP only: FastAPI routes, OpenAI-shaped errors, ``create_app(settings, service)``.

uvicorn --factory ...  or  flywheel serve   (POST /v1/chat/completions, GET /v1/models,
                                             POST /v1/feedback, GET /healthz)
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from flywheel.core.errors import UnknownInteraction, UnknownModel
from flywheel.serving.config import GatewaySettings
from flywheel.serving.protocol import ChatCompletionRequest, FeedbackRequest, chunk, completion_response, error_body
from flywheel.serving.service import GatewayService

log = logging.getLogger("flywheel.gateway")


def create_app(settings: GatewaySettings, service: GatewayService) -> FastAPI:
    app = FastAPI(title="Flywheel gateway", version="0.1.0")
    app.state.settings = settings
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": [], "msg": "invalid request"}
        param = ".".join(str(p) for p in first.get("loc", []) if p != "body") or None
        return JSONResponse(error_body(f"{param}: {first['msg']}" if param else first["msg"], param=param), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception):
        log.exception("internal error")
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", "internal_error"), 500)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "models": app.state.service.models()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": app.state.service.models()}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatCompletionRequest, request: Request):
        svc: GatewayService = app.state.service
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages]
        tenant = request.headers.get("x-tenant") or req.user or "default"
        try:
            out = await run_in_threadpool(
                svc.chat,
                req.model,
                messages,
                req.max_completion_tokens or req.max_tokens,
                req.temperature,
                req.seed,
                tenant,
            )
        except UnknownModel as e:
            msg = f"The model '{req.model}' does not exist" if str(e) == req.model else str(e)
            return JSONResponse(error_body(msg, "invalid_request_error", "model", "model_not_found"), 404)
        extra = {"model_version": out["model_version"], "latency_ms": out["latency_ms"]}
        body = completion_response(
            out["id"],
            req.model,
            out["text"],
            out["prompt_tokens"],
            out["completion_tokens"],
            out["finish_reason"],
            extra,
        )
        if not req.stream:
            return body

        def sse():
            # The local engine generates the whole answer first, then streams it as one delta.
            delta = {"role": "assistant", "content": out["text"]}
            yield f"data: {json.dumps(chunk(out['id'], req.model, delta, None))}\n\n"
            yield f"data: {json.dumps(chunk(out['id'], req.model, {}, out['finish_reason']))}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.post("/v1/feedback")
    async def feedback(req: FeedbackRequest):
        svc: GatewayService = app.state.service
        try:
            row = await run_in_threadpool(svc.feedback, req.id, req.rating, req.correction, req.comment)
        except UnknownInteraction:
            return JSONResponse(
                error_body(
                    f"no interaction with id '{req.id}'", "invalid_request_error", "id", "interaction_not_found"
                ),
                404,
            )
        except ValueError as e:
            return JSONResponse(error_body(str(e), param="rating"), 400)
        return {
            "object": "feedback",
            "id": req.id,
            "workload": row["workload"],
            "rating": row["rating"],
            "model_version": row["model_version"],
        }

    return app
