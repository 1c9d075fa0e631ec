"""The project home: where the embedded services keep their state.

Default ``./.flywheel`` (relative to the working directory), overridden by ``FLYWHEEL_HOME``.
Each embedded service has a production switch read from the environment:

- ``PREFECT_API_URL``     an existing Prefect server instead of the embedded one
- ``MLFLOW_TRACKING_URI`` an existing MLflow server instead of SQLite in the home
- ``FLYWHEEL_DASK_ADDRESS`` a Dask scheduler instead of an in-process LocalCluster
- ``FLYWHEEL_DATABASE_URL`` the feedback store (PostgreSQL in production) instead of SQLite in the home
- ``FLYWHEEL_DATASETS_DIR`` the Datasets' folder (shared by every worker of a cluster) instead of ``datasets/``
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike[str] | None = None) -> Home:
        root = root or os.environ.get("FLYWHEEL_HOME") or ".flywheel"
        home = cls(Path(root).expanduser().resolve())
        home.root.mkdir(parents=True, exist_ok=True)
        return home

    # -- layout -------------------------------------------------------------------------------
    @property
    def datasets(self) -> Path:
        shared = os.environ.get("FLYWHEEL_DATASETS_DIR")
        if shared:
            path = Path(shared).expanduser()
            path.mkdir(parents=True, exist_ok=True)
            return path
        return self._dir("datasets")

    @property
    def models(self) -> Path:
        return self._dir("models")

    @property
    def runs(self) -> Path:
        return self._dir("runs")

    @property
    def logs(self) -> Path:
        return self._dir("logs")

    @property
    def data(self) -> Path:
        return self._dir("data")

    @property
    def kb(self) -> Path:
        """Knowledge bases, one folder per workload (``flywheel run`` builds ``kb/<workload>``)."""
        return self._dir("kb")

    @property
    def cache(self) -> Path:
        """Derived state that can be rebuilt (the incremental ingest cache)."""
        return self._dir("cache")

    @property
    def prefect_home(self) -> Path:
        return self._dir("prefect")

    @property
    def mlflow_dir(self) -> Path:
        return self._dir("mlflow")

    @property
    def state_file(self) -> Path:
        return self.root / "services.json"

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- service endpoints ----------------------------------------------------------------------
    def services(self) -> dict:
        """What ``flywheel server start`` wrote (URLs and PIDs), or {} when nothing was started."""
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def tracking_uri(self) -> str:
        if uri := os.environ.get("MLFLOW_TRACKING_URI"):
            return uri
        # SQLite in the home: the same store the embedded MLflow UI serves.
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    def artifact_root(self) -> str:
        return (self.mlflow_dir / "artifacts").as_uri()

    def database_url(self) -> str:
        return os.environ.get("FLYWHEEL_DATABASE_URL") or f"sqlite:///{self.root / 'feedback.db'}"

    def dask_address(self) -> str | None:
        return os.environ.get("FLYWHEEL_DASK_ADDRESS") or None
