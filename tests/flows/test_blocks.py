"""Prefect blocks for the stores and endpoints: registered on the server, saved with their secrets masked, and
named in the environment they become what the tasks and the gateway connect to."""

import os
import uuid

import pytest

from blocks import DaskScheduler, DatasetStore, FeedbackDatabase, MlflowServer
from blocks.environment import NAMED_BY, apply_blocks, register_block_types
from flywheel.core.errors import ConfigError


@pytest.fixture
def isolated_env(monkeypatch):
    """Every variable a block may set is restored after the test (apply_blocks writes os.environ)."""
    for var in (
        *NAMED_BY,
        "FLYWHEEL_DATABASE_URL",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "FLYWHEEL_DASK_ADDRESS",
        "FLYWHEEL_DATASETS_DIR",
    ):
        monkeypatch.setenv(var, os.environ.get(var, ""))
    return monkeypatch


def test_block_types_register_with_the_server(prefect_api):
    from prefect import get_client

    slugs = register_block_types()
    assert slugs == [
        "flywheel-feedback-database", "flywheel-mlflow-server", "flywheel-dask-scheduler", "flywheel-openai-endpoint",
        "flywheel-dataset-store",
    ]  # fmt: skip
    with get_client(sync_client=True) as client:
        schema = client.read_block_type_by_slug("flywheel-feedback-database")
        assert schema.name == "Flywheel Feedback Database"
        assert client.read_block_type_by_slug("flywheel-openai-endpoint").name == "Flywheel OpenAI Endpoint"
    assert register_block_types() == slugs  # idempotent


def test_named_blocks_become_the_stores_the_tasks_and_the_gateway_use(prefect_api, isolated_env, tmp_path):
    from prefect import get_client

    from cli.gateway import build_app
    from flywheel.core.home import Home
    from flywheel.feedback.store import FeedbackStore
    from flywheel.serving.config import GatewaySettings
    from tasks.common import home

    tag = uuid.uuid4().hex[:8]
    db_url = f"sqlite:///{tmp_path / 'from-block.db'}"
    FeedbackDatabase(url=db_url).save(f"fb-{tag}")
    MlflowServer(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", username="ops", password="hunter2").save(
        f"ml-{tag}"
    )
    DaskScheduler(address="tcp://10.0.0.5:8786").save(f"dask-{tag}")
    DatasetStore(path=str(tmp_path / "shared" / "datasets")).save(f"ds-{tag}")
    isolated_env.setenv("FLYWHEEL_DATABASE_URL", "sqlite:///never-used.db")  # the block takes precedence
    isolated_env.setenv("FLYWHEEL_FEEDBACK_BLOCK", f"fb-{tag}")
    isolated_env.setenv("FLYWHEEL_MLFLOW_BLOCK", f"ml-{tag}")
    isolated_env.setenv("FLYWHEEL_DASK_BLOCK", f"dask-{tag}")
    isolated_env.setenv("FLYWHEEL_DATASETS_BLOCK", f"ds-{tag}")

    h = home()
    assert h.database_url() == db_url and h.dask_address() == "tcp://10.0.0.5:8786"
    assert h.datasets == tmp_path / "shared" / "datasets" and h.datasets.is_dir()  # where every stage writes
    assert h.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("ops", "hunter2")
    iid = FeedbackStore(h.database_url()).log_interaction(
        workload="fraud",
        model="fraud",
        model_version="1",
        messages=[{"role": "user", "content": "hi"}],
        response="LEGIT: ok",
        latency_ms=1.0,
    )
    assert FeedbackStore(db_url).get(iid)["response"] == "LEGIT: ok"  # written to the block's database

    isolated_env.setenv("FLYWHEEL_DATABASE_URL", "sqlite:///never-used.db")
    app = build_app(GatewaySettings(emit_events=False), Home.resolve(tmp_path / "home"))
    assert str(app.state.service.store.engine.url) == db_url

    with get_client(sync_client=True) as client:  # the secret is stored masked, shown to nobody
        doc = client.read_block_document_by_name(f"ml-{tag}", "flywheel-mlflow-server", include_secrets=False)
        assert doc.data["password"] != "hunter2" and "hunter2" not in repr(MlflowServer.load(f"ml-{tag}"))


def test_a_password_goes_into_the_url_and_a_bad_address_is_refused():
    block = FeedbackDatabase(url="postgresql+psycopg://flywheel@db:5432/flywheel", password="s3cr:t")
    assert block.environment() == {"FLYWHEEL_DATABASE_URL": "postgresql+psycopg://flywheel:s3cr%3At@db:5432/flywheel"}
    assert "s3cr" not in repr(block)
    with pytest.raises(ValueError, match="address needs a scheme"):
        DaskScheduler(address="10.0.0.5:8786")
    with pytest.raises(ValueError, match="object-store URLs are not supported"):
        DatasetStore(path="s3://bucket/datasets")
    with pytest.raises(ValueError, match="must be absolute"):
        DatasetStore(path="datasets")


def test_a_block_name_with_no_block_fails_fast_with_the_variable(prefect_api, isolated_env):
    isolated_env.setenv("FLYWHEEL_FEEDBACK_BLOCK", "no-such-block")
    with pytest.raises(ConfigError, match="FLYWHEEL_FEEDBACK_BLOCK=no-such-block: no Flywheel Feedback Database block"):
        apply_blocks()
