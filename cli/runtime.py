"""Process setup for flows, workers and the CLI: point every client at the right services.

Must run before Prefect is imported (Prefect reads its settings at import):

- ``PREFECT_API_URL``: kept if set (an existing server); else taken from the home's
  ``services.json`` written by ``flywheel server start``.
- Ephemeral Prefect servers are disabled, so a flow (or a Dask worker) without an API fails
  loudly instead of silently starting a throw-away server whose runs nobody sees.
- ``MLFLOW_TRACKING_URI``: kept if set; else the embedded server's URL, else SQLite in the home.
"""

from __future__ import annotations

import logging
import os
import sys

from flywheel.core.errors import NoPrefectAPI
from flywheel.core.home import Home


def configure(home: Home | None = None) -> Home:
    home = home or Home.resolve()
    os.environ["FLYWHEEL_HOME"] = str(home.root)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # lm-evaluation-harness reads its local JSONL through datasets
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Progress bars (model loading, lm-evaluation-harness, datasets) garble logs and the Prefect UI.
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "false"
    # Values taken from services.json are remembered as "injected", so `flywheel server start`
    # can tell them from a user's own (external) PREFECT_API_URL / MLFLOW_TRACKING_URI.
    injected = set(filter(None, os.environ.get("FLYWHEEL_INJECTED", "").split(",")))
    services = home.services()
    for var, value in (
        ("PREFECT_API_URL", services.get("prefect", {}).get("api_url")),
        ("MLFLOW_TRACKING_URI", services.get("mlflow", {}).get("url")),
    ):
        if value and (not os.environ.get(var) or var in injected):
            os.environ[var] = value
            injected.add(var)
    os.environ["FLYWHEEL_INJECTED"] = ",".join(sorted(injected))
    refresh_prefect_settings()
    for noisy in (
        "httpx",
        "httpx2",
        "httpcore",
        "urllib3",
        "alembic",
        "mlflow.store.db.utils",
        "mlflow.store.model_registry.abstract_store",
        "lm_eval",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return home


def refresh_prefect_settings() -> None:
    """Make an already imported Prefect see this process's PREFECT_* variables again.

    Prefect reads its settings into a global context when it is first imported; a variable set afterwards
    (the embedded server's URL, once it answers) is invisible to it until that context is rebuilt.
    """
    if "prefect.context" in sys.modules:
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()


def external(var: str) -> str | None:
    """The user's own value of PREFECT_API_URL / MLFLOW_TRACKING_URI (not one taken from services.json)."""
    injected = os.environ.get("FLYWHEEL_INJECTED", "").split(",")
    return None if var in injected else (os.environ.get(var) or None)


def require_api() -> str:
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        raise NoPrefectAPI(
            "no Prefect API: run `flywheel server start` (embedded server) or set PREFECT_API_URL "
            "(an existing server); flows never run against a temporary server"
        )
    return url
