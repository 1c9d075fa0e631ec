"""HTTP only: FastAPI routes, OpenAI-shaped errors, ``create_app(settings, service)``.

    POST /v1/chat/completions   chat, whole or streamed token by token (SSE; stream_options.include_usage)
    POST /v1/completions        a raw prompt, no chat template (whole or streamed)
    GET  /v1/models             each workload and the version it serves
    POST /v1/feedback           rating / correction / comment on an answer (idempotent)
    GET  /healthz               the process is up
    GET  /readyz                every engine is loaded, the rails warmed, and the store answers (503 otherwise)
    GET  /metrics               Prometheus

Every failure is an OpenAI error body ``{"error": {"message", "type", "param", "code"}}``: 400 invalid request,
401 no or bad API key, 404 unknown model or interaction, 429 over a rate limit (with ``Retry-After``), 503 the
store is down, 500 anything else. A failure after a stream started arrives as a last ``data: {"error": ...}``.
"""

from __future__ import annotations

import json
import logging
import math
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from flywheel.core.errors import (
    ContentFiltered,
    DataError,
    RateLimited,
    StoreUnavailable,
    Unauthorized,
    UnknownInteraction,
    UnknownModel,
)
from flywheel.serving.config import GatewaySettings
from flywheel.serving.engine import GenRequest
from flywheel.serving.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    FeedbackRequest,
    chunk,
    completion_response,
    error_body,
    usage,
)
from flywheel.serving.service import GatewayService

log = logging.getLogger("flywheel.gateway")


def error_response(exc: BaseException, model: str | None = None) -> JSONResponse:
    """The OpenAI-shaped error for an exception raised while serving a request."""
    if isinstance(exc, UnknownModel):
        msg = f"The model '{model}' does not exist" if str(exc) == model else str(exc)
        return JSONResponse(error_body(msg, "invalid_request_error", "model", "model_not_found"), 404)
    if isinstance(exc, UnknownInteraction):
        body = error_body(f"no interaction with id '{exc}'", "invalid_request_error", "id", "interaction_not_found")
        return JSONResponse(body, 404)
    if isinstance(exc, Unauthorized):
        return JSONResponse(error_body(str(exc), "authentication_error", None, "invalid_api_key"), 401)
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return JSONResponse(error_body(str(exc), "rate_limit_error", None, "rate_limit_exceeded"), 429, headers=headers)
    if isinstance(exc, StoreUnavailable):
        return JSONResponse(error_body(str(exc), "service_unavailable", None, "store_unavailable"), 503)
    if isinstance(exc, ContentFiltered):
        return JSONResponse(error_body(str(exc), "invalid_request_error", "messages", "content_filter"), 400)
    if isinstance(exc, (DataError, ValueError)):
        param = str(exc).split(":", 1)[0] if ":" in str(exc) else None
        return JSONResponse(error_body(str(exc), param=param), 400)
    log.error("internal error: %s", exc, exc_info=exc)
    return JSONResponse(error_body(f"internal error: {type(exc).__name__}", "internal_error"), 500)


def create_app(settings: GatewaySettings, service: GatewayService) -> FastAPI:
    app = FastAPI(title="Flywheel gateway", version="0.2.0")
    app.state.settings = settings
    app.state.service = service
    m = service.metrics

    def observe(endpoint: str, status: int, t0: float, workload="", version="", tenant="") -> None:
        m.requests.labels(endpoint, str(status), workload, version or "", tenant).inc()
        m.latency.labels(endpoint, workload, version or "", tenant).observe(time.perf_counter() - t0)

    def fail(endpoint: str, t0: float, exc: BaseException, model=None, tenant="") -> JSONResponse:
        resp = error_response(exc, model)
        m.errors.labels(endpoint, json.loads(resp.body)["error"]["type"]).inc()
        served = model if model in settings.workloads else "unknown"  # a client's made-up name is no label
        observe(endpoint, resp.status_code, t0, served if model else "", "", tenant)
        return resp

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": [], "msg": "invalid request"}
        param = ".".join(str(p) for p in first.get("loc", []) if p != "body") or None
        m.errors.labels("validation", "invalid_request_error").inc()
        return JSONResponse(error_body(f"{param}: {first['msg']}" if param else first["msg"], param=param), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception):
        return error_response(exc)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "models": service.models()}

    @app.get("/readyz")
    async def readyz():
        state = await run_in_threadpool(service.ready)
        return JSONResponse(state, 200 if state["ready"] else 503)

    @app.get("/metrics")
    async def metrics():
        return Response(m.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models(request: Request):
        t0 = time.perf_counter()
        try:
            service.auth.tenant(request.headers.get("authorization"), None)
        except Unauthorized as e:
            return fail("models", t0, e)
        return {"object": "list", "data": service.models()}

    async def generate(request: Request, req: ChatCompletionRequest | CompletionRequest, chat: bool):
        endpoint = "chat" if chat else "completions"
        t0 = time.perf_counter()
        tenant = None
        try:
            tenant = service.admit(request.headers.get("authorization"), request.headers.get("x-tenant") or req.user)
            stops = req.stops()
            if chat:
                messages = [
                    {"role": "system" if x.role == "developer" else x.role, "content": x.text()} for x in req.messages
                ]
                gen = GenRequest(messages=messages, max_tokens=req.max_completion_tokens or req.max_tokens or 0)
                gen.rag = req.rag
            else:
                gen = GenRequest(prompt=req.prompt_text(), max_tokens=req.max_tokens or 0)
            gen.temperature, gen.top_p, gen.seed, gen.stop = req.temperature, req.top_p, req.seed, stops
            bypass = request.headers.get("x-flywheel-cache", "").lower() == "bypass"
            gen.use_cache = not (bypass or "no-cache" in request.headers.get("cache-control", "").lower())
            if not req.stream:
                out = await run_in_threadpool(service.complete, req.model, gen, tenant)
            else:
                iid, eng, events = await run_in_threadpool(service.stream, req.model, gen, tenant)
        except Exception as e:  # noqa: BLE001 - every failure answers an OpenAI error
            return fail(endpoint, t0, e, req.model, tenant.name if tenant else "")
        if not req.stream:
            text = out["text"]
            if not chat and req.echo:
                text = gen.prompt + text
            keys = ("model_version", "latency_ms", "engine_ms", "cache", "guard", "rag")
            extra = {k: out[k] for k in keys if k in out}
            observe(endpoint, 200, t0, req.model, out["model_version"], tenant.name)
            return completion_response(
                out["id"], req.model, text, out["prompt_tokens"], out["completion_tokens"], out["finish_reason"],
                extra, chat=chat,
            )  # fmt: skip

        version = eng.model_version

        def sse():
            def data(obj) -> str:
                return f"data: {json.dumps(obj)}\n\n"

            status = 200
            try:
                if chat:
                    yield data(chunk(iid, req.model, {"role": "assistant", "content": ""}, None, True, version))
                elif req.echo:
                    yield data(chunk(iid, req.model, gen.prompt, None, False, version))
                for ev in events:
                    if isinstance(ev, str):
                        yield data(chunk(iid, req.model, {"content": ev} if chat else ev, None, chat, version))
                        continue
                    yield data(chunk(iid, req.model, {} if chat else "", ev["finish_reason"], chat, version))
                    if req.include_usage():
                        final = chunk(iid, req.model, None, None, chat, version)
                        final["usage"] = usage(ev["prompt_tokens"], ev["completion_tokens"])
                        yield data(final)
                yield "data: [DONE]\n\n"
            except Exception as e:  # noqa: BLE001 - the stream has started: the error is its last event
                resp = error_response(e, req.model)
                status = resp.status_code
                m.errors.labels(endpoint, json.loads(resp.body)["error"]["type"]).inc()
                yield f"data: {resp.body.decode()}\n\n"
            finally:
                events.close()
                observe(endpoint, status, t0, req.model, version, tenant.name)

        return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/chat/completions")
    async def chat(req: ChatCompletionRequest, request: Request):
        return await generate(request, req, chat=True)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        return await generate(request, req, chat=False)

    @app.post("/v1/feedback")
    async def feedback(req: FeedbackRequest, request: Request):
        t0 = time.perf_counter()
        try:
            service.auth.tenant(request.headers.get("authorization"), None)
            row = await run_in_threadpool(service.feedback, req.id, req.rating, req.correction, req.comment)
        except Exception as e:  # noqa: BLE001 - every failure answers an OpenAI error
            return fail("feedback", t0, e)
        observe("feedback", 200, t0, row["workload"], row["model_version"])
        return {
            "object": "feedback",
            "id": req.id,
            "workload": row["workload"],
            "rating": row["rating"],
            "model_version": row["model_version"],
            "feedback_seq": row.get("feedback_seq"),
            "duplicate": bool(row.get("duplicate")),
        }

    return app
