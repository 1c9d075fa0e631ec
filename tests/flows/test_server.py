"""`flywheel server start` with production switches: given PREFECT_API_URL and MLFLOW_TRACKING_URI,
it starts no servers of its own, only the worker, pointed at the given API."""

import os
import time

from flywheel.core.home import Home


def test_external_services_start_only_the_worker(prefect_api, tmp_path, monkeypatch):
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    from cli import server

    api = PREFECT_API_URL.value()
    monkeypatch.setenv("PREFECT_API_URL", api)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("FLYWHEEL_INJECTED", raising=False)
    home = Home.resolve(tmp_path / "home")
    st = server.start(home)
    try:
        assert st["running"] is True
        assert st["prefect"] == {
            "url": api.removesuffix("/api"),
            "api_url": api,
            "pid": None,
            "external": True,
            "healthy": True,
        }
        assert st["mlflow"]["external"] is True and st["mlflow"]["pid"] is None
        pid = st["worker"]["pid"]
        assert server._alive(pid)
        with get_client(sync_client=True) as client:  # the worker registers with the given API
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not client.read_workers_for_work_pool("flywheel-process"):
                time.sleep(1)
            assert client.read_workers_for_work_pool("flywheel-process")
    finally:
        out = server.stop(home)
    assert out == {"stopped": ["worker"]} and not server._alive(pid)
    assert not home.state_file.exists() and server.status(home) == {"running": False}
    assert os.environ["PREFECT_API_URL"] == api
