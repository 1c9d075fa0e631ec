"""Shared fixtures. Every test runs offline, single-threaded, with its state in a temp home.

- ``FLYWHEEL_HOME`` points at a session temp dir, so no test touches ./.flywheel.
- ``prefect_api``: one session-scoped ``prefect_test_harness`` (a real Prefect server on SQLite
  in a temp dir) for the task and flow tests.
- ``tiny_model``: a 2-layer random Llama with an on-the-fly BPE tokenizer, used where a test
  needs a model that trains in seconds; the real SmolLM2 runs in the integration tests.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="flywheel-tests-"))
os.environ.update({
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    "TOKENIZERS_PARALLELISM": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOCAL_STORAGE_PATH": str(_SESSION_DIR / "prefect-storage"),
    "PREFECT_HOME": str(_SESSION_DIR / "prefect-home"),
    "FLYWHEEL_HOME": str(_SESSION_DIR / "home"),
    "MLFLOW_TRACKING_URI": f"sqlite:///{_SESSION_DIR / 'mlflow.db'}",
    "GIT_PYTHON_REFRESH": "quiet",
})
os.environ.pop("PREFECT_API_URL", None)

import pytest  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield os.environ.get("PREFECT_API_URL")


@pytest.fixture(scope="session")
def tiny_model(session_dir) -> Path:
    from flywheel.training.models import resolve_base_model

    return resolve_base_model("tiny", session_dir / "models")
