"""Tasks: register the base and candidates in MLflow, gate, promote, roll back; emit model events."""

from __future__ import annotations

import json

from prefect import task

from flywheel.core.config import WorkloadConfig
from flywheel.evaluation.gate import decide
from flywheel.registry.mlflow_registry import code_revision, config_hash
from tasks.common import home, logger, registry
from tasks.events import emit


@task(name="register-base-model", tags=["registry"])
def register_base(workload: WorkloadConfig, metrics: dict, key: str) -> dict:
    reg = registry()
    ref = reg.register_base(workload.name, workload.sft.base_model, metrics)
    reg.set_tag(workload.name, ref.version, "metrics", json.dumps(metrics))
    reg.set_tag(workload.name, ref.version, "eval_key", key)
    return reg.version(workload.name, ref.version).as_dict()


@task(name="champion-model", tags=["registry"])
def champion(workload: WorkloadConfig) -> dict | None:
    ref = registry().champion(workload.name)
    return None if ref is None else {**ref.as_dict(), "eval_key": ref.tags.get("eval_key"),
                                     "base_model": ref.tags.get("base_model")}


@task(name="store-champion-metrics", tags=["registry"])
def store_metrics(workload: WorkloadConfig, version: str, metrics: dict, key: str) -> None:
    reg = registry()
    reg.set_tag(workload.name, version, "metrics", json.dumps(metrics))
    reg.set_tag(workload.name, version, "eval_key", key)


@task(name="gate-and-register", tags=["registry"])
def gate_and_register(workload: WorkloadConfig, run_id: str, candidate: dict, champion_ref: dict,
                      datasets: dict, key: str) -> dict:
    """Register the candidate as a new version (alias challenger); promote it if the gate passes."""
    log = logger()
    reg = registry()
    decision = decide(candidate, champion_ref["metrics"], workload.gate)
    tags = {
        "base_model": workload.sft.base_model,
        "metrics": json.dumps(candidate),
        "eval_key": key,
        "config_hash": config_hash(workload.model_dump()),
        "code_revision": code_revision(),
        "gate": "passed" if decision.promote else "refused",
        "compared_to": champion_ref["version"],
        **{f"data.{k}": v for k, v in datasets.items()},
    }
    ref = reg.register_candidate(workload.name, run_id, "adapter", tags)
    with reg.mlflow.start_run(run_id=run_id):
        reg.mlflow.log_metrics({f"candidate_{k}": v for k, v in candidate.items()})
        reg.mlflow.log_metrics({f"champion_{k}": v for k, v in champion_ref["metrics"].items()})
        reg.mlflow.log_metric("gate_passed", 1.0 if decision.promote else 0.0)
        reg.mlflow.log_dict(decision.as_dict(), "gate.json")
        reg.mlflow.set_tags({"model_version": ref.version, "gate": tags["gate"]})
    out = {"version": ref.version, "decision": decision.as_dict(), "promoted": False,
           "champion_version": champion_ref["version"]}
    if decision.promote:
        reg.promote(workload.name, ref.version)
        out.update(promoted=True, champion_version=ref.version)
        emit("flywheel.model.promoted", workload.name, {"version": ref.version, "previous": champion_ref["version"],
                                                        "metrics": candidate})
        log.info("gate passed: %s v%s is the new champion", workload.name, ref.version)
    else:
        log.warning("gate refused v%s: %s; champion stays v%s", ref.version, "; ".join(decision.reasons),
                    champion_ref["version"])
    return out


def rollback(workload: str, to: str | None = None) -> dict:
    """Move the champion back; used by ``flywheel rollback`` (no flow needed for one alias move)."""
    reg = registry(home())
    old, new = reg.rollback(workload, to)
    emit("flywheel.model.rolled_back", workload, {"from": old.version, "to": new.version})
    return {"workload": workload, "from": old.version, "to": new.version}
