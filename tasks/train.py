"""Tasks: build the SFT dataset (curated rows + feedback), train a LoRA adapter, log to MLflow."""

from __future__ import annotations

import pandas as pd
from prefect import task

from flywheel.core.config import WorkloadConfig
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


@task(name="train-sft", retries=1, retry_delay_seconds=5, tags=["training"], timeout_seconds=6 * 3600)
def train_adapter(sft_dataset_path: str, workload: WorkloadConfig, run_id: str) -> dict:
    log = logger()
    h = home()
    ds = read_dataset(sft_dataset_path)
    rows = ds.to_pandas().to_dict("records")
    out_dir = h.runs / run_id
    log.info("training %s LoRA r=%s on %s rows for %s steps", workload.sft.base_model, workload.sft.lora_r, len(rows),
             workload.sft.max_steps)
    every = max(1, workload.sft.max_steps // 8)

    def progress(step: int, loss: float, tps: float) -> None:
        if step % every == 0 or step == workload.sft.max_steps:
            log.info("step %s/%s loss %.3f (%.0f tokens/s)", step, workload.sft.max_steps, loss, tps)

    result = train_sft(rows, workload.sft, workload.system_prompt, out_dir, h.models, on_step=progress)
    reg = registry(h)
    with reg.mlflow.start_run(run_id=run_id):
        reg.mlflow.log_params({f"sft.{k}": v for k, v in workload.sft.model_dump().items()})
        reg.log_dataset(ds.path, ds.name, ds.digest, context="training")
        for step, loss in enumerate(result.losses, 1):
            reg.mlflow.log_metric("train_loss", loss, step=step)
        reg.mlflow.log_metrics({"train_tokens_per_second": result.tokens_per_second, "train_seconds": result.seconds,
                                "train_tokens": result.tokens, "trainable_params": result.trainable_params})
        reg.mlflow.log_artifacts(result.adapter_dir, artifact_path="adapter")
    log.info("trained in %.0fs, loss %.3f -> %.3f, %.0f tokens/s", result.seconds,
             result.losses[0] if result.losses else float("nan"), result.final_loss, result.tokens_per_second)
    return result.as_dict()
