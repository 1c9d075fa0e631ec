"""Tasks: fix the golden set, run the evaluation suite (base, base + ICL, champion, candidate on the golden set,
with intervals and the gate's decision), and publish its report (Prefect markdown artifact, MLflow figure,
table and report)."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from blocks.endpoints import resolve_endpoint
from flywheel.core.workload import WorkloadConfig
from flywheel.evaluation.promotion import choose_golden_set, evaluate_candidate
from flywheel.evaluation.report import examples_table, loop_markdown, loop_plot, markdown, plot
from flywheel.evaluation.suite import Suite
from tasks.common import home, logger, registry


@task(name="golden-set", tags=["evaluation"])
def golden_set(workload: WorkloadConfig, test: dict) -> dict:
    """The workload's frozen golden set: the first test Dataset it was judged on (``eval.golden: frozen``), or
    this cycle's (``latest``, or no golden set yet). A changed test input is logged, not silently used."""
    golden, note = choose_golden_set(registry(), workload, test)
    if note:
        logger().warning(note)
    return golden


# No retries: inside the evaluate flow's transaction, a failed attempt already rolls the registration back.
@task(name="evaluate-models", tags=["evaluation"])
def evaluate_models(
    workload: WorkloadConfig,
    base_path: str,
    candidate_version: str | None,
    adapter_dir: str | None,
    golden_path: str,
    general_text_path: str,
    icl_pool_path: str | None = None,
) -> dict:
    """The four rows, the paired comparisons and the gate's decision (outcomes cached under the home)."""
    log, h = logger(), home()
    reg = registry(h)
    judge = workload.eval.judge
    if judge.enabled and (judge.base_url or "").startswith("block:"):  # an OpenAIEndpoint block by name
        url, model, key = resolve_endpoint(judge.base_url)
        judge = judge.model_copy(update={"base_url": f"{url}/v1", "api_key": key or judge.api_key})
        workload = workload.model_copy(update={"eval": workload.eval.model_copy(update={"judge": judge})})
    suite = Suite(workload, base_path, golden_path, general_text_path, h.root / "evaluations", icl_pool_path, log.info)
    cand = reg.version(workload.name, candidate_version) if candidate_version else None
    return evaluate_candidate(reg, suite, workload, cand, adapter_dir, h.models, log.info)


@task(name="publish-report", tags=["evaluation"])
def publish_report(result: dict, run_id: str | None, leakage: dict | None = None) -> dict:
    """Markdown + PNG into ``<home>/runs/<run>/evaluation/`` (or ``<home>/evaluations/reports``), a Prefect
    markdown artifact, and into the MLflow run: metrics per row with intervals, report, plot, per-example table."""
    h = home()
    result = {**result, "leakage": leakage}
    md = markdown(result)
    folder = (h.runs / run_id / "evaluation") if run_id else (h.root / "evaluations" / "reports" / result["key"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(md)
    png = plot(result, folder / "report.png")
    key = f"{result['workload']}-evaluation".lower()
    create_markdown_artifact(md + f"\n\nPlot: `{png}`\n", key=key, description="Flywheel evaluation report")
    if run_id:
        registry(h).log_evaluation(run_id, result, md, str(png), examples_table(result))
    return {"markdown": str(folder / "report.md"), "plot": str(png)}


@task(name="publish-loop-report", tags=["evaluation"])
def publish_loop_report(workload: WorkloadConfig, cycles: list[dict]) -> dict:
    """The loop's report (base and every cycle on the golden set): Markdown + PNG under
    ``<home>/runs/loop-report``, a Prefect markdown artifact, and an MLflow run ``loop-report`` of the
    workload's experiment with both."""
    h = home()
    folder = h.runs / "loop-report"
    folder.mkdir(parents=True, exist_ok=True)
    md = loop_markdown(workload.name, cycles, workload.labels)
    (folder / "report.md").write_text(md)
    png = loop_plot(workload.name, cycles, workload.labels, folder / "report.png")
    create_markdown_artifact(md, key=f"{workload.name}-loop-report", description="The flywheel loop, cycle by cycle")
    reg = registry(h)
    with reg.start_run(workload.name, "loop-report", tags={"flywheel.kind": "loop-report"}):
        reg.mlflow.log_text(md, "loop/report.md")
        reg.mlflow.log_artifact(str(png), "loop")
    return {"markdown": str(folder / "report.md"), "plot": str(png)}


@task(name="champion-inputs", tags=["evaluation"])
def champion_inputs(workload: WorkloadConfig) -> dict:
    """What the weekly evaluation judges: the champion's version, the base model folder, the frozen golden set,
    the general text and the curated set the champion was trained on (its ICL examples)."""
    from flywheel.core.errors import NotFound
    from flywheel.registry.lineage import dataset_index
    from flywheel.training.models import resolve_base_model

    h, reg = home(), registry()
    ref = reg.champion(workload.name)
    golden = reg.golden_set(workload.name)
    if ref is None or golden is None:
        raise NotFound(f"workload {workload.name} has no champion or golden set yet: run `flywheel run` first")
    inputs = workload.inputs.resolved(h.root, workload.name, require=("general_text",))
    index = dataset_index(h.datasets)
    pool = (index.get(ref.tags.get("data.curated", "")) or {}).get("path")
    return {
        "version": ref.version,
        "base_path": str(resolve_base_model(workload.sft.base_model, h.models)),
        "golden_path": golden["path"],
        "general_text_path": inputs.general_text,
        "icl_pool_path": pool,
    }
