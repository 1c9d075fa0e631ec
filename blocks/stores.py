"""Blocks for the stores: the feedback database (SQLite on a laptop, PostgreSQL in production) and the MLflow
tracking server. Secrets are ``SecretStr`` fields: write-only in the Prefect UI, masked in reprs and logs."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr
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
