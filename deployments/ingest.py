"""Ingest deployments for a folder: one on a cron schedule, one started by new files.

The watched one reacts to ``flywheel.folder.changed`` events on resource ``flywheel.folder.<name>``,
which ``flywheel watch FOLDER --name <name>`` emits (one event per burst of new or modified
files, debounced). Both run the whole folder through the incremental ingest, so a run reads only
the files whose content is new and a missed event is caught by the next one.

    flywheel ingest-deploy data/inbox --name inbox [--cron "*/15 * * * *"] [--config configs/ingest/default.yaml]
    flywheel watch data/inbox --name inbox
"""

from __future__ import annotations

from pathlib import Path

from flywheel.ingest.config import IngestConfig

EVENT = "flywheel.folder.changed"


def resource_id(name: str) -> str:
    return f"flywheel.folder.{name}"


def watch_trigger(name: str):
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name=f"ingest-{name}-on-new-files",
        enabled=True,
        match={"prefect.resource.id": resource_id(name)},
        expect={EVENT},
        posture="Reactive",
        threshold=1,
    )


def apply(
    folder: str | Path, name: str, cfg: IngestConfig, cron: str | None = None, pool: str = "flywheel-process"
) -> dict[str, str]:
    """Create or update ``ingest/ingest-<name>-watch`` (and ``ingest/ingest-<name>-scheduled`` with ``cron``)."""
    from prefect.types.entrypoint import EntrypointType

    from deployments.retrain import ensure_work_pool
    from flows.ingest import ingest

    ensure_work_pool(pool)
    params = {"paths": [str(Path(folder).resolve())], "name": name, "config": cfg.model_dump(mode="json")}
    out = {}
    watched = ingest.to_deployment(
        name=f"ingest-{name}-watch",
        parameters=params,
        triggers=[watch_trigger(name)],
        tags=["flywheel", "ingest", name],
        description=f"Ingest {params['paths'][0]} when `flywheel watch` reports new files",
        entrypoint_type=EntrypointType.MODULE_PATH,
        concurrency_limit=1,  # bursts queue up; each run is incremental
    )
    out[f"ingest/ingest-{name}-watch"] = str(watched.apply(work_pool_name=pool))
    if cron:
        scheduled = ingest.to_deployment(
            name=f"ingest-{name}-scheduled",
            parameters=params,
            cron=cron,
            tags=["flywheel", "ingest", name],
            description=f"Ingest {params['paths'][0]} on '{cron}'",
            entrypoint_type=EntrypointType.MODULE_PATH,
            concurrency_limit=1,
        )
        out[f"ingest/ingest-{name}-scheduled"] = str(scheduled.apply(work_pool_name=pool))
    return out
