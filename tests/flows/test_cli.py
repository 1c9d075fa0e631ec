"""The `flywheel` CLI: help for every stage, --json summaries, exit codes 0/2/1."""

import json
import re
from pathlib import Path

import yaml

STAGES = [
    "server",
    "generate",
    "ingest",
    "ingest-deploy",
    "watch",
    "curate",
    "curate-classifier",
    "train",
    "evaluate",
    "run",
    "deploy",
    "drift",
    "status",
    "forget",
    "retrain",
    "promote",
    "rollback",
    "lineage",
    "serve",
    "keys",
    "deploy-model",
    "redteam",
    "cache-train",
    "kb",
    "demo",
]


def _listed_commands(help_text: str) -> list[str]:
    """The command names in the "Commands" panel of a rich help text (the first word of each row)."""
    panel = help_text.split("Commands", 1)[1]
    return re.findall(r"^(?:│ |  )([a-z][a-z-]*)\s{2,}", panel, re.M)  # continuation lines start with more spaces


def test_help_lists_every_stage_and_each_has_help_and_json(cli):
    from typer.main import get_command
    from typer.testing import CliRunner

    from cli.main import app

    out = cli("--help")  # the real entry point, as a user runs it
    assert out.returncode == 0, out.stderr
    assert sorted(_listed_commands(out.stdout)) == sorted(STAGES)
    assert sorted(get_command(app).commands) == sorted(STAGES)
    runner = CliRunner()
    for stage in STAGES:
        sub = {"server": ["server", "start"], "keys": ["keys", "create"], "kb": ["kb", "build"]}.get(stage, [stage])
        h = runner.invoke(app, [*sub, "--help"], env={"COLUMNS": "200"})
        assert h.exit_code == 0, (stage, h.output)
        has_json = "--json" in h.output
        assert has_json == (stage not in ("serve", "watch")), stage  # long-running processes print no summary


def test_keys_create_list_revoke(tmp_path, cli):
    """A key is printed once and stored hashed; list shows its prefix and tenant; revoke by prefix; an unknown
    prefix exits 2."""
    env = {"FLYWHEEL_HOME": str(tmp_path / "home")}
    out = cli("keys", "create", "--tenant", "acme", "--rpm", "60", "--json", env=env)
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["key"].startswith("fw-") and made["prefix"] == made["key"][:10] and made["rpm"] == 60
    db = (tmp_path / "home").rglob("*.db")
    assert not any(made["key"].encode() in p.read_bytes() for p in db)  # only its hash is stored
    listed = json.loads(cli("keys", "list", "--json", env=env).stdout)
    assert [(k["prefix"], k["tenant"], k["revoked"]) for k in listed] == [(made["prefix"], "acme", None)]
    assert cli("keys", "revoke", made["prefix"], env=env).returncode == 0
    assert json.loads(cli("keys", "list", "--json", env=env).stdout)[0]["revoked"] is not None
    gone = cli("keys", "revoke", made["prefix"], env=env)
    assert gone.returncode == 2 and "no active key" in gone.stderr


def test_the_command_list_reader_sees_a_missing_command():
    text = "Usage: flywheel\n\n╭─ Commands ─╮\n│ ingest     Read documents │\n│ curate     Normalise │\n╰────╯\n"
    assert _listed_commands(text) == ["ingest", "curate"]
    assert "train" not in _listed_commands(text + "retrain happens by itself\n")


def test_unknown_config_key_exits_2_naming_the_key(tmp_path, cli, root):
    cfg = yaml.safe_load((root / "configs/workloads/fraud.yaml").read_text())
    cfg["curation"]["min_wrods"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = cli("generate", "--workload", str(bad), "--out", str(tmp_path / "d"), env={"FLYWHEEL_HOME": str(tmp_path)})
    assert out.returncode == 2 and "curation.min_wrods: unknown key" in out.stderr


def test_flows_refuse_to_run_without_a_prefect_api(tmp_path, cli):
    env = {"FLYWHEEL_HOME": str(tmp_path), "PREFECT_API_URL": ""}
    out = cli("ingest", str(tmp_path), "--json", env=env)
    assert out.returncode == 2 and "no Prefect API" in out.stderr and out.stdout == ""


def test_bad_usage_exits_2(tmp_path, cli):
    assert cli("ingest").returncode == 2  # missing PATH
    assert cli("no-such-stage").returncode == 2
    env = {"FLYWHEEL_HOME": str(tmp_path), "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # never contacted
    out = cli("evaluate", "--run-id", "r", "--adapter", str(tmp_path), "--test", str(tmp_path), env=env)
    assert out.returncode == 2 and "--test must be a Dataset folder" in out.stderr
    out = cli("train", "--dataset", str(tmp_path), env=env)
    assert out.returncode == 2 and "not a dataset" in out.stderr


def test_generate_then_ingest_json_through_the_api(prefect_api, tmp_path, cli):
    from prefect.settings import PREFECT_API_URL

    env = {
        "FLYWHEEL_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}",
    }
    gen = cli("generate", "--json", "--out", str(tmp_path / "data"), env=env)
    assert gen.returncode == 0, gen.stderr
    files = json.loads(gen.stdout)
    assert set(files) == {"train", "test", "documents", "general_text"}
    out = cli("ingest", files["documents"], files["train"], "--name", "mixed", "--json", env=env)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)  # stdout is the JSON summary alone
    assert res["rows"] == 600 + 5 and res["counts"]["dropped_corrupt_pdf"] == 1
    assert [q["reason"] for q in res["quarantine"]] == ["corrupt_pdf"]
    assert (tmp_path / "home" / "datasets" / "mixed").is_dir()
    cur = cli("curate", res["path"], "--name", "mixed-curated", "--json", env=env)
    assert cur.returncode == 0, cur.stderr
    c = json.loads(cur.stdout)
    assert c["counts"]["total"] == 605 and c["rows"] == c["counts"]["kept"] > 500


def test_train_config_dpo_from_jsonl_logs_mlflow_and_refuses_bad_data(prefect_api, tiny_model, tmp_path, cli):
    """`flywheel train --config` end to end on the tiny model: DPO with UniPELT, an MLflow run with
    per-step loss, tokens/s, MFU and the adapter; a dataset without the DPO columns exits 2 at once."""
    import mlflow
    from prefect.settings import PREFECT_API_URL

    from examples.fraud import generate

    rows = [{"prompt": r["text"], "chosen": "LEGIT: normal", "rejected": "FRAUD: odd"} for r in generate(16, seed=2)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp_path / "dpo.yaml"
    cfg.write_text(
        json.dumps(
            {
                "name": "dpo-test",
                "recipe": "dpo",
                "dataset": str(data),
                "dpo": {
                    "base_model": str(tiny_model),
                    "method": "unipelt",
                    "max_steps": 6,
                    "batch_size": 4,
                    "learning_rate": 0.01,
                    "max_seq_length": 128,
                    "checkpoint_every": 3,
                    "lora_r": 4,
                },
            }
        )
    )
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    env = {
        "FLYWHEEL_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "MLFLOW_TRACKING_URI": uri,
    }
    out = cli("train", "--config", str(cfg), "--json", env=env)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["recipe"] == "dpo" and res["method"] == "unipelt" and res["steps"] == 6 and len(res["losses"]) == 6
    assert (Path(res["adapter_dir"]) / "flywheel_adapter.json").exists()
    mlflow.set_tracking_uri(uri)
    run = mlflow.get_run(res["run_id"])
    assert run.data.tags["flywheel.method"] == "unipelt" and run.data.params["dpo.beta"] == "0.1"
    assert run.data.metrics["mfu"] > 0 and run.data.metrics["data.kept"] == 16
    history = mlflow.MlflowClient().get_metric_history(res["run_id"], "train_loss")
    assert [m.step for m in history] == [1, 2, 3, 4, 5, 6]
    arts = [a.path for a in mlflow.MlflowClient().list_artifacts(res["run_id"], "adapter")]
    assert "adapter/flywheel_adapter.safetensors" in arts

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "no pair here"}) + "\n")
    cfg.write_text(
        json.dumps({"name": "dpo-bad", "recipe": "dpo", "dataset": str(bad), "dpo": {"base_model": str(tiny_model)}})
    )
    out = cli("train", "--config", str(cfg), env=env)
    assert out.returncode == 2 and "missing column(s) prompt, chosen, rejected" in out.stderr


def test_evaluate_takes_any_adapter_that_train_writes(prefect_api, tiny_model, tmp_path, cli, root):
    """`flywheel evaluate` asks the training domain what a folder holds: the `adapter` method writes
    flywheel_adapter.json (no peft adapter_config.json) and is evaluated, gated and registered; a folder with
    neither is refused with exit 2."""
    from prefect.settings import PREFECT_API_URL

    from examples.fraud import generate, write_jsonl

    env = {
        "FLYWHEEL_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}",
    }
    write_jsonl(generate(16, seed=3), tmp_path / "train.jsonl")
    write_jsonl(generate(12, seed=4, noise=0.0), tmp_path / "test.jsonl")
    (tmp_path / "general.txt").write_text("The bank reviews card payments every day and explains its decisions. " * 20)
    train_cfg = {
        "name": "bottleneck",
        "recipe": "sft",
        "dataset": str(tmp_path / "train.jsonl"),
        "sft": {
            "base_model": str(tiny_model),
            "method": "adapter",
            "max_steps": 4,
            "batch_size": 4,
            "max_seq_length": 128,
            "checkpoint_every": 0,
        },
    }
    (tmp_path / "train.yaml").write_text(json.dumps(train_cfg))
    trained = cli("train", "--config", tmp_path / "train.yaml", "--json", env=env)
    assert trained.returncode == 0, trained.stderr
    res = json.loads(trained.stdout)
    adapter = Path(res["adapter_dir"])
    assert (adapter / "flywheel_adapter.json").exists() and not (adapter / "adapter_config.json").exists()
    (tmp_path / "ingest.yaml").write_text("chunking: {enabled: false}\n")
    test = cli(
        "ingest",
        tmp_path / "test.jsonl",
        "--out",
        tmp_path / "test-ds",
        "--config",
        tmp_path / "ingest.yaml",
        "--json",
        env=env,
    )
    assert test.returncode == 0, test.stderr
    workload = yaml.safe_load((root / "configs/workloads/fraud.yaml").read_text())
    workload["sft"]["base_model"] = str(tiny_model)
    workload["eval"]["max_examples"] = 12
    workload["inputs"]["general_text"] = str(tmp_path / "general.txt")
    (tmp_path / "workload.yaml").write_text(yaml.safe_dump(workload))

    args = [
        "evaluate",
        "--workload",
        tmp_path / "workload.yaml",
        "--run-id",
        res["run_id"],
        "--test",
        tmp_path / "test-ds",
    ]
    out = cli(*args, "--adapter", adapter, "--json", env=env)
    assert out.returncode == 0, out.stderr
    ev = json.loads(out.stdout)
    assert (ev["champion"]["version"], ev["version"]) == ("1", "2")  # the base became v1, the adapter v2
    assert 0 <= ev["candidate"]["metrics"]["accuracy"] <= 1
    from flywheel.registry.mlflow_registry import Registry

    v2 = Registry(env["MLFLOW_TRACKING_URI"]).version("fraud", "2")
    assert v2.tags["kind"] == "adapter" and v2.run_id == res["run_id"] and v2.source.endswith("/adapter")
    (tmp_path / "empty").mkdir()
    refused = cli(*args, "--adapter", tmp_path / "empty", env=env)
    assert refused.returncode == 2 and "holds no adapter or model" in refused.stderr


def test_kb_build_query_eval_from_the_command_line(prefect_api, tmp_path, cli):
    """`flywheel kb build` runs the kb-build flow on PDFs (ingested first), `kb query --json` answers with sources,
    `kb eval` measures each retriever, the fusions and the routed pipeline; a second build re-embeds nothing."""
    from prefect.settings import PREFECT_API_URL

    from examples.policies import write_policies

    write_policies(tmp_path / "pdfs")
    env = {"FLYWHEEL_HOME": str(tmp_path / "home"), "PREFECT_API_URL": PREFECT_API_URL.value()}
    kb = tmp_path / "kb"
    out = cli("kb", "build", "--in", tmp_path / "pdfs", "--out", kb, "--json", env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    built = json.loads(out.stdout)
    assert built["documents"] == 6 and built["embedded"] == built["chunks"] > 6
    assert built["entities"] > 100 and built["chunks_extracted"] == built["chunks"]
    again = json.loads(cli("kb", "build", "--in", built["dataset"], "--out", kb, "--json", env=env).stdout)
    assert again["embedded"] == 0 and again["unchanged"] == 6 and again["chunks_extracted"] == 0
    q = cli("kb", "query", "What is the late payment fee?", "--kb", kb, "--json", env=env)
    assert q.returncode == 0, q.stderr
    res = json.loads(q.stdout)
    hits = res["hits"]
    assert res["route"] == "fact" and res["retrieval"] == "hybrid"
    assert "late fee of $29" in hits[0]["text"] and hits[0]["source"].endswith("fees-and-limits.pdf")
    ev = json.loads(cli("kb", "eval", "--kb", kb, "--json", env=env).stdout)
    assert ev["questions"] == 52 and ev["routed"]["recall@5"] >= 0.9 and ev["hybrid"]["recall@5"] >= 0.9
    missing = cli("kb", "query", "fees", "--kb", tmp_path / "nowhere", env=env)
    assert missing.returncode == 2 and "not a knowledge base" in missing.stderr


def test_cache_train_fits_the_similarity_model_from_logged_traffic(tmp_path, cli):
    """`flywheel cache-train` on a home whose gateway logged rated transactions: a model file with a threshold
    chosen on held-out requests; with too little traffic, exit 2 and why."""
    from examples.fraud import generate
    from flywheel.feedback.store import FeedbackStore

    env = {"FLYWHEEL_HOME": str(tmp_path / "home")}
    few = cli("cache-train", "--json", env=env)
    assert few.returncode == 2 and "at least 20 needed" in few.stderr
    store = FeedbackStore(f"sqlite:///{tmp_path / 'home' / 'feedback.db'}")  # the home's store, as the gateway's
    for r in generate(60, seed=5):
        msgs = [{"role": "user", "content": r["text"]}]
        iid = store.log_interaction(workload="fraud", model="fraud", model_version="1", messages=msgs,
                                    response=r["answer"], latency_ms=1.0)  # fmt: skip
        store.add_feedback(iid, 1, None, None)
    out = cli("cache-train", "--json", env=env)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert Path(info["model"]).exists() and 0 < info["threshold"] < 1
    assert info["validation_hit_rates"]["near_miss"] <= 0.01
