"""Tasks: prepare the base model, build the SFT dataset (curated rows + feedback), open the cycle's MLflow run,
run a training recipe and log it to MLflow."""

from __future__ import annotations

from prefect import task

from flywheel.core.dataset import read_dataset
from flywheel.core.errors import is_bad_input
from flywheel.core.workload import WorkloadConfig
from flywheel.feedback.store import FeedbackStore
from flywheel.training.config import TrainConfig
from flywheel.training.data import build_sft_dataset as sft_dataset
from flywheel.training.data import lineage
from flywheel.training.models import resolve_base_model
from flywheel.training.run import launch, output_dir, resumable
from flywheel.training.sft import train_sft
from tasks.common import home, logger, registry


@task(name="prepare-base-model", retries=1, tags=["training"])
def prepare_base_model(base_model: str) -> str:
    """Resolve (and on first use convert) the base model into the home's model cache."""
    return str(resolve_base_model(base_model, home().models))


@task(name="build-sft-dataset", tags=["training"])
def build_sft_dataset(
    curated_path: str, workload: WorkloadConfig, include_feedback: bool, heldout_path: str | None = None
) -> dict:
    """Curated labelled rows (+ rated production answers), minus any row that is an exact or near-duplicate
    of a held-out row (leakage: the evaluation must not score what training has seen)."""
    log = logger()
    h = home()
    feedback = FeedbackStore(h.database_url()).training_rows(workload.name) if include_feedback else []
    ds, counts = sft_dataset(
        read_dataset(curated_path),
        h.datasets,
        f"{workload.name}-sft",
        workload.labels,
        workload.curation.fuzzy_dedup,
        feedback,
        read_dataset(heldout_path) if heldout_path else None,
        config={"include_feedback": include_feedback, "leakage_checked": bool(heldout_path)},
    )
    if leak := counts.pop("leak_example"):
        log.warning(
            "SFT dataset: %s rows duplicate held-out rows and are left out, e.g. %s ~ %s (%.2f)",
            counts["dropped_leakage"],
            leak["id"],
            leak["duplicate_of"],
            leak["similarity"],
        )
    log.info(
        "SFT dataset: %s curated rows + %s from feedback - %s leaking = %s",
        counts["from_curated"],
        counts["from_feedback"],
        counts["dropped_leakage"],
        ds.rows,
    )
    return {**ds.summary(), **counts}


@task(name="start-training-run", tags=["tracking"])
def start_training_run(workload: WorkloadConfig, trigger: str | None, datasets: dict) -> str:
    """Open the cycle's MLflow run (experiment ``flywheel-<workload>``) with its datasets; returns its id."""
    return registry().open_cycle_run(
        workload.name, trigger, {"workload": workload.name, "curation": workload.curation.model_dump_json()}, datasets
    )


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry crashes (a killed worker, CUDA OOM...) from the last checkpoint; bad config or data fail at once."""
    try:
        state.result()
    except Exception as e:  # noqa: BLE001 - the retry rule looks at every failure
        return not is_bad_input(e)
    return True


def _attempt_resumes(out_dir) -> bool:
    """On a Prefect retry, continue from the last checkpoint this task wrote (at most one interval lost)."""
    from prefect.runtime import task_run

    return (task_run.run_count or 1) > 1 and resumable(out_dir)


def _progress(log, max_steps: int, tps_by_step: list):
    every = max(1, max_steps // 8)

    def progress(step: int, loss: float, tps: float) -> None:
        tps_by_step.append((step, tps))
        if step % every == 0 or step == max_steps:
            log.info("step %s/%s loss %.3f (%.0f tokens/s)", step, max_steps, loss, tps)

    return progress


@task(
    name="train-sft",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_unless_bad_input,
    tags=["training"],
    timeout_seconds=6 * 3600,
)
def train_adapter(sft_dataset_path: str, workload: WorkloadConfig, run_id: str) -> dict:
    """The flywheel loop's SFT step: the workload's recipe on the SFT Dataset, into the cycle's MLflow run."""
    log = logger()
    h = home()
    ds = read_dataset(sft_dataset_path)
    rows = ds.to_pandas().to_dict("records")
    out_dir = h.runs / run_id
    cfg = workload.sft
    log.info("training %s (%s) on %s rows for %s steps", cfg.base_model, cfg.method, len(rows), cfg.max_steps)
    tps: list = []
    result = train_sft(
        rows,
        cfg,
        workload.system_prompt,
        out_dir,
        h.models,
        on_step=_progress(log, cfg.max_steps, tps),
        resume=_attempt_resumes(out_dir),
        log=log.info,
    )
    reg = registry(h)
    with reg.mlflow.start_run(run_id=run_id):
        reg.log_training(
            result, {f"sft.{k}": v for k, v in cfg.model_dump().items()}, [(ds.path, ds.name, ds.digest)], tps
        )
    log.info(
        "trained in %.0fs, loss %.3f -> %.3f, %.0f tokens/s, MFU %.2f%%",
        result.seconds,
        result.losses[0] if result.losses else float("nan"),
        result.final_loss,
        result.tokens_per_second,
        100 * result.mfu,
    )
    return result.as_dict()


@task(
    name="train-model",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_unless_bad_input,
    tags=["training"],
    timeout_seconds=24 * 3600,
)
def train_model(cfg: TrainConfig, resume: bool = False, nproc: int = 1) -> dict:
    """``flywheel train --config``: one recipe (SFT or DPO, any method) in its own MLflow run
    (experiment ``flywheel-training``); a retry resumes from the last checkpoint. ``nproc`` > 1 launches
    the same recipe under torchrun (one process per GPU, or gloo processes on CPU)."""
    log = logger()
    h = home()
    rcfg = cfg.recipe_config()
    tps: list = []
    resume = resume or _attempt_resumes(output_dir(cfg, h))
    result = launch(cfg, h, resume, nproc, _progress(log, rcfg.max_steps, tps), log=log.info)
    reg = registry(h)
    with reg.start_run(
        "training", run_name=cfg.name, tags={"flywheel.dataset": cfg.dataset}
    ) as run:  # flywheel-training
        reg.log_training(
            result,
            {
                "recipe": cfg.recipe,
                "dataset": cfg.dataset,
                **{f"{cfg.recipe}.{k}": v for k, v in rcfg.model_dump().items()},
            },
            lineage(cfg.dataset),
            tps,
        )
        run_id = run.info.run_id
    log.info(
        "%s %s: loss %.3f -> %.3f, %.0f tokens/s, MFU %.2f%% (MLflow run %s)",
        cfg.recipe,
        rcfg.method,
        result.losses[0],
        result.final_loss,
        result.tokens_per_second,
        100 * result.mfu,
        run_id,
    )
    return {**result.as_dict(), "run_id": run_id}
