"""The feedback automation really fires: N feedback events -> a run of the retrain deployment. The workload's
events travel as the gateway's do: written to the feedback store's outbox with the feedback, delivered by the
outbox relay to the Prefect API; one is delivered twice (at least once) and still counts once.

No assertion follows a fixed sleep. "No run yet" is checked only after a positive signal that the
triggers service has handled the events before it: a probe deployment with a threshold of one, whose run
for a probe event sent afterwards must exist first (events are handled in arrival order, and a run is
created only after its event was handled).
"""

import time
import uuid

from flywheel.core.workload import load_workload
from flywheel.feedback.config import RetrainConfig


def _probe_deployment(name: str) -> str:
    """A deployment that runs once for every event on resource ``flywheel.workload.<name>`` (threshold 1,
    no window), so each probe event has a run of its own."""
    from datetime import timedelta

    from prefect.events import DeploymentEventTrigger

    from flows.retrain import retrain

    trigger = DeploymentEventTrigger(
        name=f"{name}-each-event",
        enabled=True,
        match={"prefect.resource.id": f"flywheel.workload.{name}"},
        expect={"flywheel.feedback.received"},
        posture="Reactive",
        threshold=1,
        within=timedelta(0),
        parameters={"workload": name, "trigger_event": "{{ event.id | string }}"},
    )
    return str(retrain.to_deployment(name=name, triggers=[trigger]).apply(work_pool_name="flywheel-process"))


def test_n_feedback_events_create_a_retrain_flow_run(prefect_api, root, tmp_path):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from deployments.retrain import apply
    from flywheel.feedback.outbox import OutboxRelay
    from flywheel.feedback.store import FeedbackStore
    from tasks.events import PrefectEventSink

    path = root / "configs/workloads/fraud.yaml"
    base = load_workload(path)
    cfg = base.model_copy(
        update={"name": f"trig{uuid.uuid4().hex[:6]}", "retrain": RetrainConfig(feedback_threshold=3)}
    )
    probe = f"probe{uuid.uuid4().hex[:6]}"
    dep_id, probe_id = apply(cfg, str(path)), _probe_deployment(probe)

    def send(workload, i):  # one at a time, each delivered before the next: the server receives them in order
        event = emit_event(
            "flywheel.feedback.received",
            payload={"i": i, "feedback_seq": 100 + i},  # as the gateway sends it
            resource={"prefect.resource.id": f"flywheel.workload.{workload}"},
        )
        EventsWorker.drain_all(timeout=10)
        return event.id

    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    relay = OutboxRelay(store, PrefectEventSink())
    outbox_rows = []

    def feedback(workload):  # what the gateway does: feedback + its event in one commit, then the relay
        iid = store.log_interaction(
            workload=workload, model=workload, messages=[{"role": "user", "content": "x"}], response="LEGIT: ok",
            latency_ms=1.0,
        )  # fmt: skip
        store.add_feedback(iid, -1, "FRAUD: velocity", emit=True)
        outbox_rows.extend(store.pending_events())
        assert relay.deliver_once() == 1 and store.outbox_counts()["pending"] == 0
        return outbox_rows[-1]["event_id"]

    with get_client(sync_client=True) as client:
        dep = client.read_deployment(dep_id)
        assert dep.work_pool_name == "flywheel-process" and dep.entrypoint == "flows.retrain.retrain"

        def runs(deployment_id):
            return client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )

        def wait_for_run(deployment_id, event, timeout=60):
            """The run that ``event`` started, once it exists (None after ``timeout`` s)."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for run in runs(deployment_id):
                    if run.parameters.get("trigger_event") == str(event):
                        return run
                time.sleep(0.5)
            return None

        # The first probe also waits until the triggers service has loaded the new automations (on SQLite
        # it does so in the background after the commit, with nothing to observe but its effect).
        for attempt in range(30):
            if wait_for_run(probe_id, first_probe := send(probe, attempt), timeout=2):
                break
        else:
            raise AssertionError("the triggers service never ran the probe automation")
        emitted = [feedback(cfg.name), feedback(cfg.name)]
        PrefectEventSink().send(outbox_rows[:1])  # delivered again (a relay killed before mark_delivered)
        assert wait_for_run(probe_id, send(probe, 100)) and runs(dep_id) == [], "two events are below three"
        other = feedback("other")  # an event of another workload does not count
        assert wait_for_run(probe_id, send(probe, 101)) and runs(dep_id) == []
        emitted.append(feedback(cfg.name))
        run = wait_for_run(dep_id, emitted[-1])
        found = runs(dep_id)
    assert first_probe is not None and run is not None and len(found) == 1
    params = found[0].parameters
    assert params["workload"] == cfg.name and params["config_path"].endswith("fraud.yaml")
    assert params["watermark"] == "4"  # the firing event's feedback seq: the retrain reads up to it
    assert params["trigger_event"] == str(emitted[-1]) != str(other)  # the third event crossed the threshold
