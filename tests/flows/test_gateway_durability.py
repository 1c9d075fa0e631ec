"""Durable capture under load: the real `flywheel serve` process (an upstream engine: the fake OpenAI server, so
the engine is fast and the gateway is what is tested), concurrent clients sending answers and feedback,
``kill -9`` in the middle, a restart: every acknowledged interaction and feedback is in the store, and the
restarted gateway's outbox relay delivers every feedback event to the Prefect API."""

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import yaml

from flywheel.feedback.store import FeedbackStore

CLIENTS = 8


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the process exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready in {timeout}s")


def _load(url: str, stop: threading.Event, acked: dict, errors: list) -> None:
    """Answer + feedback in a loop; only 200 responses count as acknowledged."""
    with httpx.Client(base_url=url, timeout=10) as c:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = c.post(
                    "/v1/chat/completions",
                    json={"model": "fraud", "messages": [{"role": "user", "content": f"txn {i}"}], "max_tokens": 8},
                )
                if r.status_code != 200:
                    errors.append(r.status_code)
                    continue
                iid = r.json()["id"]
                acked["interactions"].append(iid)
                f = c.post("/v1/feedback", json={"id": iid, "rating": 1 if i % 3 else -1})
                if f.status_code == 200:
                    acked["feedback"].append(iid)
                else:
                    errors.append(f.status_code)
            except httpx.HTTPError as e:  # the gateway was killed: nothing was acknowledged for this request
                errors.append(type(e).__name__)
                time.sleep(0.05)


def test_kill_9_under_load_loses_nothing_acknowledged(prefect_api, tmp_path, root):
    home = tmp_path / "home"
    upstream_port, gw_port = _port(), _port()
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "workloads": ["fraud"],
                "engine": "upstream",
                "upstream_url": f"http://127.0.0.1:{upstream_port}",
                "port": gw_port,
                "reload_interval_s": 3600,
                "cache": {"mode": "off"},  # every request reaches the engine (the cache is tested on its own)
            }
        )
    )
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "FLYWHEEL_HOME": str(home), "PREFECT_API_URL": PREFECT_API_URL.value()}
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_openai", "--port", str(upstream_port)], cwd=root)

    def gateway():
        log = open(tmp_path / "gateway.log", "a")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--config", str(cfg)], cwd=root, env=env, stdout=log, stderr=log
        )

    url = f"http://127.0.0.1:{gw_port}"
    gw = gateway()
    acked, errors = {"interactions": [], "feedback": []}, []
    try:
        _wait_ready(url + "/readyz", gw)
        stop = threading.Event()
        clients = [threading.Thread(target=_load, args=(url, stop, acked, errors)) for _ in range(CLIENTS)]
        for t in clients:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked["feedback"]) < 100:  # under load for real before the kill
            assert time.monotonic() < deadline, (acked, errors)
            time.sleep(0.05)
        gw.send_signal(signal.SIGKILL)
        gw.wait(10)
        before_kill = len(acked["feedback"])
        gw = gateway()
        _wait_ready(url + "/readyz", gw)
        deadline = time.monotonic() + 60
        while len(acked["feedback"]) < before_kill + 50:  # and again after the restart
            assert time.monotonic() < deadline, (acked, errors)
            time.sleep(0.05)
        stop.set()
        for t in clients:
            t.join(15)
        store = FeedbackStore(f"sqlite:///{home / 'feedback.db'}")
        deadline = time.monotonic() + 60
        while store.outbox_counts()["pending"]:  # the restarted relay delivers what the killed one left
            assert time.monotonic() < deadline, store.outbox_counts()
            time.sleep(0.1)
    finally:
        for p in (gw, fake):
            p.terminate()
            p.wait(15)
    missing = [i for i in acked["interactions"] if not _exists(store, i)]
    assert missing == [], f"{len(missing)} acknowledged answers are not in the store"
    rated = {r["id"] for r in store.list("fraud", with_feedback=True)}
    assert set(acked["feedback"]) <= rated  # every acknowledged feedback is stored
    assert store.outbox_counts()["events"] >= len(set(acked["feedback"]))  # each with its event...
    assert store.outbox_counts()["pending"] == 0  # ...delivered to Prefect
    assert [e for e in errors if isinstance(e, int)] == []  # the kill shows as connection errors, nothing else


def _exists(store, iid) -> bool:
    from flywheel.core.errors import UnknownInteraction

    try:
        store.get(iid)
        return True
    except UnknownInteraction:
        return False
