"""Shared fixtures. Every test runs offline, single-threaded, with its state in a temp home.

- ``FLYWHEEL_HOME`` points at a session temp dir, so no test touches ./.flywheel.
- ``prefect_api``: one session-scoped ``prefect_test_harness`` (a real Prefect server on SQLite
  in a temp dir) for the task and flow tests.
- ``tiny_model``: a 2-layer random Llama with an on-the-fly BPE tokenizer trained on fraud transactions,
  used where a test needs a model that trains in seconds; the real SmolLM2 runs in the integration tests.
- ``ROOT`` (the repository) and ``run_cli`` (the ``flywheel`` command as a subprocess): shared by the test
  modules, which import nothing from each other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="flywheel-tests-"))
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "TOKENIZERS_PARALLELISM": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOCAL_STORAGE_PATH": str(_SESSION_DIR / "prefect-storage"),
        "PREFECT_HOME": str(_SESSION_DIR / "prefect-home"),
        "FLYWHEEL_HOME": str(_SESSION_DIR / "home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{_SESSION_DIR / 'mlflow.db'}",
        "GIT_PYTHON_REFRESH": "quiet",
    }
)
os.environ.pop("PREFECT_API_URL", None)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    """``flywheel ARGS...`` in a subprocess from the repository root, with ``env`` over this environment."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cli():
    return run_cli


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
    from examples.fraud import generate
    from flywheel.training.models import build_tiny

    return build_tiny(session_dir / "models" / "tiny", [r["text"] + " " + r["answer"] for r in generate(300, seed=1)])
