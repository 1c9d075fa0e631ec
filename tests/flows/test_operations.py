"""Operations on a real Prefect server (the session's test harness, no worker): `flywheel deploy` registers the
retrain (feedback + drift triggers, one run at a time), the scheduled drift check, the KB refresh and the
one-training-at-a-time limit, and a second run changes nothing; the drift-check flow emits
`flywheel.drift.detected` from a store whose traffic drifted; a retrain over its daily budget is refused."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import update


def _workload_yaml(root, tmp_path, **retrain) -> tuple[str, str]:
    spec = yaml.safe_load((root / "configs/workloads/fraud.yaml").read_text())
    name = f"ops{uuid.uuid4().hex[:6]}"  # its own resource: no other test's fraud events reach its triggers
    spec["name"] = name
    spec["retrain"] = {**spec.get("retrain", {}), **retrain}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return name, str(path)


def test_deploy_registers_every_deployment_and_is_idempotent(prefect_api, root, tmp_path, cli):
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    name, path = _workload_yaml(root, tmp_path, on_busy="drop")
    env = {"FLYWHEEL_HOME": str(tmp_path / "home"), "PREFECT_API_URL": PREFECT_API_URL.value()}
    first = cli("deploy", "--workload", path, "--json", env=env)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert set(out["deployments"]) == {f"retrain/retrain-{name}", f"drift-check/drift-{name}",
                                       f"kb-build/kb-{name}-refresh", f"refresh-data/nightly-{name}",
                                       f"evaluate-champion/weekly-{name}"}  # fmt: skip
    again = json.loads(cli("deploy", "--workload", path, "--json", env=env).stdout)
    assert again["deployments"] == out["deployments"]  # the same deployments, updated in place
    with get_client(sync_client=True) as client:
        retrain = client.read_deployment(out["deployments"][f"retrain/retrain-{name}"])
        assert retrain.global_concurrency_limit.limit == 1
        assert retrain.concurrency_options.collision_strategy.value == "CANCEL_NEW"  # on_busy: drop
        drift = client.read_deployment(out["deployments"][f"drift-check/drift-{name}"])
        assert [s.schedule.cron for s in drift.schedules] == ["0 * * * *"]
        assert drift.parameters["workload"] == name
        crons = {d: [s.schedule.cron for s in client.read_deployment(out["deployments"][d]).schedules]
                 for d in (f"refresh-data/nightly-{name}", f"evaluate-champion/weekly-{name}")}  # fmt: skip
        assert crons == {
            f"refresh-data/nightly-{name}": ["0 2 * * *"],
            f"evaluate-champion/weekly-{name}": ["0 3 * * 1"],
        }
        limit = client.read_global_concurrency_limit_by_name("flywheel-training")
        assert limit.limit == 1
        everything = client.read_automations()
        automations = [a for a in everything if a.name.startswith(f"retrain-{name}-")]
        zombie = [a for a in everything if a.name == "flywheel-crash-zombie-runs"]
    assert sorted(a.name for a in automations) == [
        f"retrain-{name}-after-crash", f"retrain-{name}-on-drift", f"retrain-{name}-on-feedback"
    ]  # fmt: skip
    assert len(zombie) == 1 and zombie[0].trigger.posture == "Proactive"  # replaced on the second deploy, not doubled
    assert zombie[0].actions[0].state == "CRASHED" and "no heartbeat for 90 s" in zombie[0].actions[0].message
    expects = sorted(e for a in automations for e in a.trigger.expect)
    assert expects == ["flywheel.drift.detected", "flywheel.feedback.received", "prefect.flow-run.Crashed"]
    recovery = next(a for a in automations if a.name.endswith("-after-crash"))
    assert recovery.actions[0].parameters["resume_of"] == "{{ event.resource.id }}"
    assert recovery.trigger.match_related.model_dump() == {"prefect.resource.role": "deployment",
                                                    "prefect.resource.name": f"retrain-{name}"}  # fmt: skip
    short = cli("deploy", "--workload", path, "--crash-after", "20", env=env)
    assert short.returncode != 0 and "--crash-after" in short.stderr  # must exceed the 30 s heartbeat


def test_drift_check_emits_the_event_when_traffic_drifted(prefect_api, tmp_path, monkeypatch, root):
    import tasks.drift
    from flows.drift import drift_check
    from flywheel.core.home import Home
    from flywheel.feedback.store import FeedbackStore, interactions

    name, path = _workload_yaml(root, tmp_path)
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    store = FeedbackStore(Home.resolve().database_url())
    now = datetime.now(UTC)
    for i in range(120):  # the week before: 54 of 60 positive; the last day: 30 of 60
        iid = store.log_interaction(workload=name, model=name, messages=[{"role": "user", "content": f"t{i}"}],
                                    response="LEGIT: ok", latency_ms=1.0)  # fmt: skip
        recent = i >= 60
        store.add_feedback(iid, 1 if (i % 60) < (30 if recent else 54) else -1)
        with store.engine.begin() as c:
            ts = now - timedelta(hours=2 if recent else 48)
            c.execute(update(interactions).where(interactions.c.id == iid).values(ts=ts))
    sent = []
    monkeypatch.setattr(tasks.drift, "emit", lambda event, workload, payload: sent.append((event, workload, payload)))
    report = drift_check(name, path)
    assert report["drift"] is True
    ((event, workload, payload),) = sent
    assert event == "flywheel.drift.detected" and workload == name
    assert [s["signal"] for s in payload["signals"]] == ["positive_rate", "live_accuracy"]


def test_a_retrain_over_its_daily_budget_is_refused_with_the_reason(prefect_api, tmp_path, root):
    from flows.retrain import retrain

    name, path = _workload_yaml(root, tmp_path, max_runs_per_day=0)
    state = retrain(name, path, return_state=True)
    assert state.is_cancelled()
    assert state.message == f"daily budget: 0 of 0 retrains of {name} in the last 24 h; this one is not started"


def test_the_budget_counts_the_workloads_retrains_of_the_last_day(prefect_api, tmp_path, root):
    from prefect import get_client
    from prefect.states import Running

    from flows.retrain import retrain

    name, path = _workload_yaml(root, tmp_path, max_runs_per_day=1)
    with get_client(sync_client=True) as client:  # a retrain of this workload already running, one of another
        client.create_flow_run(retrain, parameters={"workload": name}, state=Running())
        client.create_flow_run(retrain, parameters={"workload": "someone-else"}, state=Running())
    state = retrain(name, path, return_state=True)
    assert state.is_cancelled() and state.message.startswith(f"daily budget: 1 of 1 retrains of {name}")


def test_the_budget_counts_minutes_of_retraining(prefect_api, tmp_path, root):
    from prefect import get_client
    from prefect.states import Running

    from flows.retrain import retrain
    from flywheel.feedback.config import RetrainConfig

    rc = RetrainConfig(max_runs_per_day=4, max_minutes_per_day=60)
    assert rc.refusal("w", {"runs": 3, "minutes": 59.5}) is None
    assert rc.refusal("w", {"runs": 3, "minutes": 60.0}) == (
        "daily budget: 60 of 60 minutes of retraining w in the last 24 h; this one is not started"
    )
    name, path = _workload_yaml(root, tmp_path, max_minutes_per_day=0.0001)  # 6 ms: any running retrain spends it
    with get_client(sync_client=True) as client:
        client.create_flow_run(retrain, parameters={"workload": name}, state=Running())
    state = retrain(name, path, return_state=True)
    assert state.is_cancelled() and "minutes of retraining" in state.message, state.message


def _crashed_retrain(client, name: str, **parameters) -> str:
    from prefect.states import Crashed

    from flows.retrain import retrain

    run = client.create_flow_run(retrain, parameters={"workload": name, **parameters}, state=Crashed(message="gone"))
    return f"prefect.flow-run.{run.id}"  # as the recovery trigger passes it: the event's resource id


def test_a_rerun_of_a_crash_that_crashed_again_is_not_rerun_past_the_limit(prefect_api, tmp_path, root):
    from prefect import get_client

    from flows.retrain import retrain

    name, path = _workload_yaml(root, tmp_path, resume_crashed=1)
    with get_client(sync_client=True) as client:
        first = _crashed_retrain(client, name, trigger_event="e1", watermark="4")
        second = _crashed_retrain(client, name, resume_of=first)  # the rerun of the first crashed too
    state = retrain(name, path, resume_of=second, return_state=True)
    assert state.is_failed()
    assert "(gone); that is 2 crashes in a row and retrain.resume_crashed is 1: not rerun" in state.message


def test_a_crashed_retrain_whose_feedback_a_later_one_trained_on_is_not_rerun(prefect_api, tmp_path, root):
    import os

    from prefect import get_client

    from flows.retrain import retrain
    from flywheel.core.home import Home
    from flywheel.feedback.store import FeedbackStore

    name, path = _workload_yaml(root, tmp_path)
    FeedbackStore(Home.resolve(os.environ["FLYWHEEL_HOME"]).database_url()).mark_consumed(name, 6, "later-run", 6)
    with get_client(sync_client=True) as client:
        crashed = _crashed_retrain(client, name, trigger_event="e1", watermark="4")
    state = retrain(name, path, resume_of=crashed, return_state=True)
    assert state.is_cancelled() and "(up to 4) was trained on by a later retrain" in state.message


def test_status_shows_the_champion_the_trigger_and_the_deployments(prefect_api, root, tmp_path, cli):
    from prefect.settings import PREFECT_API_URL

    from flywheel.core.home import Home
    from flywheel.feedback.store import FeedbackStore

    name, path = _workload_yaml(root, tmp_path)
    home = tmp_path / "home"
    env = {"FLYWHEEL_HOME": str(home), "PREFECT_API_URL": PREFECT_API_URL.value()}
    store = FeedbackStore(Home.resolve(home).database_url())
    for i in range(5):
        iid = store.log_interaction(workload=name, model=name, messages=[{"role": "user", "content": f"t{i}"}],
                                    response="LEGIT: ok", latency_ms=1.0)  # fmt: skip
        store.add_feedback(iid, 1 if i else -1, "FRAUD: velocity" if not i else None)
    assert cli("deploy", "--workload", path, env=env).returncode == 0
    out = cli("status", "--workload", path, "--json", env=env)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["champion"] is None and s["challenger"] is None  # nothing trained or served yet
    assert s["feedback"]["feedback"] == 5 and s["feedback"]["corrections"] == 1
    assert s["trigger"] == {"new_feedback": 5, "threshold": 40}
    deps = {d["deployment"]: d for d in s["deployments"]}
    assert set(deps) == {f"retrain/retrain-{name}", f"drift-check/drift-{name}", f"kb-build/kb-{name}-refresh",
                         f"refresh-data/nightly-{name}", f"evaluate-champion/weekly-{name}"}  # fmt: skip
    assert deps[f"retrain/retrain-{name}"]["last_run"] is None
    assert s["budget"] == {
        "max_runs_per_day": None, "max_minutes_per_day": None, "retrains_last_24h": 0, "minutes_last_24h": 0
    }  # fmt: skip
    text = cli("status", "--workload", path, env=env).stdout
    assert "trigger     5 of 40 new feedback" in text and "champion    none" in text
    assert "budget      0 retrains (no limit), 0 minutes in the last 24 h" in text
    down = cli("status", "--workload", path, "--json", env={**env, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert down.returncode == 0 and "Prefect unreachable" in json.loads(down.stdout)["deployments"]["error"]


def test_the_kubernetes_work_pool_template_passes_the_kubernetes_workers_own_validation(prefect_api, root):
    """prefect-kubernetes' job configuration renders and validates the template (it refused one without
    completions/parallelism); the GPU job asks for nvidia.com/gpu, lands on GPU nodes and tolerates their taint.
    Validated here; no Kubernetes cluster was run."""
    import asyncio

    from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

    tpl = json.loads((root / "deployments/work-pools/kubernetes.json").read_text())
    cfg = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(tpl, {"name": "retrain-fraud"}))
    pod = cfg.job_manifest["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu" and cfg.namespace == "flywheel"
    assert cfg.env["MLFLOW_TRACKING_URI"].startswith("http://mlflow")
    ours = set(tpl["variables"]["properties"])
    theirs = set(KubernetesWorker.get_default_base_job_template()["variables"]["properties"])
    assert theirs - ours <= {"backoff_limit", "cpu_limit", "cpu_request", "memory_limit", "memory_request"}


def test_notifications_post_a_refusal_to_the_webhook(prefect_api):
    """The automation runs on the real server: an event it expects reaches a local webhook as a POST."""
    import http.server
    import threading
    import time

    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from deployments.notify import apply

    got = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        first = apply(f"http://127.0.0.1:{server.server_port}/hook", allow_private_urls=True)
        second = apply(f"http://127.0.0.1:{server.server_port}/hook", allow_private_urls=True)  # replaced, not doubled
        assert first["block"] == second["block"] == "custom-webhook/flywheel-notify"
        name = f"ops{uuid.uuid4().hex[:6]}"
        deadline = time.monotonic() + 90
        while not got and time.monotonic() < deadline:  # the triggers service loads new automations in the background
            emit_event("flywheel.model.refused", resource={"prefect.resource.id": f"flywheel.workload.{name}"},
                       payload={"candidate_version": "3", "reasons": ["accuracy below the champion"]})  # fmt: skip
            EventsWorker.drain_all(timeout=10)
            for _ in range(20):
                if got:
                    break
                time.sleep(0.5)
    finally:
        server.shutdown()
    assert got, "no notification reached the webhook"
    assert got[0]["subject"] == f"Flywheel: flywheel.model.refused (flywheel.workload.{name})"
    assert "accuracy below the champion" in got[0]["body"]


def test_a_flow_takes_an_endpoint_block_by_name_wherever_it_takes_a_url(prefect_api, tmp_path):
    """`teacher_url: block:<name>`: the kb-synth flow loads the OpenAIEndpoint block (URL, model, secret key) and
    asks that server; a name with no block behind it fails the run."""
    import pytest
    from pydantic import SecretStr

    from blocks import OpenAIEndpoint
    from examples.policies import write_policies
    from flows.kb import kb_synth
    from flywheel.synth.config import SynthConfig
    from tests.fake_openai import create_fake
    from tests.unit.test_gateway import serving

    write_policies(tmp_path / "pdfs")
    line = "What does the bank reverse? | the provisional credit | section 3"
    fake = create_fake(answers={"teacher-model": line})
    with serving(fake) as url:
        OpenAIEndpoint(base_url=f"{url}/v1", model="teacher-model", api_key=SecretStr("s3cret")).save(
            "teach", overwrite=True
        )
        cfg = SynthConfig(generator="teacher", teacher_url="block:teach")
        res = kb_synth(str(tmp_path / "pdfs" / "chargebacks.pdf"), str(tmp_path / "qa"), cfg, [])
    assert res["total"] >= 1 and res["kept"] == 1  # one passage's pair; the same question again is a duplicate
    assert {r["model"] for r in fake.state.recorded} == {"teacher-model"}  # the block named the model
    with pytest.raises(ValueError):
        kb_synth(str(tmp_path / "pdfs" / "chargebacks.pdf"), str(tmp_path / "qa2"),
                 SynthConfig(generator="teacher", teacher_url="block:nobody", teacher_model="m"), [])  # fmt: skip


def test_a_second_burst_waits_for_the_running_retrain(prefect_api, root, tmp_path):
    """Two triggers in a row on a deployment with the retrain's concurrency settings (a stand-in flow that takes
    the training slot and sleeps, started by a real process worker): the second run waits in
    AwaitingConcurrencySlot and starts only after the first ended — never two at once."""
    import os
    import subprocess
    import sys
    import time

    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    from deployments.retrain import concurrency_for, ensure_training_slot, ensure_work_pool
    from flywheel.core.workload import load_workload
    from tests.slot_flow import hold_training_slot

    pool = f"pool{uuid.uuid4().hex[:6]}"
    ensure_work_pool(pool)
    ensure_training_slot(1)
    cfg = load_workload(root / "configs/workloads/fraud.yaml")  # on_busy: queue
    log = tmp_path / "held.jsonl"
    from prefect.types.entrypoint import EntrypointType

    dep_id = hold_training_slot.to_deployment(
        name="standin", parameters={"log": str(log)}, concurrency_limit=concurrency_for(cfg),
        entrypoint_type=EntrypointType.MODULE_PATH,
    ).apply(work_pool_name=pool)  # fmt: skip
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PYTHONPATH": str(root)}  # the stand-in lives in tests/, which is not installed  # fmt: skip
    worker = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool,
                               "--type", "process"], cwd=root, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        runs = [run_deployment(dep_id, timeout=0) for _ in range(2)]  # the second burst arrives at once
        states = set()
        deadline = time.monotonic() + 180
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                now = [client.read_flow_run(r.id).state for r in runs]
                states |= {s.name for s in now}
                if all(s.is_final() for s in now):
                    break
                time.sleep(0.5)
            final = [client.read_flow_run(r.id).state for r in runs]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert all(s.is_completed() for s in final), [(s.name, s.message) for s in final]
    assert "AwaitingConcurrencySlot" in states  # the second one waited
    held = sorted((json.loads(line) for line in log.read_text().splitlines()), key=lambda h: h["start"])
    assert len(held) == 2 and held[1]["start"] >= held[0]["end"]  # never two at once


def test_a_rerun_reuses_the_crashed_training_run_only_for_the_same_dataset(prefect_api, tmp_path, root):
    """The crashed retrain's MLflow run (found by its flow-run tag) is continued when the rerun built the same SFT
    Dataset; for another digest it is closed (KILLED) and training starts afresh."""
    import os

    from flywheel.core.home import Home
    from flywheel.core.workload import load_workload
    from flywheel.registry.mlflow_registry import Registry
    from tasks.train import crashed_training

    name, path = _workload_yaml(root, tmp_path)
    cfg = load_workload(path)
    home = Home.resolve(os.environ["FLYWHEEL_HOME"])
    reg = Registry(home.tracking_uri(), home.artifact_root())
    ds = tmp_path / "sft-ds"
    ds.mkdir()
    training = {"path": str(ds), "name": f"{name}-sft", "digest": "a" * 64}
    same = reg.open_cycle_run(name, "e1", {}, {"training": training}, flow_run="crashed-1")
    other = reg.open_cycle_run(name, "e2", {}, {"training": training}, flow_run="crashed-2")
    assert crashed_training.fn(cfg, "crashed-1", {"digest": "a" * 64}) == same  # no checkpoint: afresh, same run
    assert crashed_training.fn(cfg, "crashed-2", {"digest": "b" * 64}) is None
    assert reg.client.get_run(other).info.status == "KILLED"
    assert crashed_training.fn(cfg, "never-ran", {"digest": "a" * 64}) is None
