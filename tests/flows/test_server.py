"""`flywheel server start`: with production switches (given PREFECT_API_URL and MLFLOW_TRACKING_URI) it
starts no servers of its own, only the worker; from a bare environment it starts and uses its own; a start
that fails half-way leaves nothing running."""

import os
import time

import pytest

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


_EMBEDDED = """
import json, sys
import prefect  # imported before any server exists, as `flywheel demo` does through its imports
from cli import server
from cli.runtime import configure
home = configure()
st = server.start(home, worker=False)
try:
    server.use(home, st)
    from prefect import flow, get_client

    @flow(name="probe")
    def probe():
        return 42

    probe()
    with get_client(sync_client=True) as client:
        runs = [r.name for r in client.read_flow_runs()]
        types = sorted(b.slug for b in client.read_block_types())
        api = str(client.api_url)
    print(json.dumps({"api": api, "state": st["prefect"]["api_url"], "runs": runs, "types": types}))
finally:
    server.stop(home)
"""


def test_embedded_services_from_a_bare_environment(tmp_path, root):
    """What `make demo` does on a fresh machine: no PREFECT_API_URL anywhere, Prefect already imported. The
    block types are registered on the embedded server and a flow run lands there (not on a throw-away
    server, and not "No Prefect API URL provided")."""
    import json
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "FLYWHEEL_"))}
    env.update(FLYWHEEL_HOME=str(tmp_path / "home"), PREFECT_HOME=str(tmp_path / "prefect"))
    out = subprocess.run(
        [sys.executable, "-c", _EMBEDDED], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["api"].rstrip("/") == got["state"] and got["api"].startswith("http://127.0.0.1:")
    assert len(got["runs"]) == 1  # the probe's run, on the embedded server
    assert {"flywheel-feedback-database", "flywheel-mlflow-server"} <= set(got["types"])
    assert not (tmp_path / "home" / "services.json").exists()  # stopped


def test_a_failed_start_leaves_nothing_running(tmp_path, monkeypatch):
    """A start that fails half-way (here: block registration) stops what it had already spawned."""
    import blocks.environment
    from cli import server

    spawned = []
    real_spawn = server._spawn

    def spawn(*args):
        spawned.append(real_spawn(*args))
        return spawned[-1]

    def boom():
        raise RuntimeError("injected: registration failed")

    monkeypatch.setattr(server, "_spawn", spawn)
    monkeypatch.setattr(blocks.environment, "register_block_types", boom)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # an embedded Prefect server is started
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # no MLflow server
    monkeypatch.delenv("FLYWHEEL_INJECTED", raising=False)
    home = Home.resolve(tmp_path / "home")
    with pytest.raises(RuntimeError, match="injected"):
        server.start(home, worker=False)
    assert len(spawned) == 1 and not server._alive(spawned[0].pid)
    assert not home.state_file.exists()
