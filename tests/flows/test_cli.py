"""The `flywheel` CLI: help for every stage, --json summaries, exit codes 0/2/1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.test_house_rules import ROOT

STAGES = ["server", "generate", "ingest", "ingest-deploy", "watch", "curate", "curate-classifier", "train", "evaluate", "run", "deploy",
          "retrain", "rollback", "serve", "demo"]


def flywheel(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_help_lists_every_stage_and_each_has_help_and_json():
    out = flywheel("--help")
    assert out.returncode == 0
    for stage in STAGES:
        assert stage in out.stdout
    for stage in STAGES:
        sub = ["server", "start"] if stage == "server" else [stage]
        h = flywheel(*sub, "--help")
        assert h.returncode == 0, h.stderr
        if stage not in ("serve", "watch"):  # long-running processes have no summary to print
            assert "--json" in h.stdout, stage


def test_unknown_config_key_exits_2_naming_the_key(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs/workloads/fraud.yaml").read_text())
    cfg["curation"]["min_wrods"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = flywheel("generate", "--workload", str(bad), "--out", str(tmp_path / "d"), env={"FLYWHEEL_HOME": str(tmp_path)})
    assert out.returncode == 2 and "curation.min_wrods: unknown key" in out.stderr


def test_flows_refuse_to_run_without_a_prefect_api(tmp_path):
    env = {"FLYWHEEL_HOME": str(tmp_path), "PREFECT_API_URL": ""}
    out = flywheel("ingest", str(tmp_path), "--json", env=env)
    assert out.returncode == 2 and "no Prefect API" in out.stderr and out.stdout == ""


def test_bad_usage_exits_2(tmp_path):
    assert flywheel("ingest").returncode == 2  # missing PATH
    assert flywheel("no-such-stage").returncode == 2
    env = {"FLYWHEEL_HOME": str(tmp_path), "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # never contacted
    out = flywheel("evaluate", "--run-id", "r", "--adapter", str(tmp_path), "--test", str(tmp_path), env=env)
    assert out.returncode == 2 and "--test must be a Dataset folder" in out.stderr
    out = flywheel("train", "--dataset", str(tmp_path), env=env)
    assert out.returncode == 2 and "not a dataset" in out.stderr


def test_generate_then_ingest_json_through_the_api(prefect_api, tmp_path):
    from prefect.settings import PREFECT_API_URL

    env = {"FLYWHEEL_HOME": str(tmp_path / "home"), "PREFECT_API_URL": PREFECT_API_URL.value(),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    gen = flywheel("generate", "--json", "--out", str(tmp_path / "data"), env=env)
    assert gen.returncode == 0, gen.stderr
    files = json.loads(gen.stdout)
    assert set(files) == {"train", "test", "documents", "general_text"}
    out = flywheel("ingest", files["documents"], files["train"], "--name", "mixed", "--json", env=env)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)  # stdout is the JSON summary alone
    assert res["rows"] == 600 + 5 and res["counts"]["dropped_corrupt_pdf"] == 1
    assert [q["reason"] for q in res["quarantine"]] == ["corrupt_pdf"]
    assert (tmp_path / "home" / "datasets" / "mixed").is_dir()
    cur = flywheel("curate", res["path"], "--name", "mixed-curated", "--json", env=env)
    assert cur.returncode == 0, cur.stderr
    c = json.loads(cur.stdout)
    assert c["counts"]["total"] == 605 and c["rows"] == c["counts"]["kept"] > 500


def test_train_config_dpo_from_jsonl_logs_mlflow_and_refuses_bad_data(prefect_api, tiny_model, tmp_path):
    """`flywheel train --config` end to end on the tiny model: DPO with UniPELT, an MLflow run with
    per-step loss, tokens/s, MFU and the adapter; a dataset without the DPO columns exits 2 at once."""
    import mlflow
    from prefect.settings import PREFECT_API_URL

    from examples.fraud import generate

    rows = [{"prompt": r["text"], "chosen": "LEGIT: normal", "rejected": "FRAUD: odd"} for r in generate(16, seed=2)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp_path / "dpo.yaml"
    cfg.write_text(json.dumps({"name": "dpo-test", "recipe": "dpo", "dataset": str(data), "dpo": {
        "base_model": str(tiny_model), "method": "unipelt", "max_steps": 6, "batch_size": 4, "learning_rate": 0.01,
        "max_seq_length": 128, "checkpoint_every": 3, "lora_r": 4}}))
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    env = {"FLYWHEEL_HOME": str(tmp_path / "home"), "PREFECT_API_URL": PREFECT_API_URL.value(), "MLFLOW_TRACKING_URI": uri}
    out = flywheel("train", "--config", str(cfg), "--json", env=env)
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
    cfg.write_text(json.dumps({"name": "dpo-bad", "recipe": "dpo", "dataset": str(bad), "dpo": {"base_model": str(tiny_model)}}))
    out = flywheel("train", "--config", str(cfg), env=env)
    assert out.returncode == 2 and "missing column(s) prompt, chosen, rejected" in out.stderr
