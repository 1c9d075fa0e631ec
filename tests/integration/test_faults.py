"""Operations under faults, on real services: `flywheel server start` (a Prefect server on SQLite, an MLflow server,
a process worker), `flywheel deploy`, the gateway over HTTP, and feedback bursts through it. One scenario, in order:

1. cycle 1 registers the champion; `flywheel deploy --crash-after 60`;
2. burst 1 (4 rated answers through the gateway) starts retrain R1 — the delay from the 4th feedback's
   acknowledgement to R1 Running is measured;
3. once R1 wrote a checkpoint, its worker and the run's process are killed (SIGKILL, as a machine dies): the
   champion is untouched, the zombie watch marks R1 Crashed with the reason, and the deployment's recovery trigger
   starts R1' (``resume_of`` = R1);
4. a new worker picks R1' up: it reads R1's trigger and watermark and continues R1's training from its checkpoint;
5. burst 2 arrives while R1' trains: its retrain R2 waits (never two retrains Running at once);
6. the Prefect server is killed while R1' trains and started again on the same database: R1' finishes with a gate
   decision (a task that starts while the server is away fails the run: Prefect asks the server for the task's
   tag concurrency slots without retrying a refused connection; the retrain's flow retry continues its training
   from the checkpoint), R2 runs after it, and no flow-run record is lost (R1 Crashed, R1' and R2 Completed,
   their task runs).

The model is the tiny generated Llama (a test needs training that lasts seconds, and a step count it can kill in
the middle of); the real SmolLM2 closes the same loop in test_demo.py. Slow (about 5 minutes): marker
`integration`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration


def _wait(what: str, fn, timeout: float, every: float = 0.5):
    """Poll ``fn`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and everything below it (what a dead machine does to them)."""
    for p in [pid, *_descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def site(tmp_path_factory, root, tiny_model):
    """A home with the services running, cycle 1 done and the workload deployed."""
    from flywheel.core.home import Home

    tmp = tmp_path_factory.mktemp("faults")
    spec = yaml.safe_load((root / "configs/workloads/fraud.yaml").read_text())
    spec["sft"].update(base_model=str(tiny_model), max_steps=8, batch_size=4, learning_rate=1e-2, checkpoint_every=10)
    spec["data"].update(n_train=80, n_test=24, n_traffic=4, traffic_rounds=1)
    spec["eval"].update(max_examples=24, bootstrap=200)
    spec["retrain"].update(feedback_threshold=4, within_seconds=0, resume_crashed=1)
    spec.pop("kb", None)
    workload = tmp / "fraud.yaml"
    workload.write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(FLYWHEEL_HOME=str(tmp / "home"))
    home = Home.resolve(tmp / "home")

    def cli(*args, timeout=900):
        out = subprocess.run([sys.executable, "-m", "cli", *map(str, args)], cwd=root, env=env,
                             capture_output=True, text=True, timeout=timeout)  # fmt: skip
        assert out.returncode == 0, f"flywheel {' '.join(map(str, args))}: {out.stderr[-3000:]}"
        return out.stdout

    try:
        cli("server", "start")
        state = home.services()
        from cli import server

        services = server.service_env(home, state)
        from examples.sample import write_sample_data
        from flywheel.core.workload import load_workload

        cfg = load_workload(workload)
        write_sample_data(cfg, home.data / cfg.name)
        first = json.loads(cli("run", "--workload", workload, "--json"))
        # the retrains (which read the config at run time) train 1,200 steps (~50 s): long enough to be killed
        spec["sft"].update(max_steps=1200, epochs=None)
        workload.write_text(yaml.safe_dump(spec))
        cfg = load_workload(workload)
        cli("deploy", "--workload", workload, "--crash-after", "60")  # 30 s heartbeats: one may be late on 2 cores
        yield {"home": home, "env": env, "services": services, "cfg": cfg, "cycle_1": first, "cli": cli,
               "state": state, "root": root}  # fmt: skip
    finally:
        subprocess.run([sys.executable, "-m", "cli", "server", "stop"], cwd=root, env=env, capture_output=True)


def test_a_dead_worker_and_a_dead_server_lose_nothing(site):
    import httpx

    from cli.demo import _start_gateway, simulate_traffic
    from flywheel.registry.mlflow_registry import Registry
    from flywheel.serving.config import GatewaySettings

    home, services, cfg, state = site["home"], site["services"], site["cfg"], site["state"]
    api = services["PREFECT_API_URL"]
    http = httpx.Client(base_url=api, timeout=10)
    reg = Registry(services["MLFLOW_TRACKING_URI"], home.artifact_root())
    champion = reg.champion(cfg.name).version

    def runs() -> dict[str, dict]:
        """The retrain runs of the deployment, oldest first (by id -> run)."""
        try:
            body = {"flows": {"name": {"any_": ["retrain"]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 50}
            return {r["id"]: r for r in http.post("/flow_runs/filter", json=body).json()}
        except httpx.HTTPError:
            return {}  # the server is down: ask again

    running_at_once = []  # every poll: how many retrains were Running together

    def watch() -> dict[str, dict]:
        now = runs()
        running_at_once.append(sum(1 for r in now.values() if r["state_type"] == "RUNNING"))
        return now

    gw, gw_url = _start_gateway(home, GatewaySettings(workloads=[cfg.name], reload_interval_s=2), services)
    worker = state["worker"]["pid"]
    try:
        # 2. burst 1 starts R1
        burst1 = simulate_traffic(gw_url, cfg, 4, seed=11)
        r1 = _wait("retrain R1 Running", lambda: next((r for r in watch().values()
                                                       if r["state_type"] == "RUNNING"), None), 120)  # fmt: skip
        from datetime import datetime

        to_running = datetime.fromisoformat(r1["start_time"]).timestamp() - burst1["feedback_at"][-1]
        print(f"feedback_to_running_s={to_running:.1f}")
        assert r1["parameters"]["watermark"] == "4" and 0 < to_running < 60

        # 3. R1 wrote a checkpoint: kill its worker and the run (the machine dies)
        run_id = _wait("R1's MLflow run", lambda: reg.cycle_run_of(cfg.name, r1["id"]), 240)[0]
        run_dir = home.runs / run_id
        _wait("R1's first checkpoint", lambda: sorted(run_dir.glob("checkpoints/step-*")), 240)
        _kill_tree(worker)
        assert reg.champion(cfg.name).version == champion  # untouched
        crashed = _wait("R1 Crashed by the zombie watch",
                        lambda: (r := watch().get(r1["id"])) and r["state_type"] == "CRASHED" and r, 150)  # fmt: skip
        assert "no heartbeat for 60 s" in crashed["state"]["message"]
        assert reg.champion(cfg.name).version == champion
        rerun = _wait("the recovery trigger's rerun of R1",
                      lambda: next((r for r in watch().values()
                                    if r["parameters"].get("resume_of") == f"prefect.flow-run.{r1['id']}"), None),
                      60)  # fmt: skip

        # 4. a new worker picks the rerun up; it continues R1's training from the checkpoint
        log = (home.logs / "worker-2.log").open("ab")
        worker = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool",
                                   state["worker"]["pool"], "--type", "process"], env=services, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True).pid  # fmt: skip
        _wait("the rerun Running", lambda: watch().get(rerun["id"], {}).get("state_type") == "RUNNING", 180)

        # 5. burst 2 while it trains: its retrain waits
        simulate_traffic(gw_url, cfg, 4, seed=12)
        r2 = _wait(
            "retrain R2 created",
            lambda: next((r for r in watch().values() if r["parameters"].get("watermark") == "8"), None),
            60,
        )
        assert watch()[r2["id"]]["state_type"] in ("SCHEDULED", "PENDING")  # the rerun holds the deployment's slot

        # 6. the Prefect server dies while the rerun trains, and comes back on the same database
        assert watch()[rerun["id"]]["state_type"] == "RUNNING"
        prefect_pid = state["prefect"]["pid"]
        os.killpg(prefect_pid, signal.SIGKILL)
        _wait("the server down", lambda: not runs(), 30)
        port = state["prefect"]["url"].rsplit(":", 1)[1]
        env = {**services, "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": port}
        restarted = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
                                      "127.0.0.1", "--port", port], env=env, stdout=(home.logs / "prefect-2.log")
                                     .open("ab"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            _wait("the server back", runs, 120)
            done = _wait("the rerun and R2 finished",
                         lambda: (now := watch()) and all(now.get(i, {}).get("state_type") in
                                                          ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")
                                                          for i in (rerun["id"], r2["id"])) and now, 600)  # fmt: skip
            records = {i: _records(http, i) for i in (rerun["id"], r2["id"])}  # from the restarted server
        finally:
            os.killpg(restarted.pid, signal.SIGTERM)
            restarted.wait(timeout=60)
    finally:
        _kill_tree(worker)
        os.killpg(gw.pid, signal.SIGTERM)
        gw.wait(timeout=30)

    assert max(running_at_once) == 1  # never two retrains training at once
    states = {i: done[i]["state_type"] for i in (r1["id"], rerun["id"], r2["id"])}
    assert states == {r1["id"]: "CRASHED", rerun["id"]: "COMPLETED", r2["id"]: "COMPLETED"}, {
        i: done[i]["state"]["message"] for i in states
    }
    # the rerun continued R1's MLflow run from its checkpoint, and ended with a gate decision
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["trigger"] == r1["parameters"]["trigger_event"]
    assert summary["data"]["sft_plan"]["watermark"] == 4 and summary["gate"]["promote"] in (True, False)
    assert summary["training"]["steps"] == 1200
    resumed = re.findall(rf"resuming from {re.escape(str(run_dir))}/checkpoints/step-(\d+) \(step (\d+)\)",
                         (home.logs / "worker-2.log").read_text())  # fmt: skip
    assert resumed and all(int(a) == int(b) >= 10 for a, b in resumed)  # not from step 0
    print(f"resumed_from_step={resumed[0][0]}")
    # no record lost: each run's subflows (cycle, train, evaluate) and their task runs, on the restarted server
    for i, (flows, tasks) in records.items():
        assert {"flywheel", "train", "evaluate"} <= set(flows.values()), (i, flows)
        assert {"train-sft", "register-candidate", "mark-feedback-consumed"} <= tasks, (i, tasks)


def _records(http, flow_run_id: str) -> tuple[dict[str, str], set[str]]:
    """(subflow id -> flow name, names of the Completed task runs) under a flow run, from the Prefect API."""
    flow_names = {f["id"]: f["name"] for f in http.post("/flows/filter", json={}).json()}
    subflows, todo = {}, [flow_run_id]
    while todo:
        kids = http.post("/flow_runs/filter", json={"flow_runs": {"parent_flow_run_id": {"any_": todo}}}).json()
        todo = [k["id"] for k in kids if k["id"] not in subflows]
        subflows |= {k["id"]: flow_names.get(k["flow_id"], "?") for k in kids}
    runs = http.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id, *subflows]}},
                                                "limit": 200}).json()  # fmt: skip
    return subflows, {t["name"].rsplit("-", 1)[0] for t in runs if t["state_type"] == "COMPLETED"}
