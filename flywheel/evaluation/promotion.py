"""Candidate against champion, as the loop's evaluate flow runs it: measure a model, the champion's metrics on
this evaluation (reused only when measured on the same data), then register the candidate, gate it and
promote it if it passes.

    key = eval_key(test.digest, general_text_path, workload.eval)
    champ = champion_metrics(reg, workload, base_path, test_path, general_text_path, home.models)
    cand = measure("candidate", base_path, adapter_dir, test_path, general_text_path, workload)
    out = register_and_gate(reg, workload, run_id, cand, champ, dataset_digests, key)
    out["promoted"], out["decision"]["reasons"]

With no champion yet, the base model is registered as version 1 and becomes it, so there is always a
champion to compare with and to roll back to.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flywheel.core.dataset import read_dataset
from flywheel.evaluation.config import EvalConfig
from flywheel.evaluation.gate import decide
from flywheel.registry.mlflow_registry import Registry, code_revision, config_hash


def eval_key(test_digest: str, general_text_path: str | Path, cfg: EvalConfig) -> str:
    """What the metrics were measured on: a champion's stored metrics are reused only for the same key."""
    text_digest = hashlib.sha256(Path(general_text_path).read_bytes()).hexdigest()[:12]
    return f"{test_digest[:12]}-{text_digest}-{cfg.max_examples}-{cfg.perplexity_max_tokens}"


def measure(
    label: str, base_path: str, adapter_dir: str | None, test_path: str, general_text_path: str, workload, log=None
) -> dict:
    """One model (base + optional adapter) on the held-out split and the general text: its metrics."""
    from flywheel.evaluation.metrics import evaluate_model
    from flywheel.training.data import labelled_rows

    rows = labelled_rows(test_path)
    text = Path(general_text_path).read_text()
    res = evaluate_model(base_path, adapter_dir, rows, text, workload.labels, workload.system_prompt, workload.eval)
    if log:
        log(
            f"{label}: accuracy {res.accuracy:.3f} on {res.n_examples} examples, perplexity {res.perplexity:.2f} "
            f"({res.seconds:.0f}s)"
        )
    return res.metrics()


def _store_metrics(reg: Registry, workload: str, version: str, metrics: dict, key: str) -> None:
    reg.set_tag(workload, version, "metrics", json.dumps(metrics))
    reg.set_tag(workload, version, "eval_key", key)


def champion_metrics(
    reg: Registry, workload, base_path: str, test_path: str, general_text_path: str, models_dir: str | Path, log=None
) -> dict:
    """The champion's version, kind and metrics on this test set (plus ``eval_key``): the stored ones if they
    were measured on the same data, else measured now and stored. With no champion, the base model is
    measured, registered as version 1 and becomes the champion."""
    key = eval_key(read_dataset(test_path).digest, general_text_path, workload.eval)
    ref = reg.champion(workload.name)
    if ref is None:
        metrics = measure("base", base_path, None, test_path, general_text_path, workload, log)
        base = reg.register_base(workload.name, workload.sft.base_model, metrics)
        _store_metrics(reg, workload.name, base.version, metrics, key)
        return {**reg.version(workload.name, base.version).as_dict(), "eval_key": key}
    if ref.tags.get("eval_key") == key and ref.metrics:
        return {**ref.as_dict(), "eval_key": key}
    adapter = None if ref.is_base else str(reg.local_path(ref, Path(models_dir) / "registry"))
    metrics = measure(f"champion v{ref.version}", base_path, adapter, test_path, general_text_path, workload, log)
    _store_metrics(reg, workload.name, ref.version, metrics, key)
    return {**ref.as_dict(), "metrics": metrics, "eval_key": key}


def register_and_gate(
    reg: Registry, workload, run_id: str, candidate: dict, champion: dict, datasets: dict, key: str
) -> dict:
    """Register the candidate as a new version (alias ``challenger``), tagged with its metrics, data digests,
    config hash and code revision; log both sides and the verdict into the cycle's run; promote it if the gate
    passes. Returns ``version``, ``decision``, ``promoted`` and ``champion_version`` (what is served now)."""
    decision = decide(candidate, champion["metrics"], workload.gate)
    tags = {
        "base_model": workload.sft.base_model,
        "metrics": json.dumps(candidate),
        "eval_key": key,
        "config_hash": config_hash(workload.model_dump()),
        "code_revision": code_revision(),
        "gate": "passed" if decision.promote else "refused",
        "compared_to": champion["version"],
        **{f"data.{k}": v for k, v in datasets.items()},
    }
    ref = reg.register_candidate(workload.name, run_id, "adapter", tags)
    with reg.mlflow.start_run(run_id=run_id):
        reg.mlflow.log_metrics({f"candidate_{k}": v for k, v in candidate.items()})
        reg.mlflow.log_metrics({f"champion_{k}": v for k, v in champion["metrics"].items()})
        reg.mlflow.log_metric("gate_passed", 1.0 if decision.promote else 0.0)
        reg.mlflow.log_dict(decision.as_dict(), "gate.json")
        reg.mlflow.set_tags({"model_version": ref.version, "gate": tags["gate"]})
    out = {
        "version": ref.version,
        "decision": decision.as_dict(),
        "promoted": False,
        "champion_version": champion["version"],
    }
    if decision.promote:
        reg.promote(workload.name, ref.version)
        out.update(promoted=True, champion_version=ref.version)
    return out
