"""Flows ``evaluate`` (the loop's: register -> evaluate -> gate -> [approval] -> promote, as one transaction),
``evaluate-version`` (a report on a registered version, nothing moves) and ``promote-version`` (gate a
registered version and promote it; ``force`` promotes anyway and says so).

flywheel evaluate --workload configs/workloads/fraud.yaml [--version V | --run-id RUN --adapter DIR] [--json]
flywheel promote VERSION [--force] [--json]
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.transactions import transaction

from flywheel.core.workload import WorkloadConfig
from tasks.evaluate import champion_inputs, evaluate_models, publish_report
from tasks.registry import announce, end_run, promote_candidate, register_candidate


def _summary(result: dict, served: dict | None, report: dict) -> dict:
    rows = result["rows"]
    flat = {n: {k: v["value"] for k, v in r["metrics"].items()} for n, r in rows.items()}
    return {
        "version": result["candidate_version"],
        "champion": {"version": result["champion_version"], "metrics": flat["champion"]},
        "candidate": {"version": result["candidate_version"], "metrics": flat["candidate"]},
        "decision": result["decision"],
        "promoted": bool(served and served["promoted"]),
        "champion_version": served["champion_version"] if served else result["champion_version"],
        "evaluation": {k: result[k] for k in ("key", "golden", "n_examples", "rows", "comparisons")},
        "report": report,
    }


def _wait_for_approval(workload: str, version: str, report_md: str, timeout_s: int) -> dict:
    """``gate.approval: required``: pause the flow run until a person approves or rejects in the Prefect UI
    (a typed form: approve yes/no and a comment); no answer within ``timeout_s`` is a rejection."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run
    from prefect.input import RunInput

    class Approval(RunInput):
        approve: bool
        comment: str = ""

    get_run_logger().info(
        "waiting for a person to approve %s v%s (Prefect UI: resume the run with a decision)", workload, version
    )
    description = f"Approve {workload} v{version} for serving?\n\n{report_md}"
    try:
        answer = pause_flow_run(
            wait_for_input=Approval.with_initial_data(description=description, approve=False), timeout=timeout_s
        )
    except FlowPauseTimeout:
        return {"approve": False, "comment": f"no decision within {timeout_s}s"}
    return {"approve": bool(answer.approve), "comment": answer.comment}


def _how(workload: WorkloadConfig, result: dict, version: str, report: dict) -> tuple[str, str]:
    """gate | approval | rejected | refused, and the person's comment."""
    if not result["decision"]["promote"]:
        return "refused", ""
    if workload.gate.approval != "required":
        return "gate", ""
    with open(report["markdown"]) as f:
        answer = _wait_for_approval(workload.name, version, f.read(), workload.gate.approval_timeout_s)
    return ("approval" if answer["approve"] else "rejected"), answer["comment"]


@flow(name="evaluate", log_prints=True)
def evaluate(
    workload: WorkloadConfig,
    run_id: str,
    adapter_dir: str,
    base_path: str,
    golden_path: str,
    general_text_path: str,
    datasets: dict | None = None,
    icl_pool_path: str | None = None,
    trigger: str | None = None,
    leakage: dict | None = None,
    feedback: dict | None = None,
) -> dict:
    try:
        with transaction():  # a failure anywhere below deletes the new version and restores champion
            version = register_candidate(workload, run_id, datasets or {}, golden_path, trigger, feedback)
            result = evaluate_models(
                workload, base_path, version, adapter_dir, golden_path, general_text_path, icl_pool_path
            )
            report = publish_report(result, run_id, leakage)
            how, note = _how(workload, result, version, report)
            served = promote_candidate(workload, version, result, how, note)
            announce(workload, served)
    except BaseException:
        end_run(run_id, "FAILED")
        raise
    end_run(run_id)
    return _summary(result, served, report)


@flow(name="evaluate-version", log_prints=True)
def evaluate_version(
    workload: WorkloadConfig,
    version: str | None,
    base_path: str,
    golden_path: str,
    general_text_path: str,
    icl_pool_path: str | None = None,
    adapter_dir: str | None = None,
) -> dict:
    """A registered version (or an unregistered adapter folder) against base, ICL and champion; moves nothing."""
    result = evaluate_models(workload, base_path, version, adapter_dir, golden_path, general_text_path, icl_pool_path)
    return _summary(result, None, publish_report(result, None))


@flow(name="promote-version", log_prints=True)
def promote_version(
    workload: WorkloadConfig,
    version: str,
    base_path: str,
    golden_path: str,
    general_text_path: str,
    force: bool = False,
    note: str = "",
    icl_pool_path: str | None = None,
) -> dict:
    with transaction():
        result = evaluate_models(workload, base_path, version, None, golden_path, general_text_path, icl_pool_path)
        report = publish_report(result, None)
        how, comment = _how(workload, result, version, report)
        if how in ("refused", "rejected") and force:
            how, comment = (
                "force",
                note or "promoted by force over the gate: " + "; ".join(result["decision"]["reasons"]),
            )
        served = promote_candidate(workload, version, result, how, comment or note)
        announce(workload, served)
    return _summary(result, served, report)


@flow(name="evaluate-champion", log_prints=True)
def evaluate_champion(workload: str = "fraud", config_path: str | None = None) -> dict:
    """The champion against base, base + ICL on the frozen golden set (deployment ``evaluate-champion/
    weekly-<workload>``, on ``schedules.evaluate_cron``): a report and an MLflow record; nothing moves."""
    from flywheel.core.workload import load_workload

    cfg = load_workload(
        config_path or Path(__file__).resolve().parents[1] / "configs" / "workloads" / f"{workload}.yaml"
    )
    inp = champion_inputs(cfg)
    return evaluate_version(
        cfg, inp["version"], inp["base_path"], inp["golden_path"], inp["general_text_path"], inp["icl_pool_path"]
    )
