"""KB refresh wiring: the ingest and curate tasks announce each new Dataset (``flywheel.dataset.created`` on
``flywheel.dataset.<name>``), and the refresh deployment's trigger watches exactly that resource and hands the
new Dataset's path to the kb-build flow (whose incremental rebuild is tested in test_kb.py)."""

import prefect.events

from deployments.kb import EVENT, SOURCE, refresh_trigger
from flywheel.rag.config import KbConfig
from tasks.events import dataset_created


def test_a_new_dataset_is_announced_on_its_own_resource(monkeypatch):
    sent = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kw: sent.append(kw))
    dataset_created({"name": "policies", "digest": "abc", "rows": 12, "path": "/data/policies/abc"}, "ingest")
    (ev,) = sent
    assert ev["event"] == EVENT == "flywheel.dataset.created"
    assert ev["resource"]["prefect.resource.id"] == "flywheel.dataset.policies"
    assert ev["payload"] == {"path": "/data/policies/abc", "digest": "abc", "rows": 12, "stage": "ingest"}


def test_the_refresh_trigger_watches_the_dataset_and_passes_its_path():
    t = refresh_trigger("policies", "/kb", KbConfig(bm25_weight=0.6), "policies")
    assert t.expect == {EVENT} and t.match.root["prefect.resource.id"] == "flywheel.dataset.policies"
    assert t.parameters["source"] == SOURCE == "{{ event.payload.path | string }}"  # `| string`: DESIGN.md
    assert t.parameters["kb_dir"] == "/kb" and t.parameters["config"]["bm25_weight"] == 0.6
    assert t.threshold == 1 and t.posture == "Reactive"
