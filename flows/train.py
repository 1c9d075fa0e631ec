"""Flows ``train`` (the flywheel loop's SFT step) and ``train-recipe`` (``flywheel train --config``).

    flywheel train --workload configs/workloads/fraud.yaml --dataset DIR [--json]
    flywheel train --config configs/training/sft-lora.yaml [--resume] [--nproc N] [--json]
"""

from __future__ import annotations

from prefect import flow, task

from flywheel.core.config import TrainConfig, WorkloadConfig
from flywheel.training.models import resolve_base_model
from tasks.common import home, registry
from tasks.train import train_adapter, train_model


@task(name="prepare-base-model", retries=1, tags=["training"])
def prepare_base_model(base_model: str) -> str:
    """Resolve (and on first use convert) the base model into the home's model cache."""
    return str(resolve_base_model(base_model, home().models))


@task(name="start-training-run", tags=["tracking"])
def start_training_run(workload: WorkloadConfig, trigger: str | None, datasets: dict) -> str:
    reg = registry()
    with reg.start_run(workload.name, run_name=f"cycle-{'retrain' if trigger else 'run'}",
                       tags={"flywheel.workload": workload.name, "flywheel.trigger": trigger or "manual"}) as run:
        reg.mlflow.log_params({"workload": workload.name, "curation": workload.curation.model_dump_json()})
        for context, ds in datasets.items():
            reg.log_dataset(ds["path"], ds["name"], ds["digest"], context=context)
            reg.mlflow.log_metrics({f"{context}.{k}": v for k, v in ds.get("counts", {}).items()
                                    if isinstance(v, (int, float))})
        return run.info.run_id


@flow(name="train", log_prints=True)
def train(workload: WorkloadConfig, sft_dataset: dict, datasets: dict | None = None, trigger: str | None = None) -> dict:
    base_path = prepare_base_model(workload.sft.base_model)
    run_id = start_training_run(workload, trigger, {"training": sft_dataset, **(datasets or {})})
    trained = train_adapter(sft_dataset["path"], workload, run_id)
    return {**trained, "run_id": run_id, "base_model_path": base_path}


@flow(name="train-recipe", log_prints=True)
def train_recipe(cfg: TrainConfig, resume: bool = False, nproc: int = 1) -> dict:
    """One recipe run from a TrainConfig: base model, then the recipe (retried from its last checkpoint)."""
    prepare_base_model(cfg.recipe_config().base_model)
    return train_model(cfg, resume, nproc)
