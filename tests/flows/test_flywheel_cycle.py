"""A full flywheel cycle as a Prefect flow on the tiny model (fast), and the gate refusing a worse model.

The real SmolLM2 runs the same flow in tests/integration (marker `integration`).
"""

import json

import pytest

from examples.documents import write_documents
from examples.fraud import generate, write_jsonl
from flywheel.core.workload import load_workload
from flywheel.registry.mlflow_registry import Registry


@pytest.fixture(scope="module")
def cycle(prefect_api, tiny_model, tmp_path_factory, root):
    import os

    home = tmp_path_factory.mktemp("home")
    os.environ["FLYWHEEL_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    data = home / "data" / "fraud"
    train = write_jsonl(generate(64, seed=1), data / "fraud-train.jsonl")
    with train.open("a") as f:
        f.write('{"id": "broken", "text": "unterminated\n')  # a malformed JSONL line
        f.write(json.dumps({"id": "dup", **{k: v for k, v in generate(1, seed=1)[0].items() if k != "id"}}) + "\n")
    write_jsonl(generate(24, seed=2, noise=0.0), data / "fraud-test.jsonl")
    write_documents(data)  # includes a corrupt PDF
    cfg = load_workload(root / "configs/workloads/fraud.yaml").model_copy(deep=True)
    cfg.sft = cfg.sft.model_copy(
        update={"base_model": str(tiny_model), "max_steps": 6, "batch_size": 4, "learning_rate": 1e-2}
    )
    cfg.eval = cfg.eval.model_copy(update={"max_examples": 24})

    from flows.cycle import cycle as run_cycle

    summary = run_cycle(cfg)
    return {
        "summary": summary,
        "cfg": cfg,
        "home": home,
        "reg": Registry(os.environ["MLFLOW_TRACKING_URI"], (home / "mlflow" / "artifacts").as_uri()),
    }


def test_cycle_reports_counts_and_quarantine(cycle):
    d = cycle["summary"]["data"]
    assert d["ingest_train"]["kept"] == 65 and d["ingest_train"]["dropped_malformed_jsonl"] == 1
    assert d["curate_train"]["total"] == 65 and d["curate_train"]["dropped_exact_duplicate"] == 1
    assert d["curate_train"]["kept"] == 64 and d["sft_rows"] == 64 and d["sft_from_feedback"] == 0
    reasons = sorted((q["path"].rsplit("/", 1)[-1], q["reason"]) for q in d["quarantined"])
    assert reasons == [("fraud-train.jsonl", "malformed_jsonl"), ("scan-upload-corrupt.pdf", "corrupt_pdf")]
    # 2 PDF pages + 2 ruled tables + 1 note; the tables survive curation (their pipes are not "symbols")
    assert d["ingest_documents"] == {"total": 6, "kept": 5, "dropped_corrupt_pdf": 1}
    assert d["curate_documents"]["kept"] == 5
    assert d["test_rows"] == 24


def test_cycle_registers_base_and_candidate_with_lineage(cycle):
    s, reg = cycle["summary"], cycle["reg"]
    versions = reg.versions("fraud")
    assert [v.version for v in versions] == ["1", "2"] and versions[0].is_base
    assert s["champion"]["version"] == "1" and s["candidate"]["version"] == "2"
    assert reg.get_alias("fraud", "challenger").version == "2"
    # The gate's verdict, recomputed here from the numbers the registry stored and the workload's rules
    # (accuracy must gain 0.01; perplexity may grow by half), must be what the registry then serves.
    assert set(cfg_rules := cycle["cfg"].gate.metrics) == {"accuracy", "perplexity"}
    champ, cand_m = reg.version("fraud", "1").metrics, reg.version("fraud", "2").metrics
    assert champ == s["champion"]["metrics"] and cand_m == s["candidate"]["metrics"]
    acc, ppl = cfg_rules["accuracy"], cfg_rules["perplexity"]
    should_promote = cand_m["accuracy"] >= champ["accuracy"] + acc.min_improvement - acc.tolerance and cand_m[
        "perplexity"
    ] <= champ["perplexity"] * (1 + ppl.tolerance)
    assert s["promoted"] is should_promote
    assert reg.champion("fraud").version == ("2" if should_promote else "1") == s["served_version"]
    cand = reg.version("fraud", "2")
    assert cand.tags["data.training"] == s["data"]["digests"]["training"]
    assert cand.tags["gate"] == ("passed" if s["promoted"] else "refused")
    run = reg.client.get_run(s["mlflow_run_id"])
    logged = {i.dataset.name: i.dataset.digest for i in run.inputs.dataset_inputs}
    assert logged["fraud-sft"] == s["data"]["digests"]["training"][:36]
    assert logged["fraud-test"] == s["data"]["digests"]["evaluation"][:36]
    assert len(reg.client.get_metric_history(run.info.run_id, "train_loss")) == 6
    assert run.data.metrics["candidate_accuracy"] == s["candidate"]["metrics"]["accuracy"]
    assert run.info.status == "FINISHED"
    assert (cycle["home"] / "runs" / s["mlflow_run_id"] / "summary.json").exists()


def test_a_worse_candidate_leaves_the_champion_untouched(cycle):
    from tasks.registry import gate_and_register

    s, reg, cfg = cycle["summary"], cycle["reg"], cycle["cfg"]
    champ_before = reg.champion("fraud")
    champ = {"version": champ_before.version, "metrics": {"accuracy": 0.9, "perplexity": 10.0}}
    worse = {"accuracy": 0.5, "perplexity": 10.0}
    out = gate_and_register.fn(cfg, s["mlflow_run_id"], worse, champ, {}, "k")
    assert out["promoted"] is False and out["champion_version"] == champ_before.version
    assert out["decision"]["reasons"] == ["accuracy: 0.5000 < 0.9100 (champion 0.9000)"]
    assert reg.champion("fraud").version == champ_before.version
    assert reg.version("fraud", out["version"]).tags["gate"] == "refused"
    better = {"accuracy": 0.95, "perplexity": 10.5}
    out = gate_and_register.fn(cfg, s["mlflow_run_id"], better, champ, {}, "k")
    assert out["promoted"] is True and reg.champion("fraud").version == out["version"]


def test_rollback_moves_the_champion_back_and_says_so(cycle):
    from prefect.events.worker import EventsWorker

    from tasks.registry import gate_and_register, rollback

    s, reg, cfg = cycle["summary"], cycle["reg"], cycle["cfg"]
    before = reg.champion("fraud").version
    champ = {"version": before, "metrics": {"accuracy": 0.1, "perplexity": 10.0}}
    promoted = gate_and_register.fn(cfg, s["mlflow_run_id"], {"accuracy": 0.99, "perplexity": 10.0}, champ, {}, "k")
    assert promoted["promoted"] and reg.champion("fraud").version == promoted["version"] != before
    history = json.loads(reg.client.get_registered_model("fraud").tags["champion_history"])
    assert history[-1] == before and history[0] == "1"
    for expected in reversed(history):  # each rollback serves the champion before, back to the base model
        current = reg.champion("fraud").version
        out = rollback("fraud")
        assert (out["from"], out["to"]) == (current, expected) and reg.champion("fraud").version == expected
    EventsWorker.drain_all(timeout=10)
    with pytest.raises(LookupError, match="no previous champion"):
        rollback("fraud")
    assert reg.champion("fraud").version == "1"
