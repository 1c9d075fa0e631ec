"""The PII rail: seeded names, e-mails, phones, cards, IBANs, IPs and a national id in a request never reach the
engine, the store, the logs or the answer — and an answer that makes PII up is masked too. A recording engine
(it has to leak on purpose) stands in for the model; Presidio and spaCy's model are the real ones."""

import logging

import pytest

from flywheel.curation.config import PiiConfig
from flywheel.feedback.store import FeedbackStore
from flywheel.serving.config import CacheConfig, GatewaySettings
from flywheel.serving.engine import Generation, GenRequest
from flywheel.serving.service import GatewayService, Served
from flywheel.serving.tenants import Tenant
from tests.fake_engine import FakeEngine

SEEDED = {
    "PERSON": "Noah Dubois",
    "EMAIL_ADDRESS": "noah.dubois@example.com",
    "PHONE_NUMBER": "+1 415 555 0132",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "IBAN_CODE": "DE89 3704 0044 0532 0130 00",
    "IP_ADDRESS": "192.168.10.42",
    "US_SSN": "536-22-8411",
}
PROMPT = (
    f"Customer {SEEDED['PERSON']} ({SEEDED['EMAIL_ADDRESS']}, {SEEDED['PHONE_NUMBER']}) paid with card "
    f"{SEEDED['CREDIT_CARD']} from IBAN {SEEDED['IBAN_CODE']} at IP {SEEDED['IP_ADDRESS']}; SSN {SEEDED['US_SSN']}. "
    "Is this fraud?"
)
LEAK = "Call Maria Lopez at maria.lopez@example.org about it."  # PII the model makes up on its own


class RecordingEngine(FakeEngine):
    def __init__(self):
        self.seen = []

    def generate(self, req):
        self.seen.append(str(req.messages) + str(req.prompt))
        user = (req.messages or [{"content": req.prompt}])[-1]["content"]
        return Generation(f"FRAUD: {user} {LEAK}", 40, 20, "stop")  # echoes what it got, and leaks


@pytest.fixture
def gateway(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    eng = RecordingEngine()
    settings = GatewaySettings(workloads=["fraud"], pii=PiiConfig(enabled=True), cache=CacheConfig(mode="exact"))
    svc = GatewayService(settings, store, lambda w: Served("", None, "1"), engine_factory=lambda w, s: eng)
    return svc, eng, store


def _leaks(text: str) -> list[str]:
    return [k for k, v in {**SEEDED, "leaked name": "Maria Lopez", "leaked e-mail": "maria.lopez"}.items() if v in text]


def test_seeded_pii_reaches_neither_engine_store_logs_nor_answer(gateway, caplog):
    svc, eng, store = gateway
    caplog.set_level(logging.DEBUG)
    msgs = [{"role": "system", "content": "You triage card transactions."}, {"role": "user", "content": PROMPT}]
    whole = svc.complete("fraud", GenRequest(messages=msgs), Tenant("t"))
    _iid, _eng, events = svc.stream("fraud", GenRequest(messages=[dict(m) for m in msgs], use_cache=False), Tenant("t"))
    streamed = list(events)
    raw = svc.complete("fraud", GenRequest(prompt=PROMPT), Tenant("t"))  # /v1/completions
    answers = [whole["text"], "".join(e for e in streamed if isinstance(e, str)), raw["text"]]
    rows = store.list("fraud")
    assert len(eng.seen) == 3 and len(rows) == 3
    assert [_leaks(s) for s in eng.seen] == [[], [], []]  # the engine saw placeholders only
    assert [_leaks(a) for a in answers] == [[], [], []]  # and so does the user, leaks masked
    assert [_leaks(str(r)) for r in rows] == [[], [], []]  # the store: messages, response, everything
    assert _leaks(caplog.text) == []
    assert "<CREDIT_CARD>" in eng.seen[0] and "<EMAIL_ADDRESS>" in answers[0]
    flags = rows[0]["guard_flags"]
    assert {f"pii_masked:prompt:{e}" for e in SEEDED} <= set(flags) and "pii_masked:answer:EMAIL_ADDRESS" in flags
    again = svc.complete("fraud", GenRequest(messages=msgs), Tenant("t"))  # the cache holds the masked answer
    assert again["cache"]["result"] == "hit" and _leaks(again["text"]) == []


def test_the_rail_is_off_unless_turned_on(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    eng = RecordingEngine()
    settings = GatewaySettings(workloads=["fraud"], cache=CacheConfig(mode="off"))
    svc = GatewayService(settings, store, lambda w: Served("", None, "1"), engine_factory=lambda w, s: eng)
    svc.complete("fraud", GenRequest(messages=[{"role": "user", "content": PROMPT}]), Tenant("t"))
    assert SEEDED["CREDIT_CARD"] in eng.seen[0]  # off by default: the operator decides (see README)
