"""The retrain deployment: flow ``retrain`` on a work pool, started by a feedback-event trigger or a drift event,
one run of a workload at a time (``retrain.on_busy``: a trigger while it runs queues or is dropped), and rerun
from its last checkpoint when it crashed (``retrain.resume_crashed``).

The threshold comes from the workload config (``retrain.feedback_threshold``), so changing N is a
config edit. ``prefect.yaml`` holds the same deployment for ``prefect deploy --all`` (a test keeps
the two in step).

    flywheel deploy --workload configs/workloads/fraud.yaml [--pool flywheel-process]
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flywheel.core.workload import WorkloadConfig
from tasks.common import TRAINING_SLOT

DEFAULT_POOL = "flywheel-process"
EVENT = "flywheel.feedback.received"
# The seq of the feedback whose event fired the trigger (the gateway puts it in the payload): the retrain reads
# the feedback up to it and no further. Empty for an event without one (the retrain then reads all so far).
WATERMARK = "{{ event.payload.feedback_seq | default('') | string }}"


DRIFT_EVENT = "flywheel.drift.detected"


def drift_trigger(cfg: WorkloadConfig, config_path: str):
    """A retrain on each ``flywheel.drift.detected`` of the workload (the drift-check flow emits it); it reads all
    the feedback so far (no watermark)."""
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name=f"retrain-{cfg.name}-on-drift",
        enabled=cfg.drift.enabled,
        match={"prefect.resource.id": f"flywheel.workload.{cfg.name}"},
        expect={DRIFT_EVENT},
        posture="Reactive",
        threshold=1,
        parameters={"workload": cfg.name, "config_path": config_path, "trigger_event": "{{ event.id | string }}"},
    )


def recovery_trigger(cfg: WorkloadConfig, config_path: str):
    """A rerun of a retrain of this deployment that ended Crashed (its worker died: the zombie watch marks it), with
    the crashed run's id: the rerun reads its trigger and watermark and continues its training from the last
    checkpoint; at most ``retrain.resume_crashed`` crashes in a row (the flow counts them)."""
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name=f"retrain-{cfg.name}-after-crash",
        enabled=cfg.retrain.resume_crashed > 0,
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "deployment", "prefect.resource.name": f"retrain-{cfg.name}"},
        expect={"prefect.flow-run.Crashed"},
        posture="Reactive",
        threshold=1,
        parameters={"workload": cfg.name, "config_path": config_path, "resume_of": "{{ event.resource.id }}"},
    )


def concurrency_for(cfg: WorkloadConfig):
    """One retrain of the workload at a time; a trigger while one runs waits (queue) or is cancelled (drop)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    strategy = (
        ConcurrencyLimitStrategy.ENQUEUE if cfg.retrain.on_busy == "queue" else ConcurrencyLimitStrategy.CANCEL_NEW
    )
    return ConcurrencyLimitConfig(limit=1, collision_strategy=strategy)


def ensure_training_slot(limit: int = 1) -> None:
    """The global concurrency limit the train flows take a slot of (created, or set to ``limit``)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(TRAINING_SLOT, limit)


def trigger_for(cfg: WorkloadConfig, config_path: str):
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name=f"retrain-{cfg.name}-on-feedback",
        enabled=True,
        match={"prefect.resource.id": f"flywheel.workload.{cfg.name}"},
        expect={EVENT},
        posture="Reactive",
        threshold=cfg.retrain.feedback_threshold,
        within=timedelta(seconds=cfg.retrain.within_seconds),
        # A bare {{ event.id }} renders to nothing and silently creates no run: cast it. The watermark is the
        # seq of the feedback whose event fired: the retrain reads the feedback up to it, and no further.
        parameters={
            "workload": cfg.name,
            "config_path": config_path,
            "trigger_event": "{{ event.id | string }}",
            "watermark": WATERMARK,
        },
    )


def ensure_work_pool(name: str = DEFAULT_POOL) -> None:
    """Create a process pool with the worker's default job template (as `prefect work-pool create` does).
    For Kubernetes, create the pool from deployments/work-pools/kubernetes.json instead."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return
        except ObjectNotFound:
            pass
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
                )
            )
        except ObjectAlreadyExists:  # created concurrently
            pass


def apply(cfg: WorkloadConfig, config_path: str, pool: str = DEFAULT_POOL) -> str:
    """Create or update deployment ``retrain/retrain-<workload>``; returns its id.

    The entrypoint is a module path (``flows.retrain:retrain``): workers import the installed
    package, so no code is pulled and no working directory matters."""
    from prefect.types.entrypoint import EntrypointType

    from flows.retrain import retrain

    ensure_work_pool(pool)
    config_path = str(Path(config_path).resolve())
    deployment = retrain.to_deployment(
        name=f"retrain-{cfg.name}",
        parameters={"workload": cfg.name, "config_path": config_path},
        triggers=[
            trigger_for(cfg, config_path),
            drift_trigger(cfg, config_path),
            recovery_trigger(cfg, config_path),
        ],
        tags=["flywheel", cfg.name],
        description=f"Retrain {cfg.name} after {cfg.retrain.feedback_threshold} feedback events, or on drift",
        entrypoint_type=EntrypointType.MODULE_PATH,
        concurrency_limit=concurrency_for(cfg),
    )
    return str(deployment.apply(work_pool_name=pool))
