"""The gateway through the real `openai` client (sync, async, streaming), over HTTP, on the tiny model (for
speed); a gated fake engine where a test must control when tokens come."""

import asyncio
import contextlib
import socket
import threading
import time

import httpx
import openai
import pytest
import uvicorn

from flywheel.feedback.store import FeedbackStore
from flywheel.serving.config import CacheConfig, GatewaySettings
from flywheel.serving.engine import Generation
from flywheel.serving.router import create_app
from flywheel.serving.service import GatewayService, Served
from tests.fake_engine import FakeEngine


class RecordingSink:
    """Events as the outbox relay delivers them; ``fail`` makes the next sends raise (an events outage)."""

    def __init__(self):
        self.events = []
        self.fail = False

    def send(self, events):
        if self.fail:
            raise ConnectionError("events API down")
        self.events += events


@contextlib.contextmanager
def serving(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_for(cond, timeout=10.0):
    """Poll ``cond`` until true (a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def gateway(tiny_model, tmp_path_factory):
    store = FeedbackStore(f"sqlite:///{tmp_path_factory.mktemp('gw') / 'fb.db'}")
    sink = RecordingSink()
    served = {"version": "1"}
    resolve = lambda w: Served(str(tiny_model), None, served["version"])  # noqa: E731
    settings = GatewaySettings(
        workloads=["fraud"], max_new_tokens=8, reload_interval_s=0, batch_wait_ms=20, cache=CacheConfig(mode="off")
    )  # the engine answers every request here; the cache has its own tests (test_cache.py)
    service = GatewayService(settings, store, resolve, sink).start()
    with serving(create_app(settings, service)) as url:
        yield {"url": url, "store": store, "sink": sink, "served": served, "service": service}
    service.close()


def client(gw, **kw):
    return openai.OpenAI(base_url=gw["url"] + "/v1", api_key="unused", max_retries=0, **kw)


def test_chat_completion_models_and_feedback_through_the_openai_client(gateway):
    c = client(gateway)
    assert [m.id for m in c.models.list().data] == ["fraud"]
    resp = c.chat.completions.create(
        model="fraud",
        max_tokens=5,
        temperature=0,
        messages=[{"role": "system", "content": "triage"}, {"role": "user", "content": "Online purchase of $12.00"}],
    )
    assert resp.object == "chat.completion" and resp.id.startswith("ix-")
    assert resp.choices[0].message.role == "assistant" and resp.choices[0].finish_reason in ("stop", "length")
    assert 0 < resp.usage.completion_tokens <= 5 and resp.usage.prompt_tokens > 5
    assert resp.system_fingerprint == "1"
    logged = gateway["store"].get(resp.id)
    assert logged["response"] == resp.choices[0].message.content and logged["model_version"] == "1"
    assert logged["messages"][1] == {"role": "user", "content": "Online purchase of $12.00"}
    assert (logged["prompt_tokens"], logged["completion_tokens"]) == (
        resp.usage.prompt_tokens,
        resp.usage.completion_tokens,
    )

    fb = {"id": resp.id, "rating": -1, "correction": "LEGIT: small"}
    r = httpx.post(gateway["url"] + "/v1/feedback", json=fb)
    assert r.status_code == 200 and r.json()["rating"] == -1 and r.json()["duplicate"] is False
    assert gateway["store"].get(resp.id)["correction"] == "LEGIT: small"
    wait_for(lambda: any(e["payload"]["interaction_id"] == resp.id for e in gateway["sink"].events))
    event = next(e for e in gateway["sink"].events if e["payload"]["interaction_id"] == resp.id)
    assert event["event"] == "flywheel.feedback.received"
    assert event["resource"]["prefect.resource.id"] == "flywheel.workload.fraud"
    seq = r.json()["feedback_seq"]
    assert event["payload"] == {
        "interaction_id": resp.id,
        "rating": -1,
        "has_correction": True,
        "model_version": "1",
        "feedback_seq": seq,  # the watermark a retrain fired by this event reads up to
    }
    # the same feedback again (a client retry) is acknowledged, and counts once: no new seq, no second event
    again = httpx.post(gateway["url"] + "/v1/feedback", json=fb).json()
    assert again["duplicate"] is True and again["feedback_seq"] == seq
    assert gateway["store"].watermark("fraud") == seq
    gateway["service"].relay.deliver_once()
    assert sum(e["payload"]["interaction_id"] == resp.id for e in gateway["sink"].events) == 1


def test_streaming_sends_tokens_as_they_are_decoded_and_usage_last(gateway):
    c = client(gateway)
    chunks = list(
        c.chat.completions.create(
            model="fraud",
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Card-present purchase of $5"}],
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert len(deltas) > 1  # token by token, not one whole-answer chunk
    finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # the usage chunk comes last
    usage = chunks[-1].usage
    logged = gateway["store"].get(chunks[0].id)  # committed before [DONE]
    assert logged["response"] == "".join(deltas).strip()
    assert usage.completion_tokens == logged["completion_tokens"] and usage.prompt_tokens == logged["prompt_tokens"]
    whole = c.chat.completions.create(
        model="fraud", max_tokens=8, messages=[{"role": "user", "content": "Card-present purchase of $5"}]
    )
    assert whole.choices[0].message.content == logged["response"]  # streamed or not, the same greedy answer


def test_completions_endpoint_sync_async_and_streamed(gateway):
    c = client(gateway)
    whole = c.completions.create(model="fraud", prompt="Transaction: $12 at a grocery. Answer:", max_tokens=6)
    assert whole.object == "text_completion" and whole.choices[0].text and whole.usage.completion_tokens <= 6
    streamed = list(
        c.completions.create(model="fraud", prompt="Transaction: $12 at a grocery. Answer:", max_tokens=6, stream=True)
    )
    assert "".join(ch.choices[0].text for ch in streamed if ch.choices).strip() == whole.choices[0].text
    logged = gateway["store"].get(whole.id)
    assert logged["messages"] == [{"role": "prompt", "content": "Transaction: $12 at a grocery. Answer:"}]

    async def ask():
        ac = openai.AsyncOpenAI(base_url=gateway["url"] + "/v1", api_key="unused", max_retries=0)
        r = await ac.chat.completions.create(model="fraud", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
        s = await ac.chat.completions.create(
            model="fraud", max_tokens=4, stream=True, messages=[{"role": "user", "content": "hi"}]
        )
        parts = [ch.choices[0].delta.content or "" async for ch in s if ch.choices]
        await ac.close()
        return r.choices[0].message.content, "".join(parts).strip()

    whole_async, streamed_async = asyncio.run(ask())
    assert whole_async == streamed_async


def test_concurrent_requests_share_batches_and_answer_as_alone(gateway):
    c = client(gateway)
    prompts = [f"Online purchase of ${n}.00 at store {n}" for n in range(6)]

    def ask(p):
        return c.chat.completions.create(
            model="fraud", max_tokens=6, temperature=0, messages=[{"role": "user", "content": p}]
        )

    alone = [ask(p).choices[0].message.content for p in prompts]
    batcher = gateway["service"].engine("fraud")._batcher
    before = (batcher.batches, batcher.batched_requests)
    results = [None] * len(prompts)
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, ask(prompts[i]))) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batches, served = batcher.batches - before[0], batcher.batched_requests - before[1]
    assert served == 6 and batches < 6  # at least two requests shared a generate call
    assert [r.choices[0].message.content for r in results] == alone  # left padding changes no greedy answer


def test_stop_sequences_cut_the_answer(gateway):
    c = client(gateway)
    full = c.chat.completions.create(model="fraud", max_tokens=8, messages=[{"role": "user", "content": "$5 coffee"}])
    text = full.choices[0].message.content
    assert len(text) > 2
    stop = text[2:4]
    cut = c.chat.completions.create(
        model="fraud", max_tokens=8, stop=[stop], messages=[{"role": "user", "content": "$5 coffee"}]
    )
    assert cut.choices[0].message.content == text[: text.find(stop)].strip()
    assert cut.choices[0].finish_reason == "stop"


def test_errors_are_openai_shaped(gateway):
    c = client(gateway)
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"
    r = httpx.post(gateway["url"] + "/v1/chat/completions", json={"model": "fraud", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["param"] == "messages"
    r = httpx.post(
        gateway["url"] + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "error" in r.json()
    r = httpx.post(
        gateway["url"] + "/v1/chat/completions",
        json={"model": "fraud", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "stop"
    r = httpx.post(gateway["url"] + "/v1/feedback", json={"id": "ix-unknown", "rating": 1})
    assert r.status_code == 404 and r.json()["error"]["code"] == "interaction_not_found"
    r = httpx.post(gateway["url"] + "/v1/feedback", json={"id": "ix-unknown", "rating": 3})
    assert r.status_code == 400 and r.json()["error"]["param"] == "rating"
    # unknown request fields are accepted (and logged), as vLLM does
    r = httpx.post(
        gateway["url"] + "/v1/chat/completions",
        json={"model": "fraud", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}], "logit_bias": {}},
    )
    assert r.status_code == 200


def test_metrics_count_requests_tokens_and_time_to_first_token(gateway):
    def value(text, name, **labels):
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = httpx.get(gateway["url"] + "/metrics").text
    c = client(gateway)
    r = c.chat.completions.create(model="fraud", max_tokens=3, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    after = httpx.get(gateway["url"] + "/metrics").text
    ok = {"endpoint": "chat", "status": "200", "workload": "fraud", "version": "1", "tenant": "default"}
    assert value(after, "flywheel_requests_total", **ok) == value(before, "flywheel_requests_total", **ok) + 1
    assert value(after, "flywheel_requests_total", endpoint="chat", status="404", workload="unknown") >= 1
    assert (
        value(after, "flywheel_completion_tokens_total", workload="fraud")
        - value(before, "flywheel_completion_tokens_total", workload="fraud")
        == r.usage.completion_tokens
    )
    tt = "flywheel_time_to_first_token_seconds_count"
    assert value(after, tt, workload="fraud") == value(before, tt, workload="fraud") + 1
    assert value(after, "flywheel_queue_depth", workload="fraud") == 0
    assert "flywheel_gateway_overhead_seconds_bucket" in after


def test_a_new_champion_is_served_without_restart(gateway):
    c = client(gateway)
    gateway["served"]["version"] = "2"  # what a promotion does to the champion alias
    resp = c.chat.completions.create(model="fraud", max_tokens=2, messages=[{"role": "user", "content": "x"}])
    assert resp.system_fingerprint == "2"
    assert {m["id"]: m["version"] for m in httpx.get(gateway["url"] + "/v1/models").json()["data"]} == {"fraud": "2"}


class GatedEngine(FakeEngine):
    """A fake engine whose tokens come only when the test lets them (``release``)."""

    model_version = "7"

    def __init__(self):
        self.gate = threading.Event()

    def generate(self, req):
        return Generation("LEGIT: fine", 3, 2, "stop")

    def stream(self, req):
        yield "LEGIT"
        self.gate.wait(10)
        yield ": fine"
        yield Generation("LEGIT: fine", 3, 2, "stop")


def test_the_first_token_arrives_before_the_answer_is_done(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    eng = GatedEngine()
    settings = GatewaySettings(workloads=["fraud"])
    service = GatewayService(settings, store, lambda w: Served("", None, "7"), engine_factory=lambda w, s: eng)
    with serving(create_app(settings, service)) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        stream = c.chat.completions.create(model="fraud", stream=True, messages=[{"role": "user", "content": "x"}])
        it = iter(stream)
        assert next(it).choices[0].delta.role == "assistant"
        assert next(it).choices[0].delta.content == "LEGIT"  # while the engine still holds the rest
        assert not eng.gate.is_set() and store.counts()["interactions"] == 0  # not acknowledged yet
        eng.gate.set()
        rest = [ch.choices[0].delta.content for ch in it if ch.choices and ch.choices[0].delta.content]
        assert rest == [": fine"] and store.counts()["interactions"] == 1


def test_keys_rate_limits_and_usage(tmp_path):
    """auto auth: open until a key exists, then 401 without a valid one; a revoked key is refused; a tenant over
    its requests per minute gets 429 with Retry-After; usage per tenant from the log."""
    from flywheel.serving.tenants import KeyStore

    url_db = f"sqlite:///{tmp_path / 'fb.db'}"
    store, keys = FeedbackStore(url_db), KeyStore(url_db, cache_s=0)
    eng = GatedEngine()
    eng.gate.set()
    settings = GatewaySettings(workloads=["fraud"])
    service = GatewayService(
        settings, store, lambda w: Served("", None, "7"), engine_factory=lambda w, s: eng, keys=keys
    )
    msgs = [{"role": "user", "content": "x"}]
    with serving(create_app(settings, service)) as url:
        anon = openai.OpenAI(base_url=url + "/v1", api_key="anything", max_retries=0)
        assert anon.chat.completions.create(model="fraud", messages=msgs).choices[0].message.content == "LEGIT: fine"
        key, rec = keys.create("acme", rpm=2)
        assert key.startswith("fw-") and rec == {"tenant": "acme", "prefix": key[:10], "rpm": 2, "tpm": None}
        with pytest.raises(openai.AuthenticationError) as e:
            anon.chat.completions.create(model="fraud", messages=msgs)
        assert e.value.status_code == 401 and e.value.body["type"] == "authentication_error"
        acme = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        for _ in range(2):
            acme.chat.completions.create(model="fraud", messages=msgs)
        with pytest.raises(openai.RateLimitError) as e:
            acme.chat.completions.create(model="fraud", messages=msgs)
        assert 1 <= int(e.value.response.headers["retry-after"]) <= 30  # one request back after 60/2 s
        assert store.usage()["acme"] == {"requests": 2, "prompt_tokens": 6, "completion_tokens": 4}
        assert store.usage()["default"]["requests"] == 1
        keys.revoke(key[:10])
        with pytest.raises(openai.AuthenticationError):
            acme.chat.completions.create(model="fraud", messages=msgs)
        assert [k["revoked"] is not None for k in keys.list()] == [True]


def test_a_store_outage_answers_503_and_acknowledges_nothing(tmp_path):
    from sqlalchemy import create_engine

    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    eng = GatedEngine()
    eng.gate.set()
    settings = GatewaySettings(workloads=["fraud"])
    service = GatewayService(settings, store, lambda w: Served("", None, "7"), engine_factory=lambda w, s: eng)
    msgs = [{"role": "user", "content": "x"}]
    with serving(create_app(settings, service)) as url:
        assert httpx.get(url + "/readyz").json()["rails"] is False  # not ready before the rails' models load
        service.warm_up()
        c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        ok = c.chat.completions.create(model="fraud", messages=msgs)
        good_engine = store.engine
        store.engine = create_engine(f"sqlite:///{tmp_path / 'gone' / 'fb.db'}")  # the database is unreachable
        with pytest.raises(openai.InternalServerError) as e:
            c.chat.completions.create(model="fraud", messages=msgs)
        assert e.value.status_code == 503 and e.value.body["code"] == "store_unavailable"
        r = httpx.post(url + "/v1/feedback", json={"id": ok.id, "rating": 1})
        assert r.status_code == 503
        assert httpx.get(url + "/readyz").status_code == 503
        with pytest.raises(openai.APIError, match="store is unavailable"):
            list(c.chat.completions.create(model="fraud", messages=msgs, stream=True))  # no [DONE]: not acked
        store.engine = good_engine
        assert store.counts()["interactions"] == 1 and store.get(ok.id)["rating"] is None
        ready = {"ready": True, "store": True, "engines": {"fraud": "7"}, "rails": True}
        assert httpx.get(url + "/readyz").json() == ready


def test_an_upstream_engine_gets_the_adapter_name_and_the_sampling_fields(tmp_path):
    """engine: upstream (vLLM, trtllm-serve, SGLang): the fake OpenAI server records what the gateway sends."""
    from tests.fake_openai import ANSWER, create_fake

    fake = create_fake()
    with serving(fake) as upstream:
        store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
        settings = GatewaySettings(
            workloads=["fraud"], engine="upstream", upstream_url=upstream, upstream_model="{workload}-v{version}"
        )
        service = GatewayService(settings, store, lambda w: Served("", None, "3"))
        with serving(create_app(settings, service)) as url:
            c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            msgs = [{"role": "user", "content": "$5 coffee"}]
            r = c.chat.completions.create(model="fraud", messages=msgs, temperature=0.5, top_p=0.9, seed=4, stop=["\n"])
            assert r.choices[0].message.content == ANSWER and r.system_fingerprint == "3"
            parts = [
                ch.choices[0].delta.content
                for ch in c.chat.completions.create(model="fraud", messages=msgs, stream=True, max_tokens=3)
                if ch.choices and ch.choices[0].delta.content
            ]
            assert parts == ["LEGIT:", " no", " fraud"]
            done = c.completions.create(model="fraud", prompt="Q: $5 coffee\nA:", max_tokens=2)
            assert done.choices[0].text == "LEGIT: no"
            assert store.get(r.id)["completion_tokens"] == 5
    sent = fake.state.recorded
    assert [(b["path"], b["model"]) for b in sent] == [
        ("/v1/chat/completions", "fraud-v3"),
        ("/v1/chat/completions", "fraud-v3"),
        ("/v1/completions", "fraud-v3"),
    ]
    assert {k: sent[0][k] for k in ("temperature", "top_p", "seed", "stop", "messages")} == {
        "temperature": 0.5, "top_p": 0.9, "seed": 4, "stop": ["\n"], "messages": msgs,
    }  # fmt: skip
    assert sent[1]["stream"] is True and sent[1]["stream_options"] == {"include_usage": True}
    assert sent[2]["prompt"] == "Q: $5 coffee\nA:"


def test_the_grafana_dashboard_reads_only_metrics_the_gateway_exports(gateway, root):
    import json
    import re

    dash = json.loads((root / "deployments/grafana/flywheel-gateway.json").read_text())
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for p in dash["panels"]
        for t in p["targets"]
        for name in re.findall(r"\bflywheel_[a-z_]+", t["expr"])
    }
    text = httpx.get(gateway["url"] + "/metrics").text
    exported = {re.sub(r"_total$", "", n) for n in re.findall(r"^# TYPE (flywheel_[a-z_]+) ", text, re.M)}
    assert len(used) >= 12 and used <= exported, used - exported


@pytest.mark.parametrize("options", ["prefix_cache", "prompt_lookup", "draft"])
def test_engine_speed_ups_do_not_change_greedy_answers(tiny_model, options):
    """Prefix caching and speculative decoding (prompt lookup; a draft model: the tiny model drafting for itself)
    give the plain engine's greedy answers, token for token, streamed or not."""
    from flywheel.serving.engine import DecodeOptions, GenRequest, LocalEngine

    plain = LocalEngine(tiny_model, None, "1", "cpu")
    opts = DecodeOptions(prefix_cache=options == "prefix_cache", speculative=options.replace("prefix_cache", "none"))
    fast = LocalEngine(
        tiny_model, None, "1", "cpu", options=opts, draft_path=tiny_model if options == "draft" else None
    )
    sp = {"role": "system", "content": "You triage card transactions. Answer FRAUD or LEGIT."}
    for text in ("Online purchase of $1,240.50 at TechHaven in Lagos", "Card-present $5 coffee at 09:10"):
        req = GenRequest(messages=[sp, {"role": "user", "content": text}], max_tokens=12)
        want = plain.generate(req)
        got = fast.generate(GenRequest(messages=req.messages, max_tokens=12))
        assert (got.text, got.completion_tokens, got.prompt_tokens) == (
            want.text, want.completion_tokens, want.prompt_tokens,
        )  # fmt: skip
        streamed = list(fast.stream(GenRequest(messages=req.messages, max_tokens=12)))
        assert "".join(x for x in streamed if isinstance(x, str)).strip() == want.text
    if options == "prefix_cache":
        assert list(opts._prefixes) == [sp["content"]]  # computed once, reused for both prompts
    plain.close()
    fast.close()


def test_speed_up_settings_that_would_change_answers_are_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="prefix_cache: cannot be combined with speculative decoding"):
        GatewaySettings(prefix_cache=True, speculative="prompt_lookup")
    with pytest.raises(ValidationError, match="draft_model: speculative: draft needs a draft model"):
        GatewaySettings(speculative="draft")
