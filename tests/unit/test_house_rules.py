"""House rules: every YAML validates; prefect.yaml agrees with the workload config. (The layers and the
domain's freedom from Prefect are tests/unit/test_layers.py.)"""

from pathlib import Path

import pytest
import yaml

from flywheel.core.config import load_config
from flywheel.core.errors import ConfigError
from flywheel.core.workload import SCHEMAS, load_workload

ROOT = Path(__file__).resolve().parents[2]


FOREIGN = {"guardrails"}  # configs/guardrails is NeMo Guardrails' format, validated in test_guardrails_config.py


def _yaml_files():
    found = [*(ROOT / "configs").rglob("*.yaml"), *(ROOT / "configs").rglob("*.yml")]
    return sorted(p for p in found if p.relative_to(ROOT / "configs").parts[0] not in FOREIGN)


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_yaml_validates(path):
    folder = path.relative_to(ROOT / "configs").parts[0]
    assert folder in SCHEMAS, f"configs/{folder}/ has no schema in flywheel.core.workload.SCHEMAS"
    load_config(path, SCHEMAS[folder])
    assert path.read_text().startswith("#"), "each YAML opens with what it is and how to run it"


def test_unknown_key_fails_with_its_name(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs/workloads/fraud.yaml").read_text())
    cfg["sft"]["lora_rnak"] = 8
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"sft\.lora_rnak: unknown key"):
        load_workload(bad)


def test_out_of_bounds_value_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: fraud\nsystem_prompt: x\nlabels: [A, B]\nretrain: {feedback_threshold: 0}\n")
    with pytest.raises(ConfigError, match=r"retrain\.feedback_threshold"):
        load_workload(bad)


def test_prefect_yaml_retrain_deployment_matches_the_workload_config():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deps = {d["name"]: d for d in spec["deployments"]}
    dep = deps["retrain-fraud"]
    assert dep["entrypoint"] == "flows.retrain:retrain"
    module, func = dep["entrypoint"].split(":")
    assert f"def {func}(" in (ROOT / (module.replace(".", "/") + ".py")).read_text()
    trig = dep["triggers"][0]
    cfg = load_workload(ROOT / "configs/workloads/fraud.yaml")
    assert trig["expect"] == ["flywheel.feedback.received"]
    assert trig["match"] == {"prefect.resource.id": "flywheel.workload.fraud"}
    assert trig["threshold"] == cfg.retrain.feedback_threshold
    assert trig["within"] == cfg.retrain.within_seconds
    # The bare form silently creates no run (DESIGN.md §5).
    assert trig["parameters"]["trigger_event"] == "{{ event.id | string }}"
    from deployments.retrain import DRIFT_EVENT, WATERMARK

    assert trig["parameters"]["watermark"] == WATERMARK
    drift = dep["triggers"][1]
    assert drift["expect"] == [DRIFT_EVENT] and drift["threshold"] == 1
    assert drift["parameters"]["trigger_event"] == "{{ event.id | string }}"
    assert dep["concurrency_limit"]["limit"] == 1
    assert (
        dep["concurrency_limit"]["collision_strategy"]
        == {"queue": "ENQUEUE", "drop": "CANCEL_NEW"}[cfg.retrain.on_busy]
    )
    watch = deps["drift-fraud"]
    assert watch["entrypoint"] == "flows.drift:drift_check" and watch["schedules"][0]["cron"] == cfg.drift.cron
    assert deps["nightly-fraud"]["schedules"][0]["cron"] == cfg.schedules.refresh_cron
    assert deps["weekly-fraud"]["schedules"][0]["cron"] == cfg.schedules.evaluate_cron
    for dep in deps.values():  # every entrypoint names a flow that exists
        module, func = dep["entrypoint"].split(":")
        assert f"def {func}(" in (ROOT / (module.replace(".", "/") + ".py")).read_text(), dep["name"]


def test_kubernetes_work_pool_template_is_valid_json_with_its_variables():
    import json

    tpl = json.loads((ROOT / "deployments/work-pools/kubernetes.json").read_text())
    assert set(tpl) == {"job_configuration", "variables"}
    props = tpl["variables"]["properties"]
    for ref in ("image", "namespace", "gpus", "env"):
        assert ref in props
    assert (
        tpl["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]["image"] == "{{ image }}"
    )
