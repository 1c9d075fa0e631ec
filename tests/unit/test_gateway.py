"""The gateway through the real `openai` client, over HTTP, on the tiny model (for speed)."""

import socket
import threading
import time

import httpx
import openai
import pytest
import uvicorn

from flywheel.feedback.store import FeedbackStore
from flywheel.serving.config import GatewaySettings
from flywheel.serving.router import create_app
from flywheel.serving.service import GatewayService, Served


class RecordingSink:
    def __init__(self):
        self.events = []

    def emit(self, event, resource, payload):
        self.events.append((event, resource, payload))


@pytest.fixture(scope="module")
def gateway(tiny_model, tmp_path_factory):
    store = FeedbackStore(f"sqlite:///{tmp_path_factory.mktemp('gw') / 'fb.db'}")
    sink = RecordingSink()
    served = {"version": "1"}
    resolve = lambda w: Served(str(tiny_model), None, served["version"])  # noqa: E731
    settings = GatewaySettings(workloads=["fraud"], max_new_tokens=8, reload_interval_s=0)
    app = create_app(settings, GatewayService(settings, store, resolve, sink))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield {"url": url, "store": store, "sink": sink, "served": served}
    server.should_exit = True
    thread.join(timeout=10)


def test_chat_completion_models_and_feedback_through_the_openai_client(gateway):
    client = openai.OpenAI(base_url=gateway["url"] + "/v1", api_key="unused")
    assert [m.id for m in client.models.list().data] == ["fraud"]
    resp = client.chat.completions.create(
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

    r = httpx.post(gateway["url"] + "/v1/feedback", json={"id": resp.id, "rating": -1, "correction": "LEGIT: small"})
    assert r.status_code == 200 and r.json()["rating"] == -1
    assert gateway["store"].get(resp.id)["correction"] == "LEGIT: small"
    event, resource, payload = gateway["sink"].events[-1]
    assert event == "flywheel.feedback.received"
    assert resource["prefect.resource.id"] == "flywheel.workload.fraud"
    assert payload == {
        "interaction_id": resp.id,
        "rating": -1,
        "has_correction": True,
        "model_version": "1",
        "feedback_seq": 1,  # the watermark a retrain fired by this event reads up to
    }


def test_streaming_returns_openai_chunks(gateway):
    client = openai.OpenAI(base_url=gateway["url"] + "/v1", api_key="unused")
    chunks = list(
        client.chat.completions.create(
            model="fraud", max_tokens=4, stream=True, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_greedy_answers_are_deterministic(gateway):
    client = openai.OpenAI(base_url=gateway["url"] + "/v1", api_key="unused")
    ask = lambda: client.chat.completions.create(  # noqa: E731
        model="fraud", max_tokens=6, temperature=0, messages=[{"role": "user", "content": "Card-present $5"}]
    )
    assert ask().choices[0].message.content == ask().choices[0].message.content


def test_errors_are_openai_shaped(gateway):
    client = openai.OpenAI(base_url=gateway["url"] + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"
    r = httpx.post(gateway["url"] + "/v1/chat/completions", json={"model": "fraud", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["param"] == "messages"
    r = httpx.post(
        gateway["url"] + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "error" in r.json()
    r = httpx.post(gateway["url"] + "/v1/feedback", json={"id": "ix-unknown", "rating": 1})
    assert r.status_code == 404 and r.json()["error"]["code"] == "interaction_not_found"
    r = httpx.post(gateway["url"] + "/v1/feedback", json={"id": "ix-unknown", "rating": 3})
    assert r.status_code == 400 and r.json()["error"]["param"] == "rating"


def test_a_new_champion_is_served_without_restart(gateway):
    client = openai.OpenAI(base_url=gateway["url"] + "/v1", api_key="unused")
    gateway["served"]["version"] = "2"  # what a promotion does to the champion alias
    resp = client.chat.completions.create(model="fraud", max_tokens=2, messages=[{"role": "user", "content": "x"}])
    assert resp.system_fingerprint == "2"
    assert {m["id"]: m["version"] for m in httpx.get(gateway["url"] + "/v1/models").json()["data"]} == {"fraud": "2"}
