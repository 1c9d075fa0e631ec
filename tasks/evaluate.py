"""Tasks: benchmark a model (base, champion or candidate) on the held-out split and general text, and the
champion's metrics on the same data (stored ones reused when they were measured on it)."""

from __future__ import annotations

from prefect import task

from flywheel.core.workload import WorkloadConfig
from flywheel.evaluation.promotion import champion_metrics as measure_champion
from flywheel.evaluation.promotion import measure
from tasks.common import home, logger, registry


@task(name="evaluate-model", retries=1, tags=["evaluation"])
def evaluate(
    label: str,
    base_path: str,
    adapter_dir: str | None,
    test_dataset_path: str,
    general_text_path: str,
    workload: WorkloadConfig,
) -> dict:
    return measure(label, base_path, adapter_dir, test_dataset_path, general_text_path, workload, logger().info)


@task(name="champion-metrics", tags=["evaluation"])
def champion_metrics(workload: WorkloadConfig, base_path: str, test_path: str, general_path: str) -> dict:
    """The champion's metrics on this test set; with no champion yet, the base model is registered as
    version 1 and becomes it."""
    return measure_champion(registry(), workload, base_path, test_path, general_path, home().models, logger().info)
