"""A full flywheel cycle as a Prefect flow on the tiny model (fast), then the registry's life around it:
the gate's verdict recorded, a crash inside the register -> promote transaction rolled back, promotion by
the gate, by force and by a person's approval, rollback served by the gateway, and the lineage of a version.

The tiny model is a random 2-layer Llama: its answers are noise, which is what the default gate must refuse.
The real SmolLM2 runs the same flow in tests/integration (marker `integration`).
"""

import json
import threading
import time
from pathlib import Path

import pytest
import yaml

from examples.documents import write_documents
from examples.fraud import generate, write_jsonl
from flywheel.core.workload import load_workload
from flywheel.evaluation.config import GateConfig
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
    cfg.eval = cfg.eval.model_copy(update={"max_examples": 24, "bootstrap": 200})

    from flows.cycle import cycle as run_cycle

    summary = run_cycle(cfg)
    return {
        "summary": summary,
        "cfg": cfg,
        "home": home,
        "reg": Registry(os.environ["MLFLOW_TRACKING_URI"], (home / "mlflow" / "artifacts").as_uri()),
    }


def _new_run(cycle) -> str:
    """A training run of its own, holding the cycle's adapter (what `flywheel train` leaves behind)."""
    reg, s = cycle["reg"], cycle["summary"]
    with reg.start_run("fraud", "copy") as run:
        reg.mlflow.log_artifacts(str(cycle["home"] / "runs" / s["mlflow_run_id"] / "adapter"), "adapter")
    return run.info.run_id


def _evaluate(cycle, run_id, gate=None):
    from flows.evaluate import evaluate

    s, cfg, home = cycle["summary"], cycle["cfg"], cycle["home"]
    if gate is not None:
        cfg = cfg.model_copy(update={"gate": gate})
    return evaluate(
        cfg,
        run_id,
        str(home / "runs" / s["mlflow_run_id"] / "adapter"),
        cfg.sft.base_model,  # the tiny model's folder
        s["evaluation"]["golden"]["path"],
        str(home / "data" / "fraud" / "general.txt"),
        icl_pool_path=None,
    )


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
    # the knowledge base follows the curated documents (the policy PDF and the note), graph included
    assert d["kb"]["documents"] == 2 and d["kb"]["changed"] == 2 and d["kb"]["chunks"] == d["kb"]["embedded"] > 2
    assert d["kb"]["entities"] > 20 and (cycle["home"] / "kb" / "fraud" / "kb.json").exists()
    assert d["test_rows"] == 24 and d["golden"]["rows"] == 24


def test_four_rows_with_intervals_and_the_noise_model_refused(cycle):
    s = cycle["summary"]
    ev = s["evaluation"]
    assert list(ev["rows"]) == ["base", "icl", "champion", "candidate"] and ev["n_examples"] == 24
    for card in ev["rows"].values():
        acc = card["metrics"]["accuracy"]
        assert acc["low"] <= acc["value"] <= acc["high"]
        assert {"format_valid", "macro_f1", "perplexity", "general_mc_accuracy"} <= set(card["metrics"])
        assert {"label=FRAUD", "label=LEGIT", "rule=none"} <= set(card["slices"])
    assert ev["rows"]["candidate"]["info"]["general_mc_scorer"] == "lm-evaluation-harness"
    # a random model's answers carry no label: the default fraud gate refuses it and says which rules failed
    assert s["promoted"] is False and s["served_version"] == "1"
    reasons = s["gate"]["reasons"]
    assert "format_valid vs absolute" in " ".join(reasons) and "label=FRAUD recall vs absolute" in " ".join(reasons)
    md = (cycle["home"] / "runs" / s["mlflow_run_id"] / "evaluation" / "report.md").read_text()
    assert "| metric | base | icl | champion | candidate |" in md and "## Gate: REFUSED" in md
    assert "Leakage check: 0 training rows" in md


def test_cycle_registers_base_and_candidate_with_lineage(cycle):
    s, reg = cycle["summary"], cycle["reg"]
    versions = reg.versions("fraud")
    assert [v.version for v in versions] == ["1", "2"] and versions[0].is_base
    baseline = json.loads(versions[0].tags["evaluation"])  # the base's own row, judged on the same golden set
    assert baseline["gate"] == "baseline" and baseline["golden_digest"] == s["data"]["digests"]["evaluation"]
    assert s["champion"]["version"] == "1" and s["candidate"]["version"] == "2"
    assert reg.get_alias("fraud", "challenger").version == "2" and reg.champion("fraud").version == "1"
    v2 = reg.version("fraud", "2")
    digests = s["data"]["digests"]
    assert v2.tags["data.training"] == digests["training"] and v2.tags["golden_digest"] == digests["evaluation"]
    assert v2.tags["parent_version"] == "1" and v2.tags["trigger_event"] == "manual"
    assert len(v2.tags["config_hash"]) == 16 and v2.tags["code_revision"]
    evaluation = json.loads(v2.tags["evaluation"])
    assert evaluation["gate"] == "refused" and evaluation["compared_to"] == "1"
    assert evaluation["metrics"] == s["candidate"]["metrics"] == v2.metrics
    assert evaluation["golden_digest"] == digests["evaluation"] == reg.golden_set("fraud")["digest"]
    run = reg.client.get_run(s["mlflow_run_id"])
    logged = {i.dataset.name: i.dataset.digest for i in run.inputs.dataset_inputs}
    assert logged["fraud-sft"] == digests["training"][:36] and logged["fraud-test"] == digests["evaluation"][:36]
    assert len(reg.client.get_metric_history(run.info.run_id, "train_loss")) == 6
    assert run.data.metrics["candidate_accuracy"] == s["candidate"]["metrics"]["accuracy"]
    assert run.data.metrics["icl_accuracy_low"] <= run.data.metrics["icl_accuracy"]
    artifacts = {f.path for f in reg.client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/report.md", "evaluation/report.png", "evaluation/examples.json"} <= artifacts
    assert run.info.status == "FINISHED"


def test_a_crash_between_register_and_promote_leaves_the_registry_as_it_was(cycle, monkeypatch):
    import tasks.evaluate

    reg = cycle["reg"]
    before = ([v.version for v in reg.versions("fraud")], reg.champion("fraud").version)
    run_id = _new_run(cycle)

    def crash(*args, **kwargs):
        raise RuntimeError("injected: the evaluation machine died")

    monkeypatch.setattr(tasks.evaluate, "evaluate_candidate", crash)
    with pytest.raises(RuntimeError, match="injected"):
        _evaluate(cycle, run_id)
    assert ([v.version for v in reg.versions("fraud")], reg.champion("fraud").version) == before
    assert reg.client.get_run(run_id).info.status == "FAILED"


def test_a_crash_after_the_alias_moved_puts_the_champion_back(cycle, monkeypatch):
    import tasks.registry

    reg = cycle["reg"]
    before = ([v.version for v in reg.versions("fraud")], reg.champion("fraud").version)

    def crash(*args, **kwargs):
        raise RuntimeError("injected: the events API is down")

    monkeypatch.setattr(tasks.registry, "emit", crash)  # runs right after the promotion
    with pytest.raises(RuntimeError, match="injected"):
        _evaluate(cycle, _new_run(cycle), gate=GateConfig(metrics={}))  # a gate that passes anything
    assert ([v.version for v in reg.versions("fraud")], reg.champion("fraud").version) == before


def test_a_passing_candidate_is_promoted_and_dated(cycle):
    reg = cycle["reg"]
    before = reg.champion("fraud").version
    out = _evaluate(cycle, _new_run(cycle), gate=GateConfig(metrics={}))
    assert out["promoted"] is True and reg.champion("fraud").version == out["version"] != before
    new = reg.version("fraud", out["version"])
    assert json.loads(new.tags["promotion"])["how"] == "gate" and new.tags["served_from"]
    assert reg.version("fraud", before).tags["served_until"] >= new.tags["served_from"][:10]


def test_promote_by_force_is_recorded_as_forced(cycle):
    from flows.evaluate import promote_version

    reg, cfg, s, home = cycle["reg"], cycle["cfg"], cycle["summary"], cycle["home"]
    champion = reg.champion("fraud").version
    out = promote_version(
        cfg, "2", cfg.sft.base_model, s["evaluation"]["golden"]["path"], str(home / "data/fraud/general.txt")
    )
    assert out["promoted"] is False and reg.champion("fraud").version == champion  # the gate refuses v2
    out = promote_version(
        cfg,
        "2",
        cfg.sft.base_model,
        s["evaluation"]["golden"]["path"],
        str(home / "data/fraud/general.txt"),
        force=True,
        note="demo override",
    )
    assert out["promoted"] is True and reg.champion("fraud").version == "2"
    v2 = reg.version("fraud", "2")
    assert json.loads(v2.tags["evaluation"])["gate"] == "forced"
    assert json.loads(v2.tags["promotion"]) | {"at": None} == {"at": None, "how": "force", "note": "demo override"}


def test_required_approval_waits_for_a_typed_decision(cycle):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.flow_runs import resume_flow_run

    from flows.evaluate import promote_version

    reg, s, home = cycle["reg"], cycle["summary"], cycle["home"]
    cfg = cycle["cfg"].model_copy(update={"gate": GateConfig(metrics={}, approval="required")})
    target = reg.versions("fraud")[-1].version
    assert reg.champion("fraud").version != target
    result: dict = {}
    name = f"approve-{target}-{time.time_ns()}"
    args = (cfg, target, cfg.sft.base_model, s["evaluation"]["golden"]["path"], str(home / "data/fraud/general.txt"))
    thread = threading.Thread(
        target=lambda: result.update(out=promote_version.with_options(flow_run_name=name)(*args)), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
            if runs and runs[0].state and runs[0].state.is_paused():
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the promotion never paused for approval")
    assert reg.champion("fraud").version != target  # nothing moves while a person decides
    resume_flow_run(runs[0].id, run_input={"approve": True, "comment": "looks right to me"})
    thread.join(timeout=120)
    assert result["out"]["promoted"] is True and reg.champion("fraud").version == target
    assert json.loads(reg.version("fraud", target).tags["promotion"])["note"] == "looks right to me"


def test_rollback_is_served_by_the_gateway(cycle):
    from prefect.events.worker import EventsWorker

    from flywheel.feedback.store import FeedbackStore
    from flywheel.serving.config import GatewaySettings
    from flywheel.serving.service import GatewayService, registry_resolver
    from tasks.registry import rollback

    reg, home = cycle["reg"], cycle["home"]
    gateway = GatewayService(
        GatewaySettings(workloads=["fraud"], reload_interval_s=0),
        FeedbackStore(f"sqlite:///{home / 'gw.db'}"),
        registry_resolver(reg, home / "models"),
    )
    current = reg.champion("fraud").version
    assert gateway.engine("fraud").model_version == current
    history = json.loads(reg.client.get_registered_model("fraud").tags["champion_history"])
    out = rollback("fraud")
    assert (out["from"], out["to"]) == (current, history[-1])
    assert gateway.engine("fraud").model_version == history[-1] == reg.champion("fraud").version
    assert json.loads(reg.version("fraud", history[-1]).tags["promotion"])["how"] == "rollback"
    EventsWorker.drain_all(timeout=10)


def test_lineage_walks_from_the_version_to_the_source_files(cycle, cli):
    from flywheel.registry.lineage import lineage

    reg, s, home = cycle["reg"], cycle["summary"], cycle["home"]
    info = lineage(reg, home / "datasets", "fraud", "2")
    training = info["datasets"]["training"]
    assert training["name"] == "fraud-sft" and training["rows"] == 64
    curated = [p for p in training["parents"] if p["name"] == "fraud-train"][0]
    assert curated["digest"] == s["data"]["digests"]["curated"]
    raw = curated["parents"][0]
    assert raw["name"] == "fraud-train-raw" and raw["sources"][0].endswith("fraud-train.jsonl")
    assert info["golden_digest"] == s["data"]["digests"]["evaluation"] == info["datasets"]["evaluation"]["digest"]
    assert info["training"]["run_id"] == s["mlflow_run_id"] and info["training"]["steps"] == s["training"]["steps"] == 6
    assert info["evaluation"]["gate"] == "forced" and info["promotion"]["how"] == "rollback"  # forced, then back
    out = cli("lineage", "2", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["datasets"]["training"]["digest"] == training["digest"]
    text = cli("lineage", "2").stdout
    assert "fraud-train-raw" in text and "fraud-train.jsonl" in text and "gate: forced vs v" in text


def test_evaluate_command_prints_the_four_rows_with_intervals(cycle, cli, tmp_path):
    import yaml
    from prefect.settings import PREFECT_API_URL

    reg = cycle["reg"]
    before = [v.version for v in reg.versions("fraud")]
    workload = tmp_path / "fraud.yaml"
    workload.write_text(yaml.safe_dump(cycle["cfg"].model_dump(mode="json")))
    out = cli("evaluate", "--workload", workload, "--json", env={"PREFECT_API_URL": PREFECT_API_URL.value()})
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    rows = res["evaluation"]["rows"]
    assert list(rows) == ["base", "icl", "champion", "candidate"]
    champion = reg.champion("fraud").version
    assert res["champion"]["version"] == res["candidate"]["version"] == champion  # the champion, judged
    for card in rows.values():
        acc = card["metrics"]["accuracy"]
        assert acc["low"] <= acc["value"] <= acc["high"]
    assert res["evaluation"]["golden"]["digest"] == reg.golden_set("fraud")["digest"]
    assert [v.version for v in reg.versions("fraud")] == before  # nothing registered
    assert reg.champion("fraud").version == champion  # and nothing moved


def test_deploy_model_canary_prompts_then_rollout_to_local_vllm_and_trtllm(cycle, cli, tmp_path):
    """`flywheel deploy-model`: the version answers recent live prompts first (too few well-formed answers: exit
    3, nothing moves); then a canary rollout the gateway loads beside the champion. vLLM: the adapter is loaded
    through the runtime LoRA endpoint (a recording fake server); trtllm: its options file. Last in this module:
    it leaves a finished rollout behind."""
    import uvicorn
    import yaml
    from prefect.settings import PREFECT_API_URL

    from flywheel.feedback.store import FeedbackStore
    from flywheel.serving import rollout
    from flywheel.serving.config import GatewaySettings
    from flywheel.serving.service import GatewayService, registry_resolver
    from tests.fake_openai import create_fake

    reg, home, cfg = cycle["reg"], cycle["home"], cycle["cfg"].model_copy(deep=True)
    api = {"PREFECT_API_URL": PREFECT_API_URL.value()}  # deploy-model is a flow
    store = FeedbackStore(f"sqlite:///{home / 'feedback.db'}")
    for i in range(3):  # live traffic: what the canary prompts are made of
        store.log_interaction(
            workload="fraud", model="fraud", model_version="1", response="LEGIT: ok", latency_ms=1.0,
            messages=[{"role": "system", "content": cfg.system_prompt}, {"role": "user", "content": f"${i} coffee"}],
        )  # fmt: skip
    version = max(v.version for v in reg.versions("fraud") if not v.is_base)
    cfg.deploy = cfg.deploy.model_copy(update={"mode": "canary", "share": 0.5, "canary_min_format": 0.0})
    workload = tmp_path / "fraud.yaml"
    workload.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))

    fake = create_fake(answers={f"fraud-v{version}": "maybe, who knows"})
    server = uvicorn.Server(uvicorn.Config(fake, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        strict = tmp_path / "strict.yaml"
        strict.write_text(yaml.safe_dump({**cfg.model_dump(mode="json"), "deploy": {"canary_min_format": 0.9}}))
        out = cli("deploy-model", version, "-w", strict, "--target", "vllm", "--upstream-url", url, "--json", env=api)
        assert out.returncode == 3, out.stderr[-2000:]
        res = json.loads(out.stdout)
        assert (
            res["canary"]["format_rate"] == 0.0
            and res["canary"]["prompts"] == 3
            and rollout.current(reg, "fraud") is None
        )
        load = [b for b in fake.state.recorded if b["path"] == "/v1/load_lora_adapter"]
        assert load[0]["lora_name"] == f"fraud-v{version}" and load[0]["lora_path"].endswith(f"v{version}")
    finally:
        server.should_exit = True
        thread.join(10)

    out = cli("deploy-model", version, "-w", workload, "--json", env=api)  # local: the tiny model answers the canary
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    assert res["canary"]["answered"] == 3 and res["rollout"]["mode"] == "canary"
    r = rollout.current(reg, "fraud")
    assert (r.version, r.share, r.champion) == (version, 0.5, reg.champion("fraud").version)
    gateway = GatewayService(
        GatewaySettings(workloads=["fraud"], reload_interval_s=0), store, registry_resolver(reg, home / "models"),
        rollouts=rollout.RegistryRollouts(reg),
    )  # fmt: skip
    gateway.engine("fraud")
    assert gateway._routes["fraud"][1].model_version == version  # loaded beside the champion
    rollout.finish(reg, r, "rollback", ["test over"])
    gateway.engine("fraud")
    assert "fraud" not in gateway._routes
    gateway.close()

    out = cli("deploy-model", version, "-w", workload, "--target", "trtllm", "--json", env=api)
    assert out.returncode == 0, out.stderr[-2000:]
    opts = yaml.safe_load(Path(json.loads(out.stdout)["options"]).read_text())
    assert opts["lora_config"]["lora_dir"][0].endswith(f"v{version}") and opts["kv_cache_config"]["enable_block_reuse"]


def test_scheduled_flows_refresh_the_data_and_evaluate_the_champion(cycle, tmp_path):
    """The nightly refresh re-reads the inputs from the ingest cache, curates them to the same Datasets and finds
    the KB up to date; the weekly evaluation judges the champion on the frozen golden set and moves nothing."""
    from flows.evaluate import evaluate_champion
    from flows.refresh import refresh_data

    path = tmp_path / "fraud.yaml"
    path.write_text(yaml.safe_dump(cycle["cfg"].model_dump(mode="json")))
    d = cycle["summary"]["data"]
    out = refresh_data("fraud", str(path))
    assert out["train"]["digest"] == d["digests"]["curated"]  # same inputs, same curated Dataset
    assert out["kb"]["changed"] == 0 and out["kb"]["embedded"] == 0 and out["kb"]["chunks_extracted"] == 0
    before = cycle["reg"].champion("fraud").version
    res = evaluate_champion("fraud", str(path))
    assert res["evaluation"]["golden"]["digest"] == d["digests"]["evaluation"]
    assert res["candidate"]["version"] == before and set(res["evaluation"]["rows"]) >= {"base", "candidate"}
    assert res["promoted"] is False and cycle["reg"].champion("fraud").version == before  # nothing moved
