"""MLflow registry: base as v1/champion, candidates, promotion history and rollback."""

import json
from pathlib import Path

import pytest

from flywheel.registry.mlflow_registry import Registry


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    d = tmp_path_factory.mktemp("mlflow")
    return Registry(f"sqlite:///{d / 'mlflow.db'}", (d / "artifacts").as_uri())


def _candidate(reg, tmp_path, workload, acc, config=None):
    adapter = tmp_path / f"adapter-{acc}"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(config or {"r": 8}))
    with reg.start_run(workload, "cycle") as run:
        reg.mlflow.log_artifacts(str(adapter), artifact_path="adapter")
        reg.log_dataset(str(tmp_path), "fraud-sft", "abc123" * 6, context="training")
    return reg.register_candidate(workload, run.info.run_id, "adapter", {"metrics": json.dumps({"accuracy": acc})}), run


def test_base_is_version_one_and_champion(reg, tmp_path):
    ref = reg.register_base("w1", "tiny", {"accuracy": 0.5})
    assert ref.version == "1" and ref.is_base and reg.champion("w1").version == "1"
    assert ref.metrics == {"accuracy": 0.5} and ref.source.endswith("/base")
    assert reg.register_base("w1", "tiny", {"accuracy": 0.5}).version == "1"  # idempotent
    with pytest.raises(ValueError, match="base model"):
        reg.local_path(ref, tmp_path)


def test_promote_rollback_and_lineage(reg, tmp_path):
    reg.register_base("w2", "tiny", {"accuracy": 0.5})
    v2, run = _candidate(reg, tmp_path, "w2", 0.7)
    assert reg.get_alias("w2", "challenger").version == "2" and reg.champion("w2").version == "1"
    reg.promote("w2", v2.version)
    v3, _ = _candidate(reg, tmp_path, "w2", 0.8)
    reg.promote("w2", v3.version)
    assert reg.champion("w2").version == "3"
    assert reg.rollback("w2")[1].version == "2"
    assert reg.rollback("w2")[1].version == "1"
    with pytest.raises(LookupError, match="no previous champion"):
        reg.rollback("w2")
    assert reg.rollback("w2", to="3")[1].version == "3"
    # lineage: the run records its training dataset by digest, the version points at the run's adapter
    inputs = reg.client.get_run(run.info.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("fraud-sft", ("abc123" * 6)[:36])]
    local = reg.local_path(reg.version("w2", "2"), tmp_path / "cache")
    assert json.loads((local / "adapter_config.json").read_text()) == {"r": 8}


def test_any_adapter_kind_is_fetched_once_and_unknown_versions_are_not_found(reg, tmp_path):
    """A version with our own adapter files (flywheel_adapter.json, no peft adapter_config.json) is downloaded
    once and then served from the cache; rolling back to a version that does not exist says so."""
    from flywheel.core.errors import NotFound

    reg.register_base("w3", "tiny", {"accuracy": 0.5})
    adapter = tmp_path / "bottleneck"
    adapter.mkdir()
    (adapter / "flywheel_adapter.json").write_text(json.dumps({"method": "adapter"}))
    with reg.start_run("w3", "cycle") as run:
        reg.mlflow.log_artifacts(str(adapter), artifact_path="adapter")
    v2 = reg.register_candidate("w3", run.info.run_id, "adapter", {})
    first = reg.local_path(v2, tmp_path / "cache")
    (first / "flywheel_adapter.json").write_text("{}")  # a second call must not download again
    assert reg.local_path(v2, tmp_path / "cache") == first and (first / "flywheel_adapter.json").read_text() == "{}"
    with pytest.raises(NotFound, match="no version 9"):
        reg.rollback("w3", to="9")


def test_a_cycle_continues_the_champion_or_while_the_base_serves_a_refused_candidate(reg, tmp_path, root):
    """``start_point``: the base model while nothing was trained; the newest *refused* candidate when
    ``continue_refused`` is on and the champion is still the base (a rejected one is not continued); the
    champion's adapter once there is one; the base model when the adapter's rank does not fit the sft config."""
    from flywheel.core.workload import load_workload
    from flywheel.training.continual import start_point

    wl = load_workload(root / "configs/workloads/fraud.yaml").model_copy(deep=True)
    wl.name, wl.sft.lora_r = "w4", 8
    peft_config = {"r": 8, "target_modules": wl.sft.target_modules}
    wl.continual.continue_refused = True
    models = tmp_path / "models"
    reg.register_base("w4", "tiny", {"accuracy": 0.2})
    assert start_point(reg, wl, models) == {
        "init_adapter": None,
        "parent_version": "1",
        "start": "base",
        "why": "the champion is the base model",
    }

    def verdict(version, gate):  # the field of the one ``evaluation`` tag that promotion.record_evaluation writes
        reg.set_tag("w4", version, "evaluation", json.dumps({"gate": gate, "compared_to": "1"}))

    v2, _ = _candidate(reg, tmp_path, "w4", 0.6, peft_config)
    verdict(v2.version, "refused")
    v3, _ = _candidate(reg, tmp_path, "w4", 0.5, peft_config)
    verdict(v3.version, "rejected")  # a person said no: never continued
    got = start_point(reg, wl, models)
    assert (got["start"], got["parent_version"]) == ("candidate v2", "1")
    assert json.loads((Path(got["init_adapter"]) / "adapter_config.json").read_text()) == peft_config
    wl.continual.continue_refused = False
    assert start_point(reg, wl, models)["start"] == "base"
    reg.promote("w4", v2.version)
    assert start_point(reg, wl, models)["start"] == "champion v2"
    wl.sft.lora_r = 16  # another rank: the champion's adapter cannot be continued
    got = start_point(reg, wl, models)
    assert got["start"] == "base" and "does not fit" in got["why"]
    wl.continual.start = "base"
    assert start_point(reg, wl, models)["why"] == "continual.start: base"


def test_the_gateway_serves_a_fresh_workloads_base_model_as_version_one(reg, tmp_path, root, tiny_model):
    """`flywheel serve` before anything is trained: the base model is registered as v1 (champion) and served."""
    from flywheel.core.errors import UnknownModel
    from flywheel.core.workload import load_workload
    from flywheel.serving.service import registry_resolver

    wl = load_workload(root / "configs/workloads/fraud.yaml").model_copy(deep=True)
    wl.name, wl.sft.base_model = "w5", str(tiny_model)
    served = registry_resolver(reg, tmp_path, {"w5": wl})("w5")
    assert (served.base_path, served.adapter, served.version) == (str(tiny_model), None, "1")
    assert reg.champion("w5").is_base and reg.champion("w5").tags["base_model"] == str(tiny_model)
    with pytest.raises(UnknownModel, match="no champion yet"):
        registry_resolver(reg, tmp_path)("w6")
