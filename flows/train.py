"""Flows ``train`` (the flywheel loop's SFT step) and ``train-recipe`` (``flywheel train --config``).

flywheel train --workload configs/workloads/fraud.yaml --dataset DIR [--json]
flywheel train --config configs/training/sft-lora.yaml [--resume] [--nproc N] [--json]
"""

from __future__ import annotations

from prefect import flow
from prefect.concurrency.sync import concurrency

from flywheel.core.workload import WorkloadConfig
from flywheel.training.config import TrainConfig
from tasks.common import SLOT_LEASE_S, TRAINING_SLOT
from tasks.train import dpo_from_feedback, prepare_base_model, start_training_run, train_adapter, train_model


@flow(name="train", log_prints=True)
def train(
    workload: WorkloadConfig,
    sft_dataset: dict,
    datasets: dict | None = None,
    trigger: str | None = None,
    init_adapter: str | None = None,
    resume_run_id: str | None = None,
) -> dict:
    """``resume_run_id``: a crashed retrain's MLflow run, whose checkpoints training continues from."""
    base_path = prepare_base_model(workload.sft.base_model)
    run_id = start_training_run(workload, trigger, {"training": sft_dataset, **(datasets or {})}, resume_run_id)
    # one training run at a time (flywheel deploy sets the limit to 1); a dead holder's slot frees within a minute
    with concurrency(TRAINING_SLOT, occupy=1, strict=False, lease_duration=SLOT_LEASE_S):
        trained = train_adapter(sft_dataset["path"], workload, run_id, init_adapter, resume=bool(resume_run_id))
        trained = dpo_from_feedback(workload, trained, sft_dataset, run_id)  # when continual.dpo_steps > 0
    return {**trained, "run_id": run_id, "base_model_path": base_path}


@flow(name="train-recipe", log_prints=True)
def train_recipe(cfg: TrainConfig, resume: bool = False, nproc: int = 1) -> dict:
    """One recipe run from a TrainConfig: base model, then the recipe (retried from its last checkpoint)."""
    prepare_base_model(cfg.recipe_config().base_model)
    with concurrency(TRAINING_SLOT, occupy=1, strict=False, lease_duration=SLOT_LEASE_S):
        return train_model(cfg, resume, nproc)
