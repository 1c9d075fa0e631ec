"""Embedded services: a Prefect server, the MLflow UI and a process worker, on loopback.

``flywheel server start`` starts them detached, waits until they answer, and writes their URLs,
PIDs and log files to ``<home>/services.json``; ``stop`` ends them; ``status`` checks them.
State lives in the home: Prefect on SQLite in ``<home>/prefect``, MLflow on SQLite with local
artifacts in ``<home>/mlflow``, logs in ``<home>/logs``.

Production switch: with ``PREFECT_API_URL`` set, no Prefect server is started (the worker and
flows use that API); with ``MLFLOW_TRACKING_URI`` set, no MLflow server is started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cli.runtime import configure, external, refresh_prefect_settings
from flywheel.core.home import Home

BIN = Path(sys.executable).parent
POOL = "flywheel-process"


def free_port(preferred: int) -> int:
    for port in [preferred, 0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def _wait(url: str, what: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer on {url} within {timeout:.0f}s")


def _spawn(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    f = log.open("ab")
    return subprocess.Popen(
        cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
    )  # own process group: `stop` ends it and its children


def service_env(home: Home, state: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    for var in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        if external(var):
            env[var] = os.environ[var]
    env.update(
        {
            "FLYWHEEL_HOME": str(home.root),
            "PREFECT_HOME": str(home.prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_LOCAL_STORAGE_PATH": str(home.prefect_home / "storage"),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TQDM_DISABLE": env.get("TQDM_DISABLE", "1"),
            "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)),
            # the worker asks for scheduled runs every 2 s (Prefect's default: 10 s): a triggered retrain starts
            # within seconds of its event (measured by the demo: trigger_to_running_s)
            "PREFECT_WORKER_QUERY_SECONDS": env.get("PREFECT_WORKER_QUERY_SECONDS", "2"),
            # concurrency leases (the training slot, one retrain per workload) on disk, not in the server's memory:
            # a restarted server would otherwise forget them and never free their slots (Prefect's default: memory)
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": env.get(
                "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE", "prefect.server.concurrency.lease_storage.filesystem"
            ),
            # deployment runs send heartbeats; flywheel deploy's automation crashes a run that stops (dead worker)
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": env.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30"),
        }
    )
    if "prefect" in state:
        env["PREFECT_API_URL"] = state["prefect"]["api_url"]
    if "mlflow" in state:
        env["MLFLOW_TRACKING_URI"] = state["mlflow"]["url"]
    env.pop("FLYWHEEL_INJECTED", None)
    return env


def start(
    home: Home, prefect_port: int = 4200, mlflow_port: int = 5000, worker: bool = True, timeout: float = 120
) -> dict:
    state = status(home)
    if state.get("running"):
        return state
    stop(home)
    state = {}
    try:
        _start(home, state, prefect_port, mlflow_port, worker, timeout)
    except BaseException:
        # What did start must not outlive a failed start (it would hold ports and CPU with nobody to stop it).
        home.state_file.write_text(json.dumps(state, indent=2))
        stop(home)
        raise
    state["started_at"] = time.time()
    home.state_file.write_text(json.dumps(state, indent=2))
    return status(home)


def _start(home: Home, state: dict, prefect_port: int, mlflow_port: int, worker: bool, timeout: float) -> None:
    """Start each service, recording it in ``state`` as soon as it is spawned."""
    logs = home.logs
    if not external("PREFECT_API_URL"):
        port = free_port(prefect_port)
        url = f"http://127.0.0.1:{port}"
        env = service_env(home, state)
        env["PREFECT_SERVER_API_HOST"], env["PREFECT_SERVER_API_PORT"] = "127.0.0.1", str(port)
        proc = _spawn(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            logs / "prefect-server.log",
            env,
        )
        state["prefect"] = {
            "url": url,
            "api_url": f"{url}/api",
            "pid": proc.pid,
            "log": str(logs / "prefect-server.log"),
        }
        _wait(f"{url}/api/health", "Prefect server", timeout, proc, logs / "prefect-server.log")
    else:
        state["prefect"] = {
            "url": os.environ["PREFECT_API_URL"].removesuffix("/api"),
            "api_url": os.environ["PREFECT_API_URL"],
            "pid": None,
            "external": True,
        }
    if not external("MLFLOW_TRACKING_URI"):
        port = free_port(mlflow_port)
        url = f"http://127.0.0.1:{port}"
        proc = _spawn(
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{home.mlflow_dir / 'mlflow.db'}",
                "--default-artifact-root",
                home.artifact_root(),
            ],
            logs / "mlflow.log",
            service_env(home, state),
        )
        state["mlflow"] = {"url": url, "pid": proc.pid, "log": str(logs / "mlflow.log")}
        _wait(f"{url}/health", "MLflow server", timeout, proc, logs / "mlflow.log")
    else:
        state["mlflow"] = {"url": os.environ["MLFLOW_TRACKING_URI"], "pid": None, "external": True}
    env = service_env(home, state)
    from blocks.environment import register_block_types

    _with_env(env, register_block_types)  # the UI offers forms for the stores and endpoints (blocks/)
    if worker:
        from deployments.retrain import ensure_work_pool

        _with_env(env, ensure_work_pool, POOL)
        proc = _spawn(
            [
                str(BIN / "prefect"),
                "worker",
                "start",
                "--pool",
                POOL,
                "--type",
                "process",
                "--name",
                f"flywheel-{socket.gethostname()}",
            ],
            logs / "worker.log",
            env,
        )
        state["worker"] = {"pool": POOL, "pid": proc.pid, "log": str(logs / "worker.log")}


def use(home: Home, state: dict) -> dict:
    """Point this process at the started services, so the flows it runs report to them; returns their
    environment (for child processes such as the gateway)."""
    env = service_env(home, state)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("PREFECT_", "MLFLOW_", "FLYWHEEL_"))})
    configure(home)  # marks the URLs as taken from services.json, not as the user's own; Prefect re-reads them
    return env


def _with_env(env: dict, fn, *args):
    """Call ``fn`` with the services' environment, and give this process its own back afterwards (Prefect's
    settings follow both ways: it may have been imported before the server's URL was known)."""
    saved = dict(os.environ)
    os.environ.update(env)
    refresh_prefect_settings()
    try:
        return fn(*args)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        refresh_prefect_settings()


def stop(home: Home) -> dict:
    state = home.services()
    stopped = []
    for name in ("worker", "mlflow", "prefect"):
        pid = (state.get(name) or {}).get("pid")
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                os.kill(pid, signal.SIGTERM)
            for _ in range(40):
                if not _alive(pid):
                    break
                time.sleep(0.25)
            else:  # no clean exit within 10 s (a loaded machine): kill, and wait until it is really gone
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                for _ in range(40):
                    if not _alive(pid):
                        break
                    time.sleep(0.25)
            stopped.append(name)
    home.state_file.unlink(missing_ok=True)
    return {"stopped": stopped}


def status(home: Home) -> dict:
    state = home.services()
    if not state:
        return {"running": False}
    ok = True
    for name, url in (
        ("prefect", state.get("prefect", {}).get("api_url", "") + "/health"),
        ("mlflow", state.get("mlflow", {}).get("url", "") + "/health"),
    ):
        svc = state.get(name, {})
        if not url.startswith("http"):  # e.g. MLFLOW_TRACKING_URI=sqlite:///...: a store, no server to ask
            svc["healthy"] = bool(svc)
            ok &= svc["healthy"]
            continue
        try:
            svc["healthy"] = httpx.get(url, timeout=3).status_code == 200
        except httpx.HTTPError:
            svc["healthy"] = False
        ok &= svc["healthy"]
    if "worker" in state:
        state["worker"]["healthy"] = _alive(state["worker"].get("pid"))
        ok &= state["worker"]["healthy"]
    state["running"] = ok
    return state
