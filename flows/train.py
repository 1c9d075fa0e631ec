"""Flows ``train`` (the flywheel loop's SFT step) and ``train-recipe`` (``flywheel train --config``).

flywheel train --workload configs/workloads/fraud.yaml --dataset DIR [--json]
flywheel train --config configs/training/sft-lora.yaml [--resume] [--nproc N] [--json]
"""

from __future__ import annotations

from prefect import flow
from prefect.concurrency.sync import concurrency

from flywheel.core.workload import WorkloadConfig
from flywheel.training.config import TrainConfig
from tasks.common import TRAINING_SLOT
from tasks.train import dpo_from_feedback, prepare_base_model, start_training_run, train_adapter, train_model


@flow(name="train", log_prints=True)
def train(
    workload: WorkloadConfig,
    sft_dataset: dict,
    datasets: dict | None = None,
    trigger: str | None = None,
    init_adapter: str | None = None,
) -> dict:
    base_path = prepare_base_model(workload.sft.base_model)
    run_id = start_training_run(workload, trigger, {"training": sft_dataset, **(datasets or {})})
    with concurrency(TRAINING_SLOT, occupy=1, strict=False):  # one training run at a time (flywheel deploy sets 1)
        trained = train_adapter(sft_dataset["path"], workload, run_id, init_adapter)
        trained = dpo_from_feedback(workload, trained, sft_dataset, run_id)  # when continual.dpo_steps > 0
    return {**trained, "run_id": run_id, "base_model_path": base_path}


@flow(name="train-recipe", log_prints=True)
def train_recipe(cfg: TrainConfig, resume: bool = False, nproc: int = 1) -> dict:
    """One recipe run from a TrainConfig: base model, then the recipe (retried from its last checkpoint)."""
    prepare_base_model(cfg.recipe_config().base_model)
    with concurrency(TRAINING_SLOT, occupy=1, strict=False):
        return train_model(cfg, resume, nproc)
