"""The drift watch: deployment ``drift-check/drift-<workload>`` runs the drift-check flow on the workload's
``drift.cron``; on drift the flow emits ``flywheel.drift.detected``, which the retrain deployment answers.

    flywheel deploy --workload configs/workloads/fraud.yaml     (creates it with the retrain deployment)
"""

from __future__ import annotations

from pathlib import Path

from flywheel.core.workload import WorkloadConfig


def apply(cfg: WorkloadConfig, config_path: str, pool: str) -> str:
    """Create or update ``drift-check/drift-<workload>`` (paused when ``drift.enabled`` is false); its id."""
    from prefect.types.entrypoint import EntrypointType

    from deployments.retrain import ensure_work_pool
    from flows.drift import drift_check

    ensure_work_pool(pool)
    dep = drift_check.to_deployment(
        name=f"drift-{cfg.name}",
        parameters={"workload": cfg.name, "config_path": str(Path(config_path).resolve())},
        cron=cfg.drift.cron,
        paused=not cfg.drift.enabled,
        tags=["flywheel", "drift", cfg.name],
        description=f"Watch {cfg.name}'s live traffic for drift ('{cfg.drift.cron}'); emits flywheel.drift.detected",
        entrypoint_type=EntrypointType.MODULE_PATH,
        concurrency_limit=1,
    )
    return str(dep.apply(work_pool_name=pool))
