"""Flow ``evaluate``: candidate vs champion on the same held-out data -> gate -> register -> promote.

flywheel evaluate --workload configs/workloads/fraud.yaml --run-id RUN --adapter DIR --test DIR [--json]
"""

from __future__ import annotations

from prefect import flow

from flywheel.core.workload import WorkloadConfig
from tasks.evaluate import champion_metrics
from tasks.evaluate import evaluate as evaluate_model
from tasks.registry import end_run, gate_and_register


@flow(name="evaluate", log_prints=True)
def evaluate(
    workload: WorkloadConfig,
    run_id: str,
    adapter_dir: str,
    base_path: str,
    test_path: str,
    general_text_path: str,
    dataset_digests: dict | None = None,
) -> dict:
    try:
        champ = champion_metrics(workload, base_path, test_path, general_text_path)
        cand = evaluate_model("candidate", base_path, adapter_dir, test_path, general_text_path, workload)
        gate = gate_and_register(workload, run_id, cand, champ, dataset_digests or {}, champ["eval_key"])
    except BaseException:
        end_run(run_id, "FAILED")
        raise
    end_run(run_id)
    return {
        "champion": {"version": champ["version"], "metrics": champ["metrics"]},
        "candidate": {"version": gate["version"], "metrics": cand},
        **gate,
    }
