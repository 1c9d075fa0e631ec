"""RAG in the gateway: a request answered from the knowledge base (the real policy PDFs, ingest, MiniLM, BM25 and
the graph) gets the numbered sources before its question, cites them, and the fact-consistency rail checks the
answer against them. A scripted engine stands in for the model so the test controls the answer (supported or
not) and sees the exact prompt the engine received."""

import json

import pytest
from fastapi.testclient import TestClient

from examples.policies import write_policies
from flywheel.feedback.store import FeedbackStore
from flywheel.guard.config import FactCheckConfig, GuardConfig
from flywheel.ingest.config import ChunkingConfig, IngestConfig
from flywheel.ingest.run import ingest_dataset
from flywheel.rag.config import GatewayRagConfig, KbConfig
from flywheel.rag.kb import build_kb
from flywheel.serving.config import GatewaySettings
from flywheel.serving.engine import Generation
from flywheel.serving.router import create_app
from flywheel.serving.service import GatewayService, Served
from tests.fake_engine import FakeEngine

QUESTION = "How many days does a cardholder have to dispute a transaction?"


class Recording(FakeEngine):
    def __init__(self, text):
        self.text, self.seen = text, []

    def generate(self, req):
        self.seen.append(req.messages)
        return Generation(self.text, 30, 12, "stop")


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rag")
    write_policies(tmp / "pdfs")
    raw = IngestConfig(chunking=ChunkingConfig(enabled=False))
    df = ingest_dataset([str(tmp / "pdfs")], "policies", raw, tmp / "ds", tmp / "cache").dataset.to_pandas()
    build_kb(df, tmp / "kb", KbConfig())
    return tmp / "kb"


def _gateway(tmp_path, kb_dir, answer, mode="request", fact_check="off"):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    settings = GatewaySettings(
        workloads=["fraud"],
        rag=GatewayRagConfig(mode=mode, kb=str(kb_dir), top_k=3),
        guard=GuardConfig(fact_check=FactCheckConfig(mode=fact_check, min_support=0.6)),
    )
    eng = Recording(answer)
    svc = GatewayService(settings, store, lambda w: Served("", None, "1"), engine_factory=lambda w, s: eng)
    return eng, store, TestClient(create_app(settings, svc))


def _ask(client, **extra):
    body = {"model": "fraud", "messages": [{"role": "user", "content": QUESTION}], **extra}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_rag_request_answers_from_the_sources_and_cites_them(tmp_path, kb_dir):
    eng, store, client = _gateway(tmp_path, kb_dir, "A cardholder may dispute it within 120 days [1].")
    plain = _ask(client)  # mode request: only when asked
    assert eng.seen[-1] == [{"role": "user", "content": QUESTION}] and "rag" not in plain["flywheel"]
    out = _ask(client, rag=True)
    prompt = eng.seen[-1]
    assert prompt[0]["role"] == "system" and "numbered sources" in prompt[0]["content"]
    assert prompt[-1]["content"].startswith("Sources:\n[1] Chargeback and Dispute Policy — 2. Filing window\n")
    assert prompt[-1]["content"].endswith(f"Question: {QUESTION}")
    rag = out["flywheel"]["rag"]
    assert rag["route"] == "fact" and rag["sources"][0]["source"] == "chargebacks.pdf" and len(rag["sources"]) == 3
    text = out["choices"][0]["message"]["content"]
    assert text.startswith("A cardholder may dispute it within 120 days [1].")
    assert "Sources: [1] Chargeback and Dispute Policy — 2. Filing window; [2] " in text
    assert out["flywheel"]["cache"]["result"] == "bypass"  # a RAG answer is never served from the cache
    assert store.get(out["id"])["messages"][-1]["content"].startswith("Sources:")  # logged as the model saw it


def test_the_fact_check_rail_refuses_an_answer_the_sources_do_not_support(tmp_path, kb_dir):
    eng, store, client = _gateway(
        tmp_path, kb_dir, "You have 45 days, and a pony is delivered free.", mode="on", fact_check="refuse"
    )
    out = _ask(client)
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["flywheel"]["guard"]["blocked"] == "fact_check"
    assert store.get(out["id"])["guard_flags"] == ["blocked:fact_check:unsupported:1"]
    eng.text = "A cardholder may dispute a transaction within 120 days of the transaction date."
    ok = _ask(client)
    assert ok["choices"][0]["finish_reason"] == "stop" and ok["flywheel"]["rag"]["sources"]
    _ask(client, rag=False)  # mode on: a request may opt out
    assert eng.seen[-1] == [{"role": "user", "content": QUESTION}]


def test_a_summary_question_is_routed_and_streamed_whole(tmp_path, kb_dir):
    eng, _, client = _gateway(tmp_path, kb_dir, "Disputes within 120 days; provisional credit in 10 days [1].")
    body = {"model": "fraud", "messages": [{"role": "user", "content": "Summarise the chargeback policy."}],
            "rag": True, "stream": True}  # fmt: skip
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text.startswith("Disputes within 120 days") and "\n\nSources: [1] Chargeback and Dispute Policy" in text
    assert eng.seen[-1][-1]["content"].startswith("Sources:\nSummary: This policy covers disputes")
