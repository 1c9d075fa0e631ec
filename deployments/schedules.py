"""The workload's scheduled deployments: ``refresh-data/nightly-<workload>`` (ingest + curate + KB on
``schedules.refresh_cron``) and ``evaluate-champion/weekly-<workload>`` (the champion on the golden set on
``schedules.evaluate_cron``). A null cron: no deployment.

    flywheel deploy --workload configs/workloads/fraud.yaml
"""

from __future__ import annotations

from pathlib import Path

from flywheel.core.workload import WorkloadConfig


def apply(cfg: WorkloadConfig, config_path: str, pool: str) -> dict[str, str]:
    from prefect.types.entrypoint import EntrypointType

    from deployments.retrain import ensure_work_pool
    from flows.evaluate import evaluate_champion
    from flows.refresh import refresh_data

    ensure_work_pool(pool)
    params = {"workload": cfg.name, "config_path": str(Path(config_path).resolve())}
    out = {}
    for flow_, name, cron, what in (
        (
            refresh_data,
            f"nightly-{cfg.name}",
            cfg.schedules.refresh_cron,
            "Ingest and curate the inputs, refresh the KB",
        ),
        (
            evaluate_champion,
            f"weekly-{cfg.name}",
            cfg.schedules.evaluate_cron,
            "Evaluate the champion on the golden set",
        ),
    ):
        if cron is None:
            continue
        dep = flow_.to_deployment(
            name=name, parameters=params, cron=cron, tags=["flywheel", cfg.name], concurrency_limit=1,
            description=f"{what} of {cfg.name} ('{cron}')", entrypoint_type=EntrypointType.MODULE_PATH,
        )  # fmt: skip
        out[f"{flow_.name}/{name}"] = str(dep.apply(work_pool_name=pool))
    return out
