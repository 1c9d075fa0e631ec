"""The knowledge base kept in step with the curated corpus: deployment ``kb-build/kb-<name>-refresh`` runs the
kb-build flow whenever a Dataset named ``<dataset>`` is created (``flywheel.dataset.created`` on resource
``flywheel.dataset.<dataset>``, emitted by the ingest and curate tasks), on the new Dataset's path. The build is
incremental, so a refresh embeds and extracts only new or changed documents.

    flywheel kb deploy --dataset policies-curated --kb data/kb [--config configs/kb/default.yaml]
"""

from __future__ import annotations

from pathlib import Path

from flywheel.rag.config import KbConfig

EVENT = "flywheel.dataset.created"
SOURCE = "{{ event.payload.path | string }}"  # Prefect trigger template: the new Dataset's folder


def refresh_trigger(dataset: str, kb_dir: str, cfg: KbConfig, name: str):
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name=f"kb-{name}-on-new-dataset",
        enabled=True,
        match={"prefect.resource.id": f"flywheel.dataset.{dataset}"},
        expect={EVENT},
        posture="Reactive",
        threshold=1,
        parameters={"source": SOURCE, "kb_dir": kb_dir, "config": cfg.model_dump(mode="json"), "name": name},
    )


def apply(dataset: str, kb_dir: str | Path, cfg: KbConfig, name: str = "kb", pool: str = "flywheel-process") -> str:
    """Create or update ``kb-build/kb-<name>-refresh``; its id."""
    from prefect.types.entrypoint import EntrypointType

    from deployments.retrain import ensure_work_pool
    from flows.kb import kb_build

    ensure_work_pool(pool)
    kb_dir = str(Path(kb_dir).resolve())
    dep = kb_build.to_deployment(
        name=f"kb-{name}-refresh",
        parameters={"source": "", "kb_dir": kb_dir, "config": cfg.model_dump(mode="json"), "name": name},
        triggers=[refresh_trigger(dataset, kb_dir, cfg, name)],
        tags=["flywheel", "kb", name],
        description=f"Refresh the knowledge base {kb_dir} when a new '{dataset}' Dataset is created",
        entrypoint_type=EntrypointType.MODULE_PATH,
        concurrency_limit=1,  # one build of a KB folder at a time; the next event's run waits
    )
    return str(dep.apply(work_pool_name=pool))
