"""Flow ``evaluate``: candidate vs champion on the same held-out data -> gate -> register -> promote.

    flywheel evaluate --workload configs/workloads/fraud.yaml --run-id RUN [--json]
"""

from __future__ import annotations

from prefect import flow, task

from flywheel.core.config import WorkloadConfig
from flywheel.core.dataset import read_dataset
from tasks.common import home, registry
from tasks.evaluate import eval_key, evaluate as evaluate_model
from tasks.registry import champion, gate_and_register, register_base, store_metrics


@task(name="champion-metrics", tags=["evaluation"])
def champion_metrics(workload: WorkloadConfig, base_path: str, test_path: str, general_path: str) -> dict:
    """The champion's metrics on this test set: stored ones if measured on the same data, else measured now.
    With no champion yet, the base model is registered as version 1 and becomes it."""
    key = eval_key(read_dataset(test_path).digest, general_path, workload)
    ref = champion.fn(workload)
    if ref is None:
        metrics = evaluate_model.fn("base", base_path, None, test_path, general_path, workload)
        return {**register_base.fn(workload, metrics, key), "eval_key": key}
    if ref.get("eval_key") == key and ref["metrics"]:
        return ref
    adapter = None
    if ref["kind"] != "base":
        reg = registry()
        adapter = str(reg.local_path(reg.version(workload.name, ref["version"]), home().models / "registry"))
    metrics = evaluate_model.fn(f"champion v{ref['version']}", base_path, adapter, test_path, general_path, workload)
    store_metrics.fn(workload, ref["version"], metrics, key)
    return {**ref, "metrics": metrics, "eval_key": key}


@task(name="end-training-run", tags=["tracking"])
def end_run(run_id: str, status: str = "FINISHED") -> None:
    registry().client.set_terminated(run_id, status)


@flow(name="evaluate", log_prints=True)
def evaluate(workload: WorkloadConfig, run_id: str, adapter_dir: str, base_path: str, test_path: str,
             general_text_path: str, dataset_digests: dict | None = None) -> dict:
    try:
        champ = champion_metrics(workload, base_path, test_path, general_text_path)
        cand = evaluate_model("candidate", base_path, adapter_dir, test_path, general_text_path, workload)
        gate = gate_and_register(workload, run_id, cand, champ, dataset_digests or {}, champ["eval_key"])
    except BaseException:
        end_run(run_id, "FAILED")
        raise
    end_run(run_id)
    return {"champion": {"version": champ["version"], "metrics": champ["metrics"]},
            "candidate": {"version": gate["version"], "metrics": cand}, **gate}
