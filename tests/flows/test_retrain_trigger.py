"""The feedback automation really fires: N feedback events -> a run of the retrain deployment."""

import time
import uuid

from flywheel.core.config import RetrainConfig, load_workload
from tests.unit.test_house_rules import ROOT


def test_n_feedback_events_create_a_retrain_flow_run(prefect_api):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from deployments.retrain import apply

    cfg = load_workload(ROOT / "configs/workloads/fraud.yaml").model_copy(
        update={"name": f"trig{uuid.uuid4().hex[:6]}", "retrain": RetrainConfig(feedback_threshold=3)})
    dep_id = apply(cfg, str(ROOT / "configs/workloads/fraud.yaml"))
    with get_client(sync_client=True) as client:
        dep = client.read_deployment(dep_id)
        assert dep.work_pool_name == "flywheel-process" and dep.entrypoint == "flows.retrain.retrain"
        # The automation needs a moment to be loaded by the triggers service.
        time.sleep(2)

        def runs():
            return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep_id])))

        resource = {"prefect.resource.id": f"flywheel.workload.{cfg.name}", "flywheel.workload": cfg.name}
        emitted = []
        for i in range(2):
            emitted.append(emit_event("flywheel.feedback.received", resource=resource, payload={"i": i}))
        EventsWorker.drain_all(timeout=10)
        time.sleep(4)
        assert runs() == [], "two events are below the threshold of three"
        # an event of another workload does not count
        emit_event("flywheel.feedback.received", resource={"prefect.resource.id": "flywheel.workload.other"})
        EventsWorker.drain_all(timeout=10)
        time.sleep(3)
        assert runs() == []
        emitted.append(emit_event("flywheel.feedback.received", resource=resource, payload={"i": 2}))
        EventsWorker.drain_all(timeout=10)
        deadline = time.monotonic() + 60
        while not runs() and time.monotonic() < deadline:
            time.sleep(1)
        found = runs()
    assert len(found) == 1
    params = found[0].parameters
    assert params["workload"] == cfg.name and params["config_path"].endswith("fraud.yaml")
    assert params["trigger_event"] == str(emitted[-1].id)  # the event that crossed the threshold
