"""The gateway under load, with an engine that costs nothing, so what is measured is the gateway itself: routing,
validation, auth, rate limits, the interaction commit, the feedback commit + outbox, metrics.

    OMP_NUM_THREADS=1 python -m bench.gateway_load [--clients 50] [--seconds 60] [--kill]

A gateway process (uvicorn, the real ``create_app`` + ``GatewayService`` on a SQLite store in a temp dir, an
in-process engine that answers at once) and one client process with ``--clients`` asyncio clients, each looping
``chat.completions`` -> ``feedback`` for ``--seconds``. Prints requests/s, errors, client-side latency, and the
gateway's own added latency per request (client latency - the engine time the gateway reports in
``flywheel.engine_ms``), p50/p99 — first with one client (the latency the gateway adds), then under load
(where the latency is mostly queueing for the cores); then checks that the store holds every acknowledged
interaction and feedback.
``--kill``: ``kill -9`` the gateway at half time, restart it, and check again (the outbox is delivered to a
recording sink after the restart).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class InstantEngine:
    """Answers at once: the benchmark measures the gateway, not a model."""

    model_version = "1"

    def generate(self, req):
        from flywheel.serving.engine import Generation

        return Generation("LEGIT: no fraud rule applies", 40, 8, "stop")

    def stream(self, req):
        yield "LEGIT: no fraud rule applies"
        yield self.generate(req)

    def queue_depth(self):
        return 0

    def close(self):
        pass


class CountingSink:
    def __init__(self):
        self.n = 0

    def send(self, events):
        self.n += len(events)


def serve(port: int, db: str) -> None:
    import uvicorn

    from flywheel.feedback.store import FeedbackStore
    from flywheel.serving.config import CacheConfig, GatewaySettings
    from flywheel.serving.router import create_app
    from flywheel.serving.service import GatewayService, Served

    # without the response cache (and rails): the gateway's own path to the engine
    settings = GatewaySettings(workloads=["fraud"], reload_interval_s=3600, cache=CacheConfig(mode="off"))
    service = GatewayService(
        settings,
        FeedbackStore(f"sqlite:///{db}"),
        lambda w: Served("", None, "1"),
        sink=CountingSink(),
        engine_factory=lambda w, s: InstantEngine(),
    ).start()
    uvicorn.run(create_app(settings, service), host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def client_loop(url: str, until: float, acked: dict, lat: list, over: list, errors: list) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        i = 0
        while time.monotonic() < until:
            i += 1
            try:
                t0 = time.perf_counter()
                r = await c.post(
                    "/v1/chat/completions",
                    json={"model": "fraud", "messages": [{"role": "user", "content": f"txn {i}"}], "max_tokens": 8},
                )
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    errors.append(r.status_code)
                    continue
                body = r.json()
                lat.append(dt)
                over.append(dt - body["flywheel"]["engine_ms"] / 1000)
                acked["interactions"].append(body["id"])
                f = await c.post("/v1/feedback", json={"id": body["id"], "rating": 1})
                if f.status_code == 200:
                    acked["feedback"].append(body["id"])
                else:
                    errors.append(f.status_code)
            except httpx.HTTPError as e:
                errors.append(type(e).__name__)
                await asyncio.sleep(0.05)


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=1000)[int(q * 1000) - 1] if len(xs) > 1 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--kill", action="store_true")
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        return serve(int(a.serve[0]), a.serve[1])

    import httpx

    from flywheel.feedback.store import FeedbackStore

    tmp = Path(tempfile.mkdtemp(prefix="gw-load-"))
    db = tmp / "fb.db"
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    def start():
        p = subprocess.Popen([sys.executable, "-m", "bench.gateway_load", "--serve", str(port), str(db)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return p
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit("gateway did not start")

    gw = start()
    acked, lat, over, errors = {"interactions": [], "feedback": []}, [], [], []

    async def run(seconds: float, clients: int = a.clients):
        until = time.monotonic() + seconds
        await asyncio.gather(*(client_loop(url, until, acked, lat, over, errors) for _ in range(clients)))

    # The HTTP floor: the same client and server answering GET /healthz (no body, no store, no engine).
    async def floor(seconds: float) -> list[float]:
        out, until = [], time.monotonic() + seconds
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            while time.monotonic() < until:
                t0 = time.perf_counter()
                await c.get("/healthz")
                out.append(time.perf_counter() - t0)
        return out

    hz = asyncio.run(floor(min(5.0, a.seconds)))
    print(f"HTTP floor (GET /healthz, 1 client): p50 {pct(hz, 0.5) * 1000:.2f} ms p99 {pct(hz, 0.99) * 1000:.2f} ms")
    # The gateway's added latency without queueing: one client, one request at a time.
    asyncio.run(run(min(10.0, a.seconds), clients=1))
    print(
        f"1 client: {len(lat)} answers; client latency p50 {pct(lat, 0.5) * 1000:.2f} ms p99 "
        f"{pct(lat, 0.99) * 1000:.2f} ms; gateway's own (client - engine) p50 {pct(over, 0.5) * 1000:.2f} ms "
        f"p99 {pct(over, 0.99) * 1000:.2f} ms"
    )
    lat.clear()
    over.clear()
    # The store check below is about the load phase; the single-client phase's rows stay in the store.
    acked["interactions"].clear()
    acked["feedback"].clear()

    t0 = time.perf_counter()
    if a.kill:

        async def with_kill():
            task = asyncio.create_task(run(a.seconds))
            await asyncio.sleep(a.seconds / 2)
            gw.send_signal(signal.SIGKILL)
            gw.wait()
            print(f"kill -9 at {a.seconds / 2:.0f} s; restarting")
            globals()["_restarted"] = await asyncio.to_thread(start)
            await task

        asyncio.run(with_kill())
        gw = globals()["_restarted"]
    else:
        asyncio.run(run(a.seconds))
    wall = time.perf_counter() - t0
    time.sleep(1)
    store = FeedbackStore(f"sqlite:///{db}")
    deadline = time.monotonic() + 30
    while store.outbox_counts()["pending"] and time.monotonic() < deadline:
        time.sleep(0.2)
    gw.terminate()
    gw.wait()
    ids = {r["id"]: r for r in store.list("fraud")}
    missing = [i for i in acked["interactions"] if i not in ids]
    rated = {i for i, r in ids.items() if r["rating"] is not None}
    n_fb = len(acked["feedback"])
    print(f"clients {a.clients}, {wall:.0f} s, {len(lat)} answers ({len(lat) / wall:.0f}/s) + {n_fb} feedback")
    print(f"errors: {len(errors)} {sorted(set(map(str, errors)))}")
    print(
        f"{a.clients} clients: client latency p50 {pct(lat, 0.5) * 1000:.2f} ms  p99 {pct(lat, 0.99) * 1000:.2f} ms "
        f"(queueing for {os.cpu_count()} cores included); gateway's own (client - engine) p50 "
        f"{pct(over, 0.5) * 1000:.2f} ms  p99 {pct(over, 0.99) * 1000:.2f} ms"
    )
    print(
        f"acknowledged answers missing from the store: {len(missing)}; acknowledged feedback not stored: "
        f"{len(set(acked['feedback']) - rated)}; feedback rows {store.counts()['feedback']} (both phases), "
        f"acknowledged under load {len(set(acked['feedback']))}; outbox {store.outbox_counts()}"
    )
    print(f"machine: {os.cpu_count()} cores; date {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
