"""Process setup for flows, workers and the CLI: point every client at the right services.

Must run before Prefect is imported (Prefect reads its settings at import):

- ``PREFECT_API_URL``: kept if set (an existing server); else taken from the home's
  ``services.json`` written by ``flywheel server start``.
- Ephemeral Prefect servers are disabled, so a flow (or a Dask worker) without an API fails
  loudly instead of silently starting a throw-away server whose runs nobody sees.
- ``MLFLOW_TRACKING_URI``: kept if set; else the embedded server's URL, else SQLite in the home.
"""

from __future__ import annotations

import os

from flywheel.core.home import Home


class NoPrefectAPI(RuntimeError):
    pass


def configure(home: Home | None = None) -> Home:
    home = home or Home.resolve()
    os.environ["FLYWHEEL_HOME"] = str(home.root)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "false"
    services = home.services()
    if not os.environ.get("PREFECT_API_URL") and services.get("prefect", {}).get("api_url"):
        os.environ["PREFECT_API_URL"] = services["prefect"]["api_url"]
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = home.tracking_uri()
    return home


def require_api() -> str:
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        raise NoPrefectAPI(
            "no Prefect API: run `flywheel server start` (embedded server) or set PREFECT_API_URL "
            "(an existing server); flows never run against a temporary server"
        )
    return url
