"""Tasks: prepare the base model, build the SFT dataset (curated rows + feedback), open the cycle's MLflow run,
run a training recipe and log it to MLflow."""

from __future__ import annotations

from prefect import task

from flywheel.core.dataset import read_dataset
from flywheel.core.errors import is_bad_input
from flywheel.core.workload import WorkloadConfig
from flywheel.feedback.store import FeedbackStore
from flywheel.training.config import TrainConfig
from flywheel.training.continual import continual_sft, cycle_data, dpo_after_sft, start_point
from flywheel.training.data import build_sft_dataset as sft_dataset
from flywheel.training.data import lineage
from flywheel.training.models import resolve_base_model
from flywheel.training.run import launch, output_dir, resumable
from flywheel.training.sft import planned_steps, train_sft
from tasks.common import home, logger, registry


@task(name="prepare-base-model", retries=1, tags=["training"])
def prepare_base_model(base_model: str) -> str:
    """Resolve (and on first use convert) the base model into the home's model cache."""
    return str(resolve_base_model(base_model, home().models))


@task(name="training-start", tags=["training"])
def training_start(workload: WorkloadConfig) -> dict:
    """Where this cycle's training starts: the champion's adapter (``continual.start: champion`` and an adapter
    champion of the same method), else the base model. Returns ``init_adapter`` (a folder or None) and
    ``parent_version``."""
    h = home()
    return start_point(registry(h), workload, h.models)


@task(name="build-sft-dataset", tags=["training"])
def build_sft_dataset(
    curated_path: str,
    workload: WorkloadConfig,
    include_feedback: bool,
    heldout_path: str | None = None,
    watermark: int | None = None,
    start: str = "base",
) -> dict:
    """The cycle's rows (curated rows, or the continual policy's mix with the feedback up to ``watermark``),
    minus any row that is an exact or near-duplicate of a held-out row (leakage: the evaluation must not
    score what training has seen)."""
    log = logger()
    h = home()
    rows, plan = cycle_data(FeedbackStore(h.database_url()), workload, curated_path, include_feedback, watermark, start)
    curated = read_dataset(curated_path)
    ds, counts = sft_dataset(
        rows,
        h.datasets,
        f"{workload.name}-sft",
        workload.labels,
        workload.curation.fuzzy_dedup,
        read_dataset(heldout_path) if heldout_path else None,
        parents=[curated.digest],
        config={"include_feedback": include_feedback, "leakage_checked": bool(heldout_path), **plan},
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
        "SFT dataset (start: %s): %s curated rows + %s from feedback (%s new up to watermark %s, %s replayed) "
        "- %s leaking = %s",
        plan["start"],
        plan["from_curated"],
        plan["from_feedback"],
        plan["new_feedback"],
        plan["watermark"],
        plan["replay_rows"],
        counts["dropped_leakage"],
        ds.rows,
    )
    return {**ds.summary(), **plan, **counts}


@task(name="mark-feedback-consumed", tags=["training"])
def mark_feedback_consumed(workload: WorkloadConfig, sft: dict, run_id: str) -> None:
    """The cycle is done: its new feedback slice is consumed (the next retrain's new slice starts after it)."""
    if sft.get("watermark") is not None and sft["watermark"] > (sft.get("after") or 0):
        FeedbackStore(home().database_url()).mark_consumed(
            workload.name, sft["watermark"], run_id, sft.get("new_feedback", 0)
        )


@task(name="start-training-run", tags=["tracking"])
def start_training_run(
    workload: WorkloadConfig, trigger: str | None, datasets: dict, resume_run_id: str | None = None
) -> str:
    """Open the cycle's MLflow run (experiment ``flywheel-<workload>``) with its datasets, tagged with the Prefect
    flow run it belongs to (the outermost: the retrain); returns its id. ``resume_run_id``: a crashed retrain's
    run, continued instead (its datasets are logged already)."""
    if resume_run_id:
        return resume_run_id
    from prefect.runtime import flow_run

    return registry().open_cycle_run(
        workload.name,
        trigger,
        {"workload": workload.name, "curation": workload.curation.model_dump_json()},
        datasets,
        flow_run=flow_run.root_flow_run_id,
    )


@task(name="find-crashed-training", tags=["tracking"])
def crashed_training(workload: WorkloadConfig, flow_run: str, sft: dict) -> str | None:
    """The MLflow run (and so the checkpoints) that the crashed retrain ``flow_run`` trained in, when it trained on
    the very Dataset this rerun built (same digest); None: start afresh (with the reason logged)."""
    log = logger()
    found = registry().cycle_run_of(workload.name, flow_run)
    if found is None:
        log.info("crashed run %s opened no training run: training starts afresh", flow_run)
        return None
    run_id, tags = found
    if tags.get("flywheel.training_digest") != sft["digest"]:
        log.warning(
            "crashed run %s trained on Dataset %s, this rerun built %s: its checkpoints are not reused",
            flow_run,
            (tags.get("flywheel.training_digest") or "?")[:12],
            sft["digest"][:12],
        )
        registry().client.set_terminated(run_id, status="KILLED")  # not left RUNNING in the MLflow UI
        return None
    if not resumable(home().runs / run_id):
        log.info("crashed run %s left no checkpoint in %s: training starts afresh", flow_run, home().runs / run_id)
        return run_id
    log.info("continuing crashed run %s: MLflow run %s, from its last checkpoint", flow_run, run_id)
    return run_id


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
def train_adapter(
    sft_dataset_path: str, workload: WorkloadConfig, run_id: str, init_adapter: str | None = None, resume: bool = False
) -> dict:
    """The flywheel loop's SFT step: the workload's recipe on the SFT Dataset, into the cycle's MLflow run; a
    warm start (``init_adapter``) trains for the continual policy's epochs and time budget. ``resume``: continue
    from the last checkpoint in the run's folder (a crashed retrain's rerun); a Prefect retry does so too."""
    log = logger()
    h = home()
    ds = read_dataset(sft_dataset_path)
    rows = ds.to_pandas().to_dict("records")
    out_dir = h.runs / run_id
    cfg = continual_sft(workload, init_adapter)
    log.info(
        "training %s (%s, from %s) on %s rows, %s",
        cfg.base_model,
        cfg.method,
        init_adapter or "the base model",
        len(rows),
        f"{cfg.epochs:g} epochs (at most {cfg.max_steps} steps)" if cfg.epochs else f"{cfg.max_steps} steps",
    )
    tps: list = []
    result = train_sft(
        rows,
        cfg,
        workload.system_prompt,
        out_dir,
        h.models,
        on_step=_progress(log, planned_steps(cfg, len(rows)), tps),
        resume=(resume and resumable(out_dir)) or _attempt_resumes(out_dir),
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


@task(name="dpo-from-feedback", tags=["training"])
def dpo_from_feedback(workload: WorkloadConfig, trained: dict, sft_dataset: dict, run_id: str) -> dict:
    """The optional DPO step of a retrain (``continual.dpo_steps``): the new feedback's pairs, from the SFT
    adapter; its adapter becomes the candidate. Logged as a nested MLflow run of the cycle's run."""
    h = home()
    plan = {k: sft_dataset.get(k) for k in ("watermark", "after")}
    res, n = dpo_after_sft(
        FeedbackStore(h.database_url()),
        workload,
        trained["adapter_dir"],
        plan,
        h.runs / run_id,
        h.models,
        logger().info,
    )
    if res is None:
        return trained
    reg = registry(h)
    with reg.mlflow.start_run(run_id=run_id), reg.mlflow.start_run(run_name="dpo-from-feedback", nested=True):
        reg.log_training(res, {f"dpo.{k}": v for k, v in workload.continual.model_dump().items()}, [], [])
    return {**trained, **res.as_dict(), "sft_adapter_dir": trained["adapter_dir"], "dpo_pairs": n}


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
