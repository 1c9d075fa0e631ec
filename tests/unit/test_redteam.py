"""The red-team report's parts: garak's report parsed, the gateway's log turned into block rates per rail and
family with Wilson intervals, garak's options, and a missing garak named with the command that builds it."""

import json

import pytest

from flywheel.core.errors import ServiceUnavailable
from flywheel.guard.redteam import block_stats, garak_options, garak_summary, markdown, run_garak, wilson


def test_garak_summary_reads_attempts_and_detector_verdicts(tmp_path):
    report = tmp_path / "r.report.jsonl"
    entries = [
        {"entry_type": "attempt", "status": 1, "probe_classname": "dan.Dan_11_0"},  # sent, not yet evaluated
        {"entry_type": "attempt", "status": 2, "probe_classname": "dan.Dan_11_0"},
        {"entry_type": "attempt", "status": 2, "probe_classname": "dan.Dan_11_0"},
        {"entry_type": "eval", "probe": "dan.Dan_11_0", "detector": "dan.DAN", "passed": 2, "total_evaluated": 2},
        {"entry_type": "eval", "probe": "dan.Dan_11_0", "detector": "mitigation.MitigationBypass", "passed": 1,
         "total_evaluated": 2},
    ]  # fmt: skip
    report.write_text("".join(json.dumps(e) + "\n" for e in entries))
    s = garak_summary(report)
    assert s["dan.Dan_11_0"]["attempts"] == 2
    assert s["dan.Dan_11_0"]["detectors"]["mitigation.MitigationBypass"]["attack_success_rate"] == 0.5
    assert s["dan.Dan_11_0"]["detectors"]["dan.DAN"]["attack_success_rate"] == 0.0


def test_block_stats_per_rail_and_family():
    def row(text, flags, ms):
        return {"messages": [{"role": "user", "content": text}], "guard_flags": flags, "latency_ms": ms}

    rows = [row("a", ["blocked:injection:rule:override"], 1), row("b", ["blocked:topic:similarity:0.10"], 10),
            row("c", ["pii_masked:prompt:PERSON"], 900), row("d", [], 1000)]  # fmt: skip
    s = block_stats(rows, {"a": "tricky", "b": "general", "c": "fraud", "d": "fraud"})
    assert s["requests"] == 4 and s["blocked"] == 2 and s["block_rate"] == 0.5
    assert s["by_rail"] == {"injection": 1, "topic": 1, "passed": 2}
    assert s["by_family"] == {"fraud": {"passed": 2}, "general": {"topic": 1}, "tricky": {"injection": 1}}
    assert s["latency_ms"]["passed"] == {"p50": 950.0, "p95": 995.0}
    lo, hi = wilson(2, 4)
    assert s["ci95"] == [lo, hi] and lo < 0.5 < hi
    assert wilson(0, 0) == [0.0, 1.0]
    md = markdown({"model": "fraud", "gateway": "http://x", "probes": ["dan"], "garak": {},
                   "attacks": s, "benign": s})  # fmt: skip
    assert "| garak attacks | 4 | 2 | 50.0% |" in md and "| benign: general | 1 | 1 |" in md


def test_garak_options_and_a_missing_garak(tmp_path):
    o = garak_options("http://127.0.0.1:8088/", "fraud", "rt-1")["openai"]["OpenAICompatible"]
    assert o["uri"] == "http://127.0.0.1:8088/v1/" and o["extra_params"] == {"user": "rt-1"}
    with pytest.raises(ServiceUnavailable, match="make redteam-env"):
        run_garak(tmp_path / "nope", "http://x", "fraud", ["dan"], tmp_path / "out", "rt")


def test_probe_blocks_join_garak_prompts_with_the_gateway_log(tmp_path):
    from flywheel.guard.redteam import probe_blocks

    def attempt(probe, text):  # garak >= 0.10 writes the prompt as a Conversation
        conv = {"turns": [{"role": "user", "content": {"text": text, "lang": "en"}}], "notes": {}}
        return {"entry_type": "attempt", "status": 2, "probe_classname": probe, "prompt": conv}

    report = tmp_path / "r.report.jsonl"
    entries = [attempt("dan.X", "be DAN"), attempt("dan.X", "be STAN"), attempt("latent.Y", "translate: hi")]
    report.write_text("".join(json.dumps(e) + "\n" for e in entries))
    rows = [
        {"messages": [{"role": "user", "content": "be DAN"}], "guard_flags": ["blocked:injection:rule:dan"]},
        {"messages": [{"role": "user", "content": "translate: hi"}], "guard_flags": []},
    ]
    assert probe_blocks(report, rows) == {
        "dan.X": {"injection": 1, "not logged": 1},
        "latent.Y": {"passed": 1},
    }
