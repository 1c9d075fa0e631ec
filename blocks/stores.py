"""Blocks for the stores: the feedback database (SQLite on a laptop, PostgreSQL in production), the dataset store
(a folder every worker mounts) and the MLflow tracking server. Secrets are ``SecretStr`` fields: write-only in the
Prefect UI, masked in reprs and logs."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator
from sqlalchemy.engine import make_url


class FeedbackDatabase(Block):
    """The feedback store: every gateway interaction and the rating or correction it received."""

    _block_type_name = "Flywheel Feedback Database"
    _block_type_slug = "flywheel-feedback-database"
    _description = (
        "Where the Flywheel gateway stores interactions and feedback (SQLAlchemy URL; PostgreSQL in production)."
    )

    url: str = Field(
        ...,
        description="SQLAlchemy URL without the password, e.g. "
        "postgresql+psycopg://flywheel@db:5432/flywheel or sqlite:////data/feedback.db.",
    )
    password: SecretStr | None = Field(None, description="The database user's password (kept out of the URL).")

    def environment(self) -> dict[str, str]:
        url = make_url(self.url)
        if self.password is not None:
            url = url.set(password=self.password.get_secret_value())
        return {"FLYWHEEL_DATABASE_URL": url.render_as_string(hide_password=False)}


class MlflowServer(Block):
    """The MLflow tracking server and model registry that record runs, lineage and the champion alias."""

    _block_type_name = "Flywheel MLflow Server"
    _block_type_slug = "flywheel-mlflow-server"
    _description = "The MLflow tracking server (and registry) Flywheel logs runs and model versions to."

    tracking_uri: str = Field(..., description="e.g. https://mlflow.example.com, or sqlite:////data/mlflow.db.")
    username: str | None = Field(None, description="HTTP basic-auth user of the MLflow server, if it has one.")
    password: SecretStr | None = Field(None, description="HTTP basic-auth password (MLFLOW_TRACKING_PASSWORD).")

    def environment(self) -> dict[str, str]:
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri}
        if self.username:
            env["MLFLOW_TRACKING_USERNAME"] = self.username
        if self.password is not None:
            env["MLFLOW_TRACKING_PASSWORD"] = self.password.get_secret_value()
        return env


class DatasetStore(Block):
    """Where the Datasets live (ingested, curated, SFT, golden): a folder that every worker mounts at the same path
    (an NFS export, a Kubernetes PersistentVolumeClaim), so a Dataset written by one stage is read by the next."""

    _block_type_name = "Flywheel Dataset Store"
    _block_type_slug = "flywheel-dataset-store"
    _description = "The shared folder Flywheel's content-addressed Datasets are written to and read from."

    path: str = Field(..., description="Absolute path, the same on every worker, e.g. /mnt/flywheel/datasets.")

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if "://" in path:
            raise ValueError("path must be a mounted folder (object-store URLs are not supported): mount it")
        if not path.startswith("/"):
            raise ValueError("path must be absolute: every worker resolves it alike")
        return path

    def environment(self) -> dict[str, str]:
        return {"FLYWHEEL_DATASETS_DIR": self.path}
