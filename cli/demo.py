"""``flywheel demo`` (what ``make demo`` runs): the whole loop on the bundled sample data.

1. start the embedded Prefect server, MLflow UI and a process worker
2. write the sample data (labelled transactions, the golden set, a policy PDF with tables, a corrupt PDF)
3. run cycle 1 (ingest -> curate -> train -> register -> evaluate with base, ICL and champion -> gate -> promote)
4. deploy the retrain flow with its feedback-event trigger
5. start the gateway; for each of ``data.traffic_rounds`` rounds: send ``data.n_traffic`` transactions through
   the `openai` client and rate each answer (a simulated analyst knows the true label; wrong answers get a
   correction), then wait until the event trigger's retrain (the next cycle, on the feedback up to the
   firing event's watermark) has finished
6. publish the loop report (every cycle on the golden set) and print a summary
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from cli import server
from flywheel.core.errors import ConfigError
from flywheel.core.home import Home
from flywheel.core.workload import load_workload
from flywheel.serving.config import GatewaySettings

console = Console(stderr=True, soft_wrap=True)  # progress lines stay whole in logs and CI


def _step(msg: str) -> None:
    console.print(f"[bold cyan]==>[/] {msg}")


def _start_gateway(home: Home, settings: GatewaySettings, env: dict) -> tuple[subprocess.Popen, str]:
    port = server.free_port(settings.port)
    log = home.logs / "gateway.log"
    cmd = [sys.executable, "-m", "cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        cmd,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    url = f"http://127.0.0.1:{port}"
    server._wait(f"{url}/healthz", "gateway", 120, proc, log)
    return proc, url


def simulate_traffic(base_url: str, cfg, n: int, seed: int = 1234) -> dict:
    """Send n transactions through the gateway with the openai client; rate every answer."""
    from openai import OpenAI

    from examples.fraud import generate

    client = OpenAI(base_url=f"{base_url}/v1", api_key="not-needed-locally")
    http = httpx.Client(base_url=base_url, timeout=60)
    stats = {"requests": 0, "correct": 0, "feedback": 0, "corrections": 0, "versions": {}}
    for row in generate(n, seed=seed, noise=0.0, prefix="live"):
        resp = client.chat.completions.create(
            model=cfg.name,
            max_tokens=32,
            temperature=0,
            messages=[{"role": "system", "content": cfg.system_prompt}, {"role": "user", "content": row["text"]}],
        )
        answer = resp.choices[0].message.content or ""
        version = resp.system_fingerprint
        stats["versions"][version] = stats["versions"].get(version, 0) + 1
        stats["requests"] += 1
        ok = answer.strip().upper().startswith(row["rule_label"])
        stats["correct"] += ok
        fb = {"id": resp.id, "rating": 1 if ok else -1}
        if not ok:
            fb["correction"] = row["answer"]
            stats["corrections"] += 1
        r = http.post("/v1/feedback", json=fb)
        r.raise_for_status()
        stats["feedback"] += 1
        stats.setdefault("feedback_at", []).append(time.time())  # acknowledged: the trigger's clock starts here
        console.print(
            f"  request {stats['requests']:>3}/{n}: model v{version} said {answer[:48]!r:52} "
            f"{'[green]correct[/]' if ok else '[red]wrong -> corrected[/]'}"
        )
    stats["live_accuracy"] = stats["correct"] / max(1, stats["requests"])
    return stats


def wait_for_retrain(deployment_name: str, since: float, timeout: float, seen: set[str] | None = None) -> dict:
    """Poll the Prefect API until a run of the deployment created after ``since`` (and not in ``seen``) finishes."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    seen = seen or set()
    deadline = time.monotonic() + timeout
    seen_state = None
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=10,
            )
            runs = [r for r in runs if r.created and r.created.timestamp() >= since - 5 and str(r.id) not in seen]
            if runs:
                run = runs[-1]  # the oldest new one: retrains are awaited in the order they were triggered
                state = run.state.name if run.state else "?"
                if state != seen_state:
                    console.print(f"  retrain run [bold]{run.name}[/] ({run.id}) is {state}")
                    seen_state = state
                if run.state and run.state.is_final():
                    result = None
                    if run.state.is_completed():
                        try:
                            result = run.state.result(raise_on_failure=False)
                        except Exception as e:  # noqa: BLE001 - the registry still has the numbers
                            console.print(f"  (could not read the run's persisted result: {e})")
                    return {
                        "flow_run_id": str(run.id),
                        "name": run.name,
                        "state": state,
                        "parameters": run.parameters,
                        "started_at": run.start_time.timestamp() if run.start_time else None,
                        "result": result,
                    }
            time.sleep(3)
    raise TimeoutError(f"no finished run of {deployment_name} within {timeout:.0f}s")


def run_demo(home: Home, workload_path: Path, timeout: int = 1800) -> dict:
    t_start = time.time()
    cfg = load_workload(workload_path)
    if cfg.data.traffic_rounds and cfg.data.n_traffic < cfg.retrain.feedback_threshold:
        raise ConfigError(
            f"data.n_traffic ({cfg.data.n_traffic}) < retrain.feedback_threshold ({cfg.retrain.feedback_threshold}): "
            "a round of demo traffic would never fire the retrain"
        )
    _step(f"starting embedded services (home {home.root})")
    st = server.start(home)
    env = server.use(home, st)
    console.print(f"  Prefect UI {st['prefect']['url']}   MLflow UI {st['mlflow']['url']}")

    _step("writing the bundled sample data")
    from examples.sample import write_sample_data

    write_sample_data(cfg, home.data / cfg.name)

    _step("cycle 1: ingest -> curate -> train -> evaluate -> gate -> register")
    from flows.cycle import cycle

    first = cycle(cfg)
    _print_cycle("cycle 1", first)
    cycles = [{"name": "cycle 1", "summary": first}]

    _step(f"deploying retrain-{cfg.name} (trigger: {cfg.retrain.feedback_threshold} x flywheel.feedback.received)")
    from deployments.retrain import apply

    apply(cfg, str(workload_path))

    _step("starting the gateway")
    gw_settings = GatewaySettings(workloads=[cfg.name], reload_interval_s=2)
    gw, gw_url = _start_gateway(home, gw_settings, env)
    traffic, retrains, seen = [], [], set()
    try:
        for k in range(cfg.data.traffic_rounds):
            since = time.time()
            _step(f"traffic round {k + 1}: {cfg.data.n_traffic} requests with feedback through the openai client")
            traffic.append(simulate_traffic(gw_url, cfg, cfg.data.n_traffic, seed=1234 + k))
            _step(f"waiting for the feedback trigger to start retrain {k + 1}, and for it to finish")
            run = wait_for_retrain(f"retrain-{cfg.name}", since, timeout, seen)
            seen.add(run["flow_run_id"])
            acked = [t for tr in traffic for t in tr.get("feedback_at", [])]
            mark = str(run["parameters"].get("watermark") or "")
            if mark.isdigit() and 0 < int(mark) <= len(acked) and run["started_at"]:
                # the firing feedback (its seq is the watermark; a fresh home numbers them 1, 2, ...) -> Running
                run["trigger_to_running_s"] = round(run["started_at"] - acked[int(mark) - 1], 1)
                console.print(f"  the {mark}th feedback to the retrain Running: {run['trigger_to_running_s']} s")
            retrains.append({k: v for k, v in run.items() if k != "result"})
            if isinstance(run.get("result"), dict):
                cycles.append({"name": f"cycle {k + 2}", "summary": run["result"]})
                _print_cycle(f"cycle {k + 2}", run["result"])
            time.sleep(max(0.0, gw_settings.reload_interval_s + 1 - (time.time() - since)))  # gateway reloads
        # What the gateway has loaded; it re-reads the champion alias on its next request.
        models = httpx.get(f"{gw_url}/v1/models", timeout=10).json()["data"]
    finally:
        os.killpg(gw.pid, 15)
        gw.wait(timeout=30)

    from flows.report import loop_report
    from flywheel.feedback.store import FeedbackStore
    from flywheel.registry.mlflow_registry import Registry

    report = loop_report(cfg, cycles)
    reg = Registry(home.tracking_uri(), home.artifact_root())
    champ = reg.champion(cfg.name)
    summary = {
        "workload": cfg.name,
        "minutes": round((time.time() - t_start) / 60, 1),
        "cycle_1": first,
        "cycles": [{"name": c["name"], "summary": c["summary"]} for c in cycles[1:]],
        "traffic": traffic,
        "feedback_store": FeedbackStore(home.database_url()).counts(cfg.name),
        "retrain_runs": retrains,
        "report": report,
        "served": {"version": champ.version if champ else None, "gateway_models": models},
        "prefect_ui": st["prefect"]["url"],
        "mlflow_ui": st["mlflow"]["url"],
    }
    (home.runs / "demo-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    _print_summary(summary)
    return summary


def _ci(card: dict, metric: str) -> str:
    e = card["metrics"].get(metric) or {}
    if e.get("value") is None:
        return "-"
    return f"{e['value']:.3f}" + (f" [{e['low']:.3f}, {e['high']:.3f}]" if e.get("low") is not None else "")


def _rows_line(s: dict, metric: str) -> str:
    rows = s["evaluation"]["rows"]
    who = {"champion": f"champion v{s['champion']['version']}", "candidate": f"candidate v{s['candidate']['version']}"}
    return "; ".join(f"{who.get(n, n)} {_ci(card, metric)}" for n, card in rows.items())


def _print_cycle(title: str, s: dict) -> None:
    console.print(
        f"  {title}: accuracy on {s['evaluation']['n_examples']} golden examples: {_rows_line(s, 'accuracy')}"
    )
    verdict = "PASSED" if s["promoted"] else "REFUSED: " + "; ".join(s["gate"]["reasons"][:3])
    console.print(f"  {title}: gate {verdict}; serving v{s['served_version']}")


def _print_summary(s: dict) -> None:
    c1 = s["cycle_1"]
    t = Table(title=f"Flywheel demo summary ({s['minutes']} min)", show_lines=False)
    t.add_column("what")
    t.add_column("value")
    d = c1["data"]
    t.add_row("ingest (train)", json.dumps(d["ingest_train"]))
    t.add_row("ingest (documents)", json.dumps(d["ingest_documents"]))
    t.add_row("quarantined", "; ".join(f"{Path(q['path']).name}: {q['reason']}" for q in d["quarantined"]) or "none")
    t.add_row("curate (train)", json.dumps(d["curate_train"]))
    if d.get("kb"):
        kb = d["kb"]
        t.add_row("knowledge base", f"{kb['documents']} documents, {kb['chunks']} chunks, {kb.get('entities', 0)} "
                  f"entities ({kb['embedded']} chunks embedded this cycle)")  # fmt: skip
    first = c1["evaluation"]["rows"]
    n = c1["evaluation"]["n_examples"]
    t.add_row(f"base model ({n} golden)", f"accuracy {_ci(first['base'], 'accuracy')}")
    if "icl" in first:
        t.add_row("base + 2 examples (ICL)", f"accuracy {_ci(first['icl'], 'accuracy')}")
    for i, cyc in enumerate([c1] + [c["summary"] for c in s["cycles"]], 1):
        tr, plan = cyc["training"], cyc["data"].get("sft_plan") or {}
        cand = cyc["evaluation"]["rows"]["candidate"]
        recall = ", ".join(
            f"{k.split('=')[1]} {_ci({'metrics': v}, 'recall')}"
            for k, v in cand["slices"].items()
            if k.startswith("label=")
        )
        t.add_row(
            f"cycle {i}: data",
            f"{cyc['data']['sft_rows']} SFT rows from the {plan.get('start', 'base')}"
            + (f"; {plan['new_feedback']} new feedback up to seq {plan['watermark']}" if plan.get("watermark") else ""),
        )
        t.add_row(
            f"cycle {i}: training",
            f"{tr['steps']} steps, loss {tr.get('first_loss') or float('nan'):.3f} -> {tr['final_loss']:.3f}, "
            f"{tr['seconds']:.0f}s on {tr['device']}",
        )
        t.add_row(f"cycle {i}: v{cyc['candidate']['version']}", f"accuracy {_ci(cand, 'accuracy')}; recall {recall}")
        t.add_row(
            f"cycle {i}: general",
            f"perplexity {_ci(cand, 'perplexity')}, general MC {_ci(cand, 'general_mc_accuracy')}",
        )
        t.add_row(
            f"cycle {i}: gate",
            ("PASSED -> promoted" if cyc["promoted"] else "REFUSED: " + "; ".join(cyc["gate"]["reasons"][:3])),
        )
    for k, (tr, rr) in enumerate(zip(s["traffic"], s["retrain_runs"]), 1):
        t.add_row(
            f"traffic round {k}",
            f"{tr['requests']} requests, live accuracy {tr['live_accuracy']:.2f}, {tr['corrections']} corrections, "
            f"versions {tr['versions']}; retrain {rr['name']} {rr['state']}",
        )
    t.add_row("model version served", f"v{s['served']['version']}")
    t.add_row("loop report", f"{s['report']['markdown']} (+ report.png)")
    t.add_row("Prefect UI", s["prefect_ui"])
    t.add_row("MLflow UI", s["mlflow_ui"])
    Console(width=None if sys.stdout.isatty() else 130).print(t)
