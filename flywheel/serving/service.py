"""The gateway's service layer: request -> engine -> interaction log -> response.

The pipeline order is cache -> guardrails -> RAG -> engine; this skeleton has the engine and the
interaction log, the other stages plug in before the engine call.

Each workload is served under its own name as an OpenAI model id. The engine serves the
registry's ``champion`` alias; the alias is re-read every ``reload_interval_s`` so a promotion or
a rollback reaches the gateway without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from flywheel.core.errors import UnknownModel
from flywheel.feedback.store import FeedbackStoreProtocol
from flywheel.serving.config import GatewaySettings
from flywheel.serving.engine import Engine, LocalEngine, UpstreamEngine

log = logging.getLogger("flywheel.gateway")


class EventSink(Protocol):
    def emit(self, event: str, resource: dict, payload: dict) -> None: ...


class NullSink:
    def emit(self, event, resource, payload) -> None:
        pass


@dataclass
class Served:
    base_path: str
    adapter: str | None
    version: str | None


class GatewayService:
    def __init__(
        self,
        settings: GatewaySettings,
        store: FeedbackStoreProtocol,
        resolve: Callable[[str], Served],
        events: EventSink | None = None,
        engine_factory: Callable[[str, Served], Engine] | None = None,
    ):
        self.settings = settings
        self.store = store
        self.resolve = resolve
        self.events = events or NullSink()
        self.engine_factory = engine_factory or self._default_engine
        self._engines: dict[str, Engine] = {}
        self._checked: dict[str, float] = {}
        self._lock = threading.Lock()

    def _default_engine(self, workload: str, served: Served) -> Engine:
        if self.settings.engine == "upstream":
            return UpstreamEngine(self.settings.upstream_url or "", workload, served.version)
        return LocalEngine(served.base_path, served.adapter, served.version, self.settings.device)

    def models(self) -> list[dict]:
        out = []
        for w in self.settings.workloads:
            eng = self._engines.get(w)
            out.append(
                {
                    "id": w,
                    "object": "model",
                    "created": 0,
                    "owned_by": "flywheel",
                    "version": eng.model_version if eng else None,
                }
            )
        return out

    def engine(self, workload: str) -> Engine:
        if workload not in self.settings.workloads:
            raise UnknownModel(workload)
        with self._lock:
            now = time.monotonic()
            eng = self._engines.get(workload)
            if eng is None or now - self._checked.get(workload, 0) >= self.settings.reload_interval_s:
                self._checked[workload] = now
                served = self.resolve(workload)
                if eng is None or eng.model_version != served.version:
                    log.info("serving %s version %s", workload, served.version)
                    eng = self.engine_factory(workload, served)
                    self._engines[workload] = eng
            return eng

    def chat(
        self,
        workload: str,
        messages: list[dict],
        max_tokens: int | None,
        temperature: float | None,
        seed: int | None,
        tenant: str,
    ) -> dict:
        eng = self.engine(workload)
        t0 = time.perf_counter()
        gen = eng.generate(messages, max_tokens or self.settings.max_new_tokens, temperature, seed)
        latency_ms = (time.perf_counter() - t0) * 1000
        iid = self.store.log_interaction(
            workload=workload,
            model=workload,
            model_version=eng.model_version,
            messages=messages,
            response=gen.text,
            latency_ms=latency_ms,
            tenant=tenant,
        )
        return {
            "id": iid,
            "text": gen.text,
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "finish_reason": gen.finish_reason,
            "model_version": eng.model_version,
            "latency_ms": round(latency_ms, 1),
        }

    def feedback(self, interaction_id: str, rating: int | None, correction: str | None, comment: str | None) -> dict:
        row = self.store.add_feedback(interaction_id, rating, correction, comment)
        if self.settings.emit_events:
            self.events.emit(
                "flywheel.feedback.received",
                {"prefect.resource.id": f"flywheel.workload.{row['workload']}", "flywheel.workload": row["workload"]},
                {
                    "interaction_id": interaction_id,
                    "rating": rating,
                    "has_correction": bool(correction),
                    "feedback_seq": row.get("feedback_seq"),  # the watermark a retrain fired by this reads up to
                    "model_version": row["model_version"],
                },
            )
        return row


def registry_resolver(registry, cache_dir) -> Callable[[str], Served]:
    """Resolve a workload's champion alias to local base/adapter folders."""
    from flywheel.training.models import resolve_base_model

    def resolve(workload: str) -> Served:
        ref = registry.champion(workload)
        if ref is None:
            raise UnknownModel(f"{workload} has no champion yet: run `flywheel run` first")
        base = resolve_base_model(ref.tags["base_model"], cache_dir)
        if ref.is_base:
            return Served(str(base), None, ref.version)
        return Served(str(base), str(registry.local_path(ref, Path(cache_dir) / "registry")), ref.version)

    return resolve
