"""Tasks: build the SFT dataset (curated rows + feedback), run a training recipe, log it to MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from prefect import task

from flywheel.core.config import TrainConfig, WorkloadConfig
from flywheel.core.dataset import read_dataset, write_dataset
from flywheel.feedback.store import FeedbackStore
from flywheel.training.data import SFT_COLUMNS, labelled_rows
from flywheel.training.sft import train_sft
from tasks.common import home, logger, registry


@task(name="build-sft-dataset", tags=["training"])
def build_sft_dataset(curated_path: str, workload: WorkloadConfig, include_feedback: bool,
                      heldout_path: str | None = None) -> dict:
    """Curated labelled rows (+ rated production answers), minus any row that is an exact or near-duplicate
    of a held-out row (leakage: the evaluation must not score what training has seen)."""
    log = logger()
    h = home()
    rows = labelled_rows(curated_path)
    n_curated = len(rows)
    fb_rows: list[dict] = []
    if include_feedback:
        fb_rows = [r for r in FeedbackStore(h.database_url()).training_rows(workload.name) if r["label"] in workload.labels]
        rows += [{k: r[k] for k in SFT_COLUMNS} for r in fb_rows]
    frame = pd.DataFrame(rows, columns=SFT_COLUMNS)
    leaked = 0
    if heldout_path and len(frame):
        from flywheel.curation.split import leakage

        held = read_dataset(heldout_path).to_pandas()[["id", "text"]]
        both = pd.concat([frame[["id", "text"]], held], ignore_index=True)
        split = pd.Series(["train"] * len(frame) + ["heldout"] * len(held))
        leaks = leakage(both, split, workload.curation.fuzzy_dedup)
        leaked = len(leaks)
        if leaked:
            log.warning("SFT dataset: %s rows duplicate held-out rows and are left out, e.g. %s ~ %s (%.2f)", leaked,
                        leaks["id"].iloc[0], leaks["duplicate_of"].iloc[0], leaks["similarity"].iloc[0])
            frame = frame.drop(index=leaks["pos"].to_numpy()).reset_index(drop=True)
    src = read_dataset(curated_path)
    parents = [src.digest] + ([read_dataset(heldout_path).digest] if heldout_path else [])
    ds = write_dataset(frame, h.datasets, f"{workload.name}-sft", parents=parents,
                       config={"include_feedback": include_feedback, "leakage_checked": bool(heldout_path)})
    log.info("SFT dataset: %s curated rows + %s from feedback - %s leaking = %s", n_curated, len(fb_rows), leaked, ds.rows)
    return {**ds.summary(), "from_curated": n_curated, "from_feedback": len(fb_rows), "dropped_leakage": leaked}


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry crashes (a killed worker, CUDA OOM...) from the last checkpoint; bad config or data fail at once."""
    from flywheel.core.config import ConfigError
    from flywheel.training.data import DataError

    try:
        state.result()
    except (ConfigError, DataError, FileExistsError):
        return False
    except Exception:
        return True
    return True


def _attempt_resumes(out_dir) -> bool:
    """On a Prefect retry, continue from the last checkpoint this task wrote (at most one interval lost)."""
    from prefect.runtime import task_run

    from flywheel.training.recipe import Checkpoints

    return (task_run.run_count or 1) > 1 and Checkpoints(out_dir / "checkpoints", 1).latest() is not None


def log_training(reg, result, params: dict, datasets: list[tuple[str, str, str]], tps_by_step: list[tuple[int, float]]):
    """The MLflow record of one training: params, per-step loss and tokens/s, throughput/MFU, inputs, adapter."""
    reg.mlflow.log_params(params)
    reg.mlflow.set_tags({"flywheel.base_model": result.base_model, "flywheel.base_model_path": result.base_model_path,
                         "flywheel.method": result.method, "flywheel.recipe": result.recipe})
    for path, name, digest in datasets:
        reg.log_dataset(path, name, digest, context="training")
    for step, loss in enumerate(result.losses, 1):
        reg.mlflow.log_metric("train_loss", loss, step=step)
    for step, tps in tps_by_step:
        reg.mlflow.log_metric("tokens_per_second", tps, step=step)
    reg.mlflow.log_metrics({"train_tokens_per_second": result.tokens_per_second, "train_seconds": result.seconds,
                            "train_tokens": result.tokens, "trainable_params": result.trainable_params,
                            "total_params": result.total_params, "mfu": result.mfu, "flops_per_token": result.flops_per_token,
                            **{f"data.{k}": v for k, v in result.data_counts.items() if isinstance(v, (int, float))}})
    reg.mlflow.log_artifacts(result.adapter_dir, artifact_path="adapter")


def _progress(log, max_steps: int, tps_by_step: list):
    every = max(1, max_steps // 8)

    def progress(step: int, loss: float, tps: float) -> None:
        tps_by_step.append((step, tps))
        if step % every == 0 or step == max_steps:
            log.info("step %s/%s loss %.3f (%.0f tokens/s)", step, max_steps, loss, tps)
    return progress


@task(name="train-sft", retries=1, retry_delay_seconds=5, retry_condition_fn=_retry_unless_bad_input, tags=["training"],
      timeout_seconds=6 * 3600)
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
    result = train_sft(rows, cfg, workload.system_prompt, out_dir, h.models, on_step=_progress(log, cfg.max_steps, tps),
                       resume=_attempt_resumes(out_dir), log=log.info)
    reg = registry(h)
    with reg.mlflow.start_run(run_id=run_id):
        log_training(reg, result, {f"sft.{k}": v for k, v in cfg.model_dump().items()}, [(ds.path, ds.name, ds.digest)], tps)
    log.info("trained in %.0fs, loss %.3f -> %.3f, %.0f tokens/s, MFU %.2f%%", result.seconds,
             result.losses[0] if result.losses else float("nan"), result.final_loss, result.tokens_per_second,
             100 * result.mfu)
    return result.as_dict()


@task(name="train-model", retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_unless_bad_input, tags=["training"],
      timeout_seconds=24 * 3600)
def train_model(cfg: TrainConfig, resume: bool = False, nproc: int = 1) -> dict:
    """``flywheel train --config``: one recipe (SFT or DPO, any method) in its own MLflow run
    (experiment ``flywheel-training``); a retry resumes from the last checkpoint. ``nproc`` > 1 launches
    the same recipe under torchrun (one process per GPU, or gloo processes on CPU)."""
    from flywheel.training.recipe import TrainResult
    from flywheel.training.run import output_dir, run_recipe

    log = logger()
    h = home()
    out = output_dir(cfg, h)
    rcfg = cfg.recipe_config()
    tps: list = []
    resume = resume or _attempt_resumes(out)
    if nproc > 1:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train-config.json").write_text(cfg.model_dump_json(indent=2))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "flywheel.training.run", "--config", str(out / "train-config.json")] + (["--resume"] if resume else [])
        log.info("launching %s", " ".join(cmd))
        done = subprocess.run(cmd, env={**os.environ, "FLYWHEEL_HOME": str(h.root)})
        if done.returncode:
            raise RuntimeError(f"torchrun exited with {done.returncode}")
        result = TrainResult(**json.loads((out / "result.json").read_text()))
    else:
        result = run_recipe(cfg, h, resume, _progress(log, rcfg.max_steps, tps), log=log.info)
    reg = registry(h)
    datasets = []
    if not cfg.dataset.startswith("feedback:") and Path(cfg.dataset).is_dir():
        ds = read_dataset(cfg.dataset)
        datasets.append((ds.path, ds.name, ds.digest))
    with reg.start_run("training", run_name=cfg.name, tags={"flywheel.dataset": cfg.dataset}) as run:  # flywheel-training
        log_training(reg, result, {"recipe": cfg.recipe, "dataset": cfg.dataset,
                                   **{f"{cfg.recipe}.{k}": v for k, v in rcfg.model_dump().items()}}, datasets, tps)
        run_id = run.info.run_id
    log.info("%s %s: loss %.3f -> %.3f, %.0f tokens/s, MFU %.2f%% (MLflow run %s)", cfg.recipe, rcfg.method,
             result.losses[0], result.final_loss, result.tokens_per_second, 100 * result.mfu, run_id)
    return {**result.as_dict(), "run_id": run_id}
