"""The gateway's service layer: tenant -> rate limit -> engine -> capture -> response.

The pipeline: PII masking -> input rails (injection, topic) -> cache -> engine -> output rails (moderation,
fact check) -> PII masking (``flywheel.guard.rails``). With RAG on for the workload (``rag:``) or asked by the
request (``rag: true``), the question is routed and retrieved from the knowledge base after the input rails, the
numbered sources go before it (the response cache is bypassed: the KB changes under its answers), the fact check
gets the sources as its contexts, and the answer ends with its sources (streamed as one piece). A blocked request
is answered with the rail's refusal (``finish_reason: content_filter``) and logged with its reason in
``guard_flags``.

Each workload is served under its own name as an OpenAI model id. The engine serves the registry's
``champion`` alias — on a fresh home the base model, registered as version 1 — and the alias is re-read every
``reload_interval_s``: a new version is loaded beside the old one, which keeps answering until the new one is
ready and then drains its queue (no request fails over a promotion). A version in a canary or shadow rollout
(``flywheel.serving.rollout``) is loaded beside the champion and takes (or shadows) its share of requests; the
feedback on its answers decides, in the gateway, whether it is promoted or rolled back.

**Durable capture**: an answer is acknowledged (returned, or its stream closed with ``[DONE]``) only after its
interaction row is committed; feedback and its event are committed together (the event in the store's outbox,
delivered by an :class:`~flywheel.feedback.outbox.OutboxRelay`). A store outage answers 503
(:class:`StoreUnavailable`) and loses nothing that was acknowledged.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flywheel.core.errors import ContentFiltered, StoreUnavailable, UnknownModel
from flywheel.feedback.store import FeedbackStoreProtocol
from flywheel.serving.config import GatewaySettings
from flywheel.serving.engine import DecodeOptions, Engine, Generation, GenRequest, LocalEngine, UpstreamEngine
from flywheel.serving.metrics import GatewayMetrics
from flywheel.serving.protocol import new_id
from flywheel.serving.tenants import Authenticator, KeyStore, RateLimiter, Tenant

log = logging.getLogger("flywheel.gateway")


@dataclass
class Served:
    base_path: str
    adapter: str | None
    version: str | None


def _cache_info(look) -> dict:
    sim = None if look.similarity is None else round(look.similarity, 4)
    return {"result": look.result, "similarity": sim}


def _store_call(fn, *args, **kwargs):
    """A store call; a database outage becomes :class:`StoreUnavailable` (HTTP 503)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    try:
        return fn(*args, **kwargs)
    except (OperationalError, DBAPIError) as e:
        raise StoreUnavailable(f"the feedback store is unavailable: {type(e.orig or e).__name__}") from e


class GatewayService:
    def __init__(
        self,
        settings: GatewaySettings,
        store: FeedbackStoreProtocol,
        resolve: Callable[..., Served],
        sink=None,
        engine_factory: Callable[[str, Served], Engine] | None = None,
        keys: KeyStore | None = None,
        metrics: GatewayMetrics | None = None,
        rollouts=None,
        workloads: dict | None = None,
        seed: int | None = None,
    ):
        import random

        from flywheel.feedback.outbox import OutboxRelay

        self.settings = settings
        self.store = store
        self.resolve = resolve
        self.engine_factory = engine_factory or self._default_engine
        self.metrics = metrics or GatewayMetrics()
        self.auth = Authenticator(
            settings.auth,
            keys,
            [k.model_dump() for k in settings.api_keys],
            settings.default_rpm,
            settings.default_tpm,
        )
        self.limits = RateLimiter()
        self.relay = OutboxRelay(store, sink) if sink is not None and settings.emit_events else None
        self._engines: dict[str, Engine] = {}
        self._checked: dict[str, float] = {}
        self._loading: dict[str, threading.Lock] = {w: threading.Lock() for w in settings.workloads}
        self.rollouts = rollouts  # rollout.RegistryRollouts: canary / shadow traffic of a new version
        self.workloads = workloads or {}  # name -> WorkloadConfig (labels and deploy rules)
        self._routes: dict[str, tuple] = {}  # workload -> (Rollout, its engine)
        self._judging = threading.Lock()
        self._judged_at: dict[str, float] = {}
        self._rng = random.Random(seed)
        self._caches: dict = {}  # workload -> cache.ResponseCache
        self._rails: dict = {}  # workload -> guard.pii.PiiRail
        self._guards: dict = {}  # workload -> guard.rails.Rails
        self._kbs: dict = {}  # kb folder -> (kb.json mtime, rag.kb.KnowledgeBase)
        self._kb_lock = threading.Lock()
        self._warmed = threading.Event()  # warm_up() done: /readyz waits for it
        self.metrics.watch(
            "flywheel_queue_depth", "Requests waiting for the engine.", lambda: self._gauge(lambda e: e.queue_depth())
        )
        if self.relay is not None:
            self.metrics.watch(
                "flywheel_outbox_pending",
                "Events written but not yet delivered.",
                lambda: {"all": _store_call(store.outbox_counts)["pending"]},
                label="outbox",
            )

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> GatewayService:
        """Start the outbox relay (it first delivers what an earlier run left pending)."""
        if self.relay is not None:
            self.relay.start()
        return self

    def close(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        for eng in self._engines.values():
            eng.close()

    def ready(self) -> dict:
        """Whether every workload has an engine loaded and the store answers (``/readyz``)."""
        store_ok = True
        try:
            _store_call(self.store.ping)  # one round trip, not a scan of the log
        except StoreUnavailable:
            store_ok = False
        engines = {w: (self._engines[w].model_version if w in self._engines else None) for w in self.settings.workloads}
        rails = self._warmed.is_set()
        return {
            "ready": store_ok and rails and all(v is not None for v in engines.values()),
            "store": store_ok,
            "engines": engines,
            "rails": rails,
        }

    def warm_up(self) -> None:
        """Load every workload's engine and rails now, not on the first request; errors are logged. ``/readyz``
        says ready once this is done (the rails' models loaded)."""
        for w in self.settings.workloads:
            try:
                self.engine(w)
                self.pii(w)
                self.rails(w).warm_up()
            except Exception:  # noqa: BLE001 - /readyz reports it; the gateway still serves the others
                log.exception("could not load the engine or the rails of %s", w)
        self._warmed.set()

    # -- engines -----------------------------------------------------------------------------------------------

    def _default_engine(self, workload: str, served: Served) -> Engine:
        s = self.settings
        if s.engine == "upstream":
            model = s.upstream_model.format(workload=workload, version=served.version)
            key = s.upstream_api_key.get_secret_value() if s.upstream_api_key else None
            return UpstreamEngine(s.upstream_url or "", model, served.version, api_key=key)
        opts = DecodeOptions(s.prefix_cache, s.speculative, s.num_speculative_tokens)
        return LocalEngine(
            served.base_path,
            served.adapter,
            served.version,
            s.device,
            s.max_batch_size,
            s.batch_wait_ms,
            opts,
            s.draft_model,
        )

    def _gauge(self, read: Callable[[Engine], float]) -> dict[str, float]:
        return {w: float(read(e)) for w, e in list(self._engines.items())}

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
        """The workload's engine; every ``reload_interval_s`` one request checks the champion alias and, when it
        moved, loads the new version while the others go on with the old engine."""
        if workload not in self.settings.workloads:
            raise UnknownModel(workload)
        eng = self._engines.get(workload)
        fresh = time.monotonic() - self._checked.get(workload, -1e9) < self.settings.reload_interval_s
        if eng is not None and fresh:
            return eng
        lock = self._loading[workload]
        if not lock.acquire(blocking=eng is None):
            return eng  # another request is checking (or loading) right now
        try:
            eng = self._engines.get(workload)
            if (
                eng is not None
                and time.monotonic() - self._checked.get(workload, -1e9) < self.settings.reload_interval_s
            ):
                return eng
            try:
                served = self.resolve(workload)
            except Exception:
                if eng is None:
                    raise
                # the registry is unreachable: keep serving what is loaded, look again after the interval
                log.warning(
                    "%s: could not re-read the champion; serving v%s", workload, eng.model_version, exc_info=True
                )
                self._checked[workload] = time.monotonic()
                return eng
            self._checked[workload] = time.monotonic()
            if eng is None or eng.model_version != served.version:
                log.info("serving %s version %s", workload, served.version)
                new = self.engine_factory(workload, served)
                self._engines[workload] = new
                self.metrics.served_version.labels(workload).set(float(served.version or 0))
                if eng is not None:
                    eng.close()  # finishes what it has queued, then frees the model
                eng = new
            self._refresh_rollout(workload, eng)
            return eng
        finally:
            lock.release()

    def _refresh_rollout(self, workload: str, champion: Engine) -> None:
        """Load (or drop) the engine of the workload's running canary / shadow rollout."""
        if self.rollouts is None:
            return
        r = self.rollouts.current(workload)
        route = self._routes.get(workload)
        if r is None or r.version == champion.model_version:
            if route:
                self._routes.pop(workload)[1].close()
            return
        if route and route[1].model_version == r.version:
            self._routes[workload] = (r, route[1])
            return
        log.info("%s: %s rollout of version %s (share %.2f)", workload, r.mode, r.version, r.share)
        self._routes[workload] = (r, self.engine_factory(workload, self.resolve(workload, r.version)))
        if route:
            route[1].close()

    def _pick(self, workload: str) -> Engine:
        """The champion's engine, or — for a canary's share of requests — the canary's."""
        eng = self.engine(workload)
        route = self._routes.get(workload)
        if route and route[0].mode == "canary" and self._rng.random() < route[0].share:
            return route[1]
        return eng

    def _maybe_shadow(self, workload: str, req: GenRequest, iid: str, tenant: Tenant) -> None:
        """For a shadow rollout's share of requests: the new version answers in the background; its answer is
        logged (``guard_flags: ["shadow"]``, id ``<live id>-shadow``), never returned."""
        route = self._routes.get(workload)
        if not route or route[0].mode != "shadow" or self._rng.random() >= route[0].share:
            return
        shadow = route[1]

        def run():
            import dataclasses

            try:
                t0 = time.perf_counter()
                gen = shadow.generate(dataclasses.replace(req))
                messages = req.messages if req.messages is not None else [{"role": "prompt", "content": req.prompt}]
                self.store.log_interaction(
                    interaction_id=f"{iid}-shadow",
                    workload=workload,
                    model=workload,
                    model_version=shadow.model_version,
                    messages=messages,
                    response=gen.text,
                    latency_ms=(time.perf_counter() - t0) * 1000,
                    tenant=tenant.name,
                    guard_flags=["shadow"],
                    prompt_tokens=gen.prompt_tokens,
                    completion_tokens=gen.completion_tokens,
                )
            except Exception:  # noqa: BLE001 - a shadow answer never affects the user
                log.exception("%s: shadow answer of v%s failed", workload, shadow.model_version)

        threading.Thread(target=run, name="shadow", daemon=True).start()

    def judge_rollout(self, workload: str) -> tuple[str, list[str]] | None:
        """Score the running rollout from the store and promote or roll it back when its rules say so
        (``rollout.decide``); a decision goes to the outbox as ``flywheel.model.promoted`` or ``.rolled_back``."""
        from flywheel.serving.config import RolloutConfig
        from flywheel.serving.rollout import decide, live_stats

        route = self._routes.get(workload)
        if route is None or self.rollouts is None:
            return None
        with self._judging:  # one decision at a time, on the rollout as the registry has it now
            r = self.rollouts.current(workload)
            if r is None or r.version != route[0].version:
                return None
            wl = self.workloads.get(workload)
            cfg = wl.deploy if wl is not None else RolloutConfig()
            labels = wl.labels if wl is not None else []
            rows = _store_call(self.store.list, workload, since=r.started)
            cand = live_stats(rows, r.version, labels, r.started)
            champ = live_stats(rows, r.champion, labels, r.started)
            verdict, reasons = decide(champ, cand, cfg)
            if verdict == "continue":
                return verdict, reasons
            self.rollouts.finish(r, verdict, reasons)
            event = "flywheel.model.rolled_back" if verdict == "rollback" else "flywheel.model.promoted"
            payload = {"version": r.version, "champion": r.champion, "mode": r.mode, "reasons": reasons}
            _store_call(self.store.enqueue_event, event, workload, payload)
        log.warning("%s: %s rollout of v%s -> %s: %s", workload, r.mode, r.version, verdict, "; ".join(reasons))
        self._checked[workload] = -1e9  # the next request re-reads the champion and the rollout
        if self.relay is not None:
            self.relay.wake()
        return verdict, reasons

    def _judge_soon(self, workload: str) -> None:
        """After feedback: judge the running rollout in the background, at most once a second."""
        if workload not in self._routes or time.monotonic() - self._judged_at.get(workload, -1e9) < 1.0:
            return
        self._judged_at[workload] = time.monotonic()

        def run():
            try:
                self.judge_rollout(workload)
            except Exception:  # noqa: BLE001 - judged again on the next feedback
                log.exception("%s: could not judge the rollout", workload)

        threading.Thread(target=run, name="judge", daemon=True).start()

    # -- requests ----------------------------------------------------------------------------------------------

    def admit(self, authorization: str | None, claimed_tenant: str | None) -> Tenant:
        """The caller's tenant (401 without a valid key when keys are required), then its rate limits (429)."""
        tenant = self.auth.tenant(authorization, claimed_tenant)
        try:
            self.limits.admit(tenant)
        except Exception as e:
            kind = "tokens" if "tokens per minute" in str(e) else "requests"
            self.metrics.rate_limited.labels(tenant.name, kind).inc()
            raise
        return tenant

    def pii(self, workload: str):
        """The workload's PII rail (``pii_per_workload`` or ``pii`` settings)."""
        from flywheel.guard.pii import PiiRail

        if workload not in self._rails:
            self._rails[workload] = PiiRail(self.settings.pii_per_workload.get(workload, self.settings.pii))
        return self._rails[workload]

    def _mask_request(self, workload: str, req: GenRequest) -> list[str]:
        """Mask PII in the request in place (before the cache, the engine and the log); its guard flags."""
        from flywheel.guard.pii import flags

        rail = self.pii(workload)
        if not rail.enabled:
            return []
        if req.messages is not None:
            req.messages, found = rail.mask_messages(req.messages)
        else:
            req.prompt, found = rail.mask(req.prompt or "")
        for entity, n in found.items():
            self.metrics.pii.labels(workload, "prompt", entity).inc(n)
        return flags(found, "prompt")

    def _mask_answer(self, workload: str, gen: Generation) -> tuple[Generation, list[str]]:
        from flywheel.guard.pii import flags

        rail = self.pii(workload)
        if not rail.enabled:
            return gen, []
        text, found = rail.mask(gen.text)
        for entity, n in found.items():
            self.metrics.pii.labels(workload, "answer", entity).inc(n)
        return dataclasses.replace(gen, text=text), flags(found, "answer")

    def rails(self, workload: str):
        """The workload's input and output rails (``guard_per_workload`` or ``guard`` settings)."""
        from flywheel.guard.rails import Rails

        if workload not in self._guards:
            seconds = self.metrics.guard_seconds
            self._guards[workload] = Rails(
                self.settings.guard_for(workload), lambda rail, t: seconds.labels(workload, rail).observe(t)
            )
        return self._guards[workload]

    def _check_input(self, workload: str, req: GenRequest):
        """The first input rail that blocks the request (or None)."""
        messages = req.messages if req.messages is not None else [{"role": "user", "content": req.prompt or ""}]
        return self.rails(workload).check_input(messages)

    def _refuse(self, workload, eng, req, tenant, iid, verdict, t0, flags, gen=None, where="input") -> dict:
        """Answer (and log) a blocked request or answer: the refusal, ``finish_reason: content_filter``."""
        from flywheel.guard.rails import block_flag

        rails = self.rails(workload)
        self.metrics.guard_blocks.labels(workload, verdict.rail).inc()
        log.info("%s: %s rail blocked %s %s (%s, score %.3f)", workload, verdict.rail, where, iid, verdict.reason,
                 verdict.score)  # fmt: skip
        refusal = Generation(
            rails.refusal(verdict), gen.prompt_tokens if gen else 0, gen.completion_tokens if gen else 0,
            "content_filter",
        )  # fmt: skip
        ms = (time.perf_counter() - t0) * 1000
        self._capture(iid, workload, eng, req, refusal, ms, tenant, guard_flags=[*flags, block_flag(verdict)])
        if rails.cfg.on_block == "error":
            raise ContentFiltered(verdict.rail, verdict.reason, iid)
        guard = {"blocked": verdict.rail, "reason": verdict.reason, "score": round(verdict.score, 4)}
        return self._result(iid, eng, refusal, ms, None) | {"cache": None, "guard": guard}

    def knowledge_base(self, folder: str):
        """The KB in ``folder`` (relative: under the project home), loaded once and again whenever a rebuild
        rewrote its ``kb.json``."""
        from flywheel.core.home import Home
        from flywheel.rag.kb import MANIFEST, KnowledgeBase

        if not Path(folder).is_absolute():  # relative to the project home, like the workload's inputs
            folder = str(Home.resolve().root / folder)
        mtime = (Path(folder) / MANIFEST).stat().st_mtime if (Path(folder) / MANIFEST).exists() else None
        with self._kb_lock:
            held = self._kbs.get(folder)
            if held is None or held[0] != mtime:
                held = (mtime, KnowledgeBase.load(folder))
                self._kbs[folder] = held
            return held[1]

    def _wants_rag(self, workload: str, req: GenRequest) -> bool:
        mode = self.settings.rag_for(workload).mode
        wanted = req.rag if req.rag is not None else mode == "on"
        return mode != "off" and bool(wanted) and req.messages is not None

    def _augment(self, workload: str, req: GenRequest) -> dict | None:
        """RAG: the numbered sources before the question, the fact check's contexts; what was retrieved."""
        from flywheel.rag import pipeline

        cfg = self.settings.rag_for(workload)
        if not self._wants_rag(workload, req):
            return None
        question = next((m["content"] for m in reversed(req.messages) if m.get("role") == "user"), "")
        if not question.strip():
            return None
        t0 = time.perf_counter()
        r = pipeline.retrieve(self.knowledge_base(cfg.kb), question, cfg.top_k)
        srcs = pipeline.sources(r, cfg.top_k)
        req.messages = pipeline.messages_with_sources(req.messages, srcs, r.summary)
        req.contexts = [s["text"] for s in srcs] + ([r.summary] if r.summary else [])
        req.use_cache = False
        self.metrics.guard_seconds.labels(workload, "rag").observe(time.perf_counter() - t0)
        cited = [{"n": s["n"], "id": s["id"], "source": Path(s["source"]).name, "title": s["title"]} for s in srcs]
        return {"route": r.route, "retrieval": r.mode, "sources": cited, "append": cfg.append_sources}

    @staticmethod
    def _cite(text: str, rag: dict | None) -> str:
        if not rag or not rag["append"] or not rag["sources"]:
            return text
        return text.rstrip() + "\n\nSources: " + "; ".join(f"[{s['n']}] {s['title']}" for s in rag["sources"])

    def cache(self, workload: str):
        """The workload's response cache (``cache_per_workload`` or ``cache`` settings)."""
        from flywheel.serving.cache import ResponseCache

        if workload not in self._caches:
            self._caches[workload] = ResponseCache(self.settings.cache_per_workload.get(workload, self.settings.cache))
        return self._caches[workload]

    def _cache_lookup(self, workload: str, eng: Engine, req: GenRequest):
        """(partition key and query text, or None when the request is not cacheable; the lookup)."""
        from flywheel.serving.cache import Lookup, partition, query_text

        cache = self.cache(workload)
        if cache.cfg.mode == "off":
            return None, Lookup("skip")
        text = query_text(req.messages) if req.messages is not None else None
        if not req.use_cache or req.sampled or text is None:
            result = "bypass" if not req.use_cache else "skip"
            self.metrics.cache.labels(workload, result).inc()
            return None, Lookup(result)
        key = partition(workload, eng.model_version, req.messages, req.max_tokens, req.stop)
        look = cache.lookup(key, text)
        self.metrics.cache.labels(workload, look.result).inc()
        if look.result == "near_miss":
            log.info(
                "%s: cache near miss (cosine %.3f) refused: %r vs %r", workload, look.similarity, text, look.matched
            )
        return (key, text), look

    def _capture(
        self,
        iid: str,
        workload: str,
        eng: Engine,
        req: GenRequest,
        gen: Generation,
        ms: float,
        tenant: Tenant,
        cache_hit: bool = False,
        guard_flags: list[str] | None = None,
    ):
        messages = req.messages if req.messages is not None else [{"role": "prompt", "content": req.prompt or ""}]
        _store_call(
            self.store.log_interaction,
            interaction_id=iid,
            workload=workload,
            model=workload,
            model_version=eng.model_version,
            messages=messages,
            response=gen.text,
            latency_ms=ms,
            tenant=tenant.name,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            cache_hit=cache_hit,
            guard_flags=guard_flags or [],
        )
        labels = (workload, eng.model_version or "", tenant.name)
        self.metrics.prompt_tokens.labels(*labels).inc(gen.prompt_tokens)
        self.metrics.completion_tokens.labels(*labels).inc(gen.completion_tokens)
        self.limits.charge(tenant, gen.prompt_tokens + gen.completion_tokens)

    def _result(self, iid: str, eng: Engine, gen: Generation, ms: float, engine_ms: float | None = None) -> dict:
        return {
            "engine_ms": None if engine_ms is None else round(engine_ms, 3),
            "id": iid,
            "text": gen.text,
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "finish_reason": gen.finish_reason,
            "model_version": eng.model_version,
            "latency_ms": round(ms, 1),
        }

    def complete(self, workload: str, req: GenRequest, tenant: Tenant, iid: str | None = None) -> dict:
        """A whole answer — from the response cache when a cached one fits, else from the engine — committed to
        the store before it is returned. With the PII rail on, the request is masked before anything sees it and
        the answer before anyone does."""
        t0 = time.perf_counter()
        eng = self._pick(workload)
        req.max_tokens = req.max_tokens or self.settings.max_new_tokens
        guard = self._mask_request(workload, req)
        iid = iid or new_id()
        verdict = self._check_input(workload, req)
        if verdict is not None:
            return self._refuse(workload, eng, req, tenant, iid, verdict, t0, guard)
        rag = self._augment(workload, req)
        ckey, look = self._cache_lookup(workload, eng, req)
        if look.result == "hit":
            gen = Generation(**look.answer)
            ms = (time.perf_counter() - t0) * 1000
            self._capture(iid, workload, eng, req, gen, ms, tenant, cache_hit=True, guard_flags=guard)
            return self._result(iid, eng, gen, ms, 0.0) | {"cache": _cache_info(look)}
        t1 = time.perf_counter()
        gen = eng.generate(req)
        t2 = time.perf_counter()
        text, verdict, out_flags = self.rails(workload).check_output(gen.text, req.contexts)
        if verdict is not None:
            return self._refuse(workload, eng, req, tenant, iid, verdict, t0, guard + out_flags, gen, "answer")
        gen, answer_flags = self._mask_answer(workload, dataclasses.replace(gen, text=self._cite(text, rag)))
        ms = (t2 - t0) * 1000
        self._capture(iid, workload, eng, req, gen, ms, tenant, guard_flags=guard + out_flags + answer_flags)
        if ckey is not None:
            self.cache(workload).store(*ckey, dataclasses.asdict(gen))
        self.metrics.ttft.labels(workload, eng.model_version or "", tenant.name).observe(t2 - t0)
        self.metrics.overhead.labels(workload).observe((t1 - t0) + (time.perf_counter() - t2))
        self._maybe_shadow(workload, req, iid, tenant)
        out = self._result(iid, eng, gen, ms, (t2 - t1) * 1000) | {"cache": _cache_info(look)}
        return out | ({"rag": {k: v for k, v in rag.items() if k != "append"}} if rag else {})

    def stream(self, workload: str, req: GenRequest, tenant: Tenant) -> tuple[str, Engine, Iterator[str | dict]]:
        """(interaction id, engine, events): text deltas as the engine decodes them, then the result dict — only
        after the interaction is committed (a store outage raises :class:`StoreUnavailable` instead)."""
        rag_on = self._wants_rag(workload, req)
        if self.pii(workload).enabled or self.rails(workload).whole_answer or rag_on:  # whole: one piece
            iid = new_id()

            def masked() -> Iterator[str | dict]:
                out = self.complete(workload, req, tenant, iid)
                yield out["text"]
                yield out

            return iid, self.engine(workload), masked()  # complete() draws the canary share itself
        t0 = time.perf_counter()
        eng = self._pick(workload)
        req.max_tokens = req.max_tokens or self.settings.max_new_tokens
        iid = new_id()
        verdict = self._check_input(workload, req)
        if verdict is not None:
            out = self._refuse(workload, eng, req, tenant, iid, verdict, t0, [])

            def refused() -> Iterator[str | dict]:
                yield out["text"]
                yield out

            return iid, eng, refused()
        ckey, look = self._cache_lookup(workload, eng, req)
        if look.result == "hit":

            def cached() -> Iterator[str | dict]:
                gen = Generation(**look.answer)
                yield gen.text
                ms = (time.perf_counter() - t0) * 1000
                self._capture(iid, workload, eng, req, gen, ms, tenant, cache_hit=True)
                yield self._result(iid, eng, gen, ms, 0.0) | {"cache": _cache_info(look)}

            return iid, eng, cached()
        events = eng.stream(req)

        rails = self.rails(workload)

        def run() -> Iterator[str | dict]:
            first, gen, sent = None, None, ""
            try:
                for ev in events:
                    if isinstance(ev, Generation):
                        gen = ev
                        break
                    verdict = rails.check_piece(sent, ev)
                    if verdict is not None:  # the piece would complete a blocked term: the stream ends before it
                        partial = Generation(sent, 0, 0, "content_filter")
                        yield self._refuse(workload, eng, req, tenant, iid, verdict, t0, [], partial, "answer")
                        return
                    sent += ev
                    if first is None:
                        first = time.perf_counter()
                        self.metrics.ttft.labels(workload, eng.model_version or "", tenant.name).observe(first - t0)
                    yield ev
            finally:
                events.close()  # a client that left cancels its decoding
            if gen is None:
                return
            ms = (time.perf_counter() - t0) * 1000
            self._capture(iid, workload, eng, req, gen, ms, tenant)
            if ckey is not None:
                self.cache(workload).store(*ckey, dataclasses.asdict(gen))
            self._maybe_shadow(workload, req, iid, tenant)
            yield self._result(iid, eng, gen, ms) | {"cache": _cache_info(look)}

        return iid, eng, run()

    def feedback(self, interaction_id: str, rating: int | None, correction: str | None, comment: str | None) -> dict:
        """Record feedback (idempotent: the same feedback again changes nothing); its event goes to the outbox in
        the same transaction, and the relay is woken to deliver it."""
        row = _store_call(
            self.store.add_feedback, interaction_id, rating, correction, comment, emit=self.relay is not None
        )
        kind = (
            "duplicate"
            if row.get("duplicate")
            else ("correction" if correction else {1: "positive", -1: "negative"}.get(rating, "comment"))
        )
        self.metrics.feedback.labels(row["workload"], row["model_version"] or "", kind).inc()
        if self.relay is not None and not row.get("duplicate"):
            self.relay.wake()
        self._judge_soon(row["workload"])
        return row


def registry_resolver(
    registry, cache_dir, workloads: dict | None = None, local_files: bool = True
) -> Callable[..., Served]:
    """Resolve a workload's champion alias to local base/adapter folders (``local_files`` False: the version
    only, for an upstream engine that has the weights itself); ``resolve(workload, version)`` a given version
    (a canary). A workload with no version yet (a fresh home) gets
    its base model registered as version 1 (``workloads``: name -> WorkloadConfig), so the API can be tried
    before anything is trained."""
    from flywheel.training.models import resolve_base_model

    def resolve(workload: str, version: str | None = None) -> Served:
        ref = registry.version(workload, version) if version else registry.champion(workload)
        if ref is None and workloads and workload in workloads:
            from flywheel.evaluation.promotion import ensure_champion

            ref = ensure_champion(registry, workloads[workload])
        if ref is None:
            raise UnknownModel(f"{workload} has no champion yet and no workload config to serve its base model")
        if not local_files:
            return Served("", None, ref.version)
        base = resolve_base_model(ref.tags["base_model"], cache_dir)
        if ref.is_base:
            return Served(str(base), None, ref.version)
        return Served(str(base), str(registry.local_path(ref, Path(cache_dir) / "registry")), ref.version)

    return resolve
