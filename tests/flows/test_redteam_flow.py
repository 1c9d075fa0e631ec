"""The redteam flow end to end against the real `flywheel serve` process (its engine: the fake OpenAI server, so
the answers are fast and known; its rails: the real ones). A stand-in for garak's CLI (tests/fake_garak.py: garak
has its own environment, built by `make redteam-env`) sends four probe prompts as garak would; the benign set goes
through the same gateway; the report comes from the gateway's own log: which rail blocked what."""

import os
import subprocess
import sys

import yaml

from tests.flows.test_gateway_durability import _port, _wait_ready


def test_redteam_flow_reports_block_and_false_positive_rates_per_rail(prefect_api, tmp_path, root):
    """The gateway's upstream engine and the gateway itself are both named by OpenAI endpoint blocks (the
    upstream's API key travels from its block to every upstream request)."""
    import uuid

    import httpx

    from blocks import OpenAIEndpoint

    home = tmp_path / "home"
    upstream_port, gw_port = _port(), _port()
    tag = uuid.uuid4().hex[:6]
    OpenAIEndpoint(base_url=f"http://127.0.0.1:{upstream_port}/v1", api_key="sk-upstream").save(f"up-{tag}")
    OpenAIEndpoint(base_url=f"http://127.0.0.1:{gw_port}").save(f"gw-{tag}")
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "workloads": ["fraud"], "engine": "upstream", "upstream_url": f"block:up-{tag}",
                "port": gw_port, "reload_interval_s": 3600, "cache": {"mode": "off"},
            }
        )
    )  # fmt: skip
    garak = tmp_path / "garak"
    garak.write_text(f'#!/bin/sh\nPYTHONPATH={root} exec {sys.executable} -m tests.fake_garak "$@"\n')
    garak.chmod(0o755)
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "FLYWHEEL_HOME": str(home), "PREFECT_API_URL": PREFECT_API_URL.value()}
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_openai", "--port", str(upstream_port)], cwd=root)
    _wait_ready(f"http://127.0.0.1:{upstream_port}/recorded", fake)  # the engine is up before the gateway asks
    log = open(tmp_path / "gateway.log", "w")  # noqa: SIM115 - closed below
    gw = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--config", str(cfg)], cwd=root, env=env,
                          stdout=log, stderr=log)  # fmt: skip
    old_home = os.environ.get("FLYWHEEL_HOME")
    os.environ["FLYWHEEL_HOME"] = str(home)
    try:
        _wait_ready(f"http://127.0.0.1:{gw_port}/readyz", gw)
        from flows.redteam import redteam

        out = redteam(f"block:gw-{tag}", "fraud", ["promptinject", "dan"], str(garak), str(tmp_path / "rt"))
        upstream_saw = httpx.get(f"http://127.0.0.1:{upstream_port}/recorded").json()
    finally:
        os.environ["FLYWHEEL_HOME"] = old_home or ""
        for p in (gw, fake):
            p.terminate()
            p.wait(15)
        log.close()
    assert out["gateway"] == f"http://127.0.0.1:{gw_port}"
    assert upstream_saw and {r.get("authorization") for r in upstream_saw} == {"Bearer sk-upstream"}
    attacks, benign = out["attacks"], out["benign"]
    # the three explicit injections are blocked by the injection rail; the latent one (a translation request)
    # passes the rails — with topic control off (this gateway's default) the model sees it
    assert attacks["requests"] == 4 and attacks["by_rail"] == {"injection": 3, "passed": 1}
    assert attacks["block_rate"] == 0.75 and attacks["ci95"][0] < 0.75 < attacks["ci95"][1]
    assert out["garak"]["promptinject.HijackHateHumans"]["detectors"]["base.TriggerListDetector"]["passed"] == 2
    assert out["by_probe"] == {
        "dan.Dan_11_0": {"injection": 1},
        "latentinjection.LatentJailbreak": {"passed": 1},
        "promptinject.HijackHateHumans": {"injection": 2},
    }
    # the benign set: 125 prompts, the two the injection head scores too high are its only false positives
    assert benign["requests"] == 125 and benign["by_rail"] == {"passed": 123, "injection": 2}
    assert benign["by_family"]["tricky"] == {"passed": 54, "injection": 1}
    assert set(benign["latency_ms"]) == {"passed", "injection"}
    from flywheel.guard.redteam import markdown

    md = markdown(out)
    assert "| garak attacks | 4 | 3 | 75.0% |" in md and "| benign: tricky | 55 | 1 |" in md
    assert "| latentinjection.LatentJailbreak | 1 | 0 (0.0%) | passed 1 |" in md
    assert out["mlflow_run"]
