"""Wire the gateway to the real services: feedback store (interactions, feedback, outbox, API keys), MLflow
registry, Prefect events (through the outbox relay), the workloads' configs (their base models).

flywheel serve [--config configs/gateway/default.yaml]
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from pathlib import Path

from blocks.environment import apply_blocks
from flywheel.core.home import Home
from flywheel.feedback.store import FeedbackStore
from flywheel.registry.mlflow_registry import Registry
from flywheel.serving.config import GatewaySettings
from flywheel.serving.rollout import RegistryRollouts
from flywheel.serving.router import create_app
from flywheel.serving.service import GatewayService, registry_resolver
from flywheel.serving.tenants import KeyStore
from tasks.events import PrefectEventSink

WORKLOADS = Path(__file__).resolve().parents[1] / "configs" / "workloads"


def workload_configs(names: list[str], folder: Path = WORKLOADS) -> dict:
    """name -> WorkloadConfig for the served workloads that have a config (their base model is served until a
    champion exists)."""
    from flywheel.core.workload import load_workload

    return {n: load_workload(folder / f"{n}.yaml") for n in names if (folder / f"{n}.yaml").exists()}


def upstream_from_block(settings: GatewaySettings) -> GatewaySettings:
    """``upstream_url: block:<name>``: the OpenAI endpoint block's URL (and its model name and API key, where
    the settings have none)."""
    if not (settings.upstream_url or "").startswith("block:"):
        return settings
    from pydantic import SecretStr

    from blocks.endpoints import resolve_endpoint

    url, model, key = resolve_endpoint(settings.upstream_url)
    update = {"upstream_url": url, "upstream_api_key": settings.upstream_api_key or (SecretStr(key) if key else None)}
    if model and settings.upstream_model == GatewaySettings.model_fields["upstream_model"].default:
        update["upstream_model"] = model
    return settings.model_copy(update=update)


def build_app(settings: GatewaySettings, home: Home):
    apply_blocks()  # a feedback database or MLflow server named as a Prefect block (see blocks/)
    settings = upstream_from_block(settings)
    registry = Registry(home.tracking_uri(), home.artifact_root())
    configs = workload_configs(settings.workloads)
    resolve = registry_resolver(registry, home.models, configs, local_files=settings.engine == "local")
    service = GatewayService(
        settings,
        FeedbackStore(home.database_url()),
        resolve,
        sink=PrefectEventSink(),
        keys=KeyStore(home.database_url()),
        rollouts=RegistryRollouts(registry),
        workloads=configs,
    )
    app = create_app(settings, service)

    @asynccontextmanager
    async def lifespan(_app):
        service.start()  # the outbox relay: first what an earlier run left undelivered
        threading.Thread(target=service.warm_up, name="warm-up", daemon=True).start()  # /readyz says when
        yield
        service.close()  # one last delivery attempt, then the engines drain

    app.router.lifespan_context = lifespan
    return app
