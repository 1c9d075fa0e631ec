"""Wire the gateway to the real services: feedback store, MLflow registry, Prefect events.

flywheel serve [--config configs/gateway/default.yaml]
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from blocks.environment import apply_blocks
from flywheel.core.home import Home
from flywheel.feedback.store import FeedbackStore
from flywheel.registry.mlflow_registry import Registry
from flywheel.serving.config import GatewaySettings
from flywheel.serving.router import create_app
from flywheel.serving.service import GatewayService, registry_resolver
from tasks.events import PrefectEventSink


def build_app(settings: GatewaySettings, home: Home):
    apply_blocks()  # a feedback database or MLflow server named as a Prefect block (see blocks/)
    registry = Registry(home.tracking_uri(), home.artifact_root())
    sink = PrefectEventSink()
    service = GatewayService(
        settings, FeedbackStore(home.database_url()), registry_resolver(registry, home.models), sink
    )
    app = create_app(settings, service)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        sink.flush()  # events are sent in batches by a background worker: deliver them before exit

    app.router.lifespan_context = lifespan
    return app
