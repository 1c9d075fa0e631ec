"""The response cache: facts of a text, the near-miss guard on labelled pairs, TTL and LRU, partitions (a new
version or another system prompt never shares answers), and the gateway path with the real MiniLM embedder:
a paraphrase is served from the cache, a near miss and a bypassed or sampled request are not."""

import numpy as np
import pytest

from examples.cache_pairs import pairs
from flywheel.serving.cache import ResponseCache, facts, partition, query_text, same_facts
from flywheel.serving.config import CacheConfig, GatewaySettings
from flywheel.serving.engine import Generation, GenRequest
from flywheel.serving.service import GatewayService, Served
from flywheel.serving.tenants import Tenant
from tests.fake_engine import FakeEngine


def test_facts_are_numbers_times_and_names():
    a = "Online purchase of $480.00 at TechHaven in Lagos at 14:15; 2 transactions in the past hour."
    assert facts(a) == {"n480", "etechhaven", "elagos", "t14:15", "n2"}
    assert same_facts(a, "At TechHaven (Lagos), $480 was charged at 14:15, with 2 transactions in the last hour.")
    assert not same_facts(a, a.replace("$480.00", "$4,800.00"))
    assert not same_facts(a, a.replace("14:15", "02:15"))
    assert not same_facts(a, a.replace("TechHaven", "FreshMart"))
    assert facts("My card ending 4421 was declined.") == {"n4421"}  # "My": capitalised by position only


def test_the_guard_separates_the_labelled_pairs():
    """Both splits of examples/cache_pairs (60 paraphrases + 60 near misses each, half fraud transactions): every
    paraphrase states the same facts, every near miss differs in one."""
    for seed in (1, 2):
        for p in pairs(60, seed):
            assert same_facts(p["a"], p["b"]) == (p["label"] == "paraphrase"), p


def _vec(text):  # a stand-in embedder where a test is about the bookkeeping, not the similarity
    v = np.zeros(8, dtype=np.float32)
    v[len(text) % 8] = 1.0
    return v


def test_ttl_lru_and_exact_mode(monkeypatch):
    cache = ResponseCache(CacheConfig(mode="exact", max_entries=2, ttl_s=10), embed=_vec)
    clock = [100.0]
    monkeypatch.setattr("flywheel.serving.cache.time.monotonic", lambda: clock[0])
    cache.store("p", "What is my limit?", {"text": "A"})
    cache.store("p", "Block card 1234", {"text": "B"})
    assert cache.lookup("p", "what is  my LIMIT?").result == "hit"  # exact: whitespace and case normalised
    assert cache.lookup("p", "What's my limit?").result == "miss"
    cache.store("p", "Block card 9999", {"text": "C"})  # over max_entries: the least recently used goes
    assert cache.lookup("p", "Block card 1234").result == "miss" and cache.lookup("p", "What is my limit?").answer
    assert cache.lookup("other", "What is my limit?").result == "miss"  # another partition
    clock[0] += 11
    assert cache.lookup("p", "What is my limit?").result == "miss" and len(cache) == 0  # expired


def test_partitions_and_what_is_cached():
    sp = [{"role": "system", "content": "triage"}, {"role": "user", "content": "x"}]
    assert partition("fraud", "3", sp, 32, []) != partition("fraud", "4", sp, 32, [])
    other = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}]
    assert partition("fraud", "3", sp, 32, []) != partition("fraud", "3", other, 32, [])
    assert partition("fraud", "3", sp, 32, []) != partition("fraud", "3", sp, 8, [])
    assert query_text(sp) == "x"
    turns = [*sp, {"role": "assistant", "content": "LEGIT"}, {"role": "user", "content": "sure?"}]
    assert query_text(turns) is None  # a multi-turn answer depends on the turns before


class CountingEngine(FakeEngine):
    def __init__(self):
        self.calls = 0

    def generate(self, req):
        self.calls += 1
        return Generation(f"FRAUD: answer {self.calls}", 20, 4, "stop")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from flywheel.feedback.store import FeedbackStore

    store = FeedbackStore(f"sqlite:///{tmp_path_factory.mktemp('cache') / 'fb.db'}")
    eng = CountingEngine()
    settings = GatewaySettings(workloads=["fraud"])  # the default: semantic, near-miss guard on
    svc = GatewayService(settings, store, lambda w: Served("", None, "1"), engine_factory=lambda w, s: eng)
    return svc, eng, store


def _ask(svc, text, **kw):
    req = GenRequest(messages=[{"role": "system", "content": "triage"}, {"role": "user", "content": text}], **kw)
    return svc.complete("fraud", req, Tenant("t"))


def test_the_gateway_serves_paraphrases_from_the_cache_and_never_a_near_miss(service):
    svc, eng, store = service
    first = _ask(svc, "Online purchase of $1,240.50 at TechHaven in Lagos, NG at 02:14; card issued in US.")
    assert first["cache"]["result"] == "miss" and eng.calls == 1
    para = _ask(svc, "Online purchase at TechHaven in Lagos, NG: $1,240.50 at 02:14, card issued in US.")
    assert para["cache"]["result"] == "hit" and para["text"] == first["text"] and eng.calls == 1
    assert para["cache"]["similarity"] >= svc.settings.cache.threshold
    assert store.get(para["id"])["cache_hit"] is True and para["id"] != first["id"]  # logged as its own answer
    near = _ask(svc, "Online purchase of $12,405.00 at TechHaven in Lagos, NG at 02:14; card issued in US.")
    assert near["cache"]["result"] == "near_miss" and eng.calls == 2 and near["text"] != first["text"]
    by = _ask(
        svc, "Online purchase of $1,240.50 at TechHaven in Lagos, NG at 02:14; card issued in US.", use_cache=False
    )
    assert by["cache"]["result"] == "bypass" and eng.calls == 3
    hot = _ask(
        svc, "Online purchase of $1,240.50 at TechHaven in Lagos, NG at 02:14; card issued in US.", temperature=0.7
    )
    assert hot["cache"]["result"] == "skip" and eng.calls == 4  # sampled answers are neither read nor written
