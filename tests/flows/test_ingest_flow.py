"""`flywheel ingest` end to end, and the ingest deployments (scheduled, and started by new files)."""

import json
import threading
import time
import uuid

import yaml

from examples import corpus
from flywheel.core.dataset import read_dataset


def test_cli_ingests_a_bad_corpus_with_exit_0_then_only_new_files(prefect_api, tmp_path, cli):
    from prefect.settings import PREFECT_API_URL

    env = {"FLYWHEEL_HOME": str(tmp_path / "home"), "PREFECT_API_URL": PREFECT_API_URL.value()}
    inbox = tmp_path / "inbox"
    expected = corpus.bad_corpus(inbox)
    corpus.scanned_pdf(inbox / "scan.pdf", [["Scanned invoice 4711", "Merchant Lakeside Books"]])
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "max_file_bytes": 1 << 20,
                "timeout_s": 8,
                "chunking": {"tokenizer": "whitespace", "chunk_tokens": 40, "overlap_tokens": 8},
            }
        )
    )
    out = tmp_path / "out"
    run = cli("ingest", str(inbox), "--out", str(out), "--config", str(cfg), "--json", env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    res = json.loads(run.stdout)
    got = {q["path"].rsplit("/", 1)[1]: q["reason"] for q in res["quarantine"] if not q.get("partial")}
    assert got == expected
    written = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert {(q["path"].rsplit("/", 1)[1], q["reason"]) for q in written if not q.get("partial")} == set(
        expected.items()
    )
    assert all(q["error"] for q in written)
    assert (out / "manifest.json").exists() and res["path"] == str(out)
    docs = json.loads((out / "manifest.json").read_text())
    assert docs["rows"] == res["rows"] and {"good.pdf", "good-page.pdf", "scan.pdf"} == {
        s.rsplit("/", 1)[1] for s in read_dataset(out).to_pandas().source
    }
    chunks = json.loads((out / "chunks" / "manifest.json").read_text())
    assert chunks["parents"] == [docs["digest"]] and chunks["rows"] >= res["rows"]
    assert res["counts"]["total"] == res["counts"]["kept"] + len(expected)

    # a new file arrives: the second run reads only it
    corpus.markdown_doc(inbox / "new.md")
    again = json.loads(
        cli("ingest", str(inbox), "--out", str(out), "--config", str(cfg), "--json", env=env, timeout=600).stdout
    )
    assert again["extra"]["skipped_known"] == 3 and again["extra"]["files_by_type"]["markdown"] == 1
    assert again["rows"] == res["rows"] + 2  # the Markdown prose and its table


def test_ingest_deployments_scheduled_and_started_by_new_files(prefect_api, tmp_path):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.events.worker import EventsWorker

    from cli.watch import watch
    from deployments.ingest import apply
    from flywheel.ingest.config import IngestConfig

    name = f"inbox{uuid.uuid4().hex[:6]}"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    ids = apply(inbox, name, IngestConfig(timeout_s=30), cron="*/15 * * * *")
    assert set(ids) == {f"ingest/ingest-{name}-watch", f"ingest/ingest-{name}-scheduled"}
    with get_client(sync_client=True) as client:
        sched = client.read_deployment(ids[f"ingest/ingest-{name}-scheduled"])
        assert sched.entrypoint == "flows.ingest.ingest" and sched.schedules[0].schedule.cron == "*/15 * * * *"
        assert sched.parameters["paths"] == [str(inbox.resolve())] and sched.parameters["config"]["timeout_s"] == 30
        dep_id = ids[f"ingest/ingest-{name}-watch"]
        time.sleep(2)  # the triggers service loads the automation

        def runs():
            return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep_id])))

        stop = threading.Event()
        sent = []
        watcher = threading.Thread(target=lambda: sent.append(watch(inbox, name, debounce_s=1.0, stop=stop)))
        watcher.start()
        try:
            time.sleep(1)
            assert runs() == []
            for i in range(3):  # a burst of three files: one event, one run
                corpus.markdown_doc(inbox / f"doc{i}.md")
            deadline = time.monotonic() + 60
            while not runs() and time.monotonic() < deadline:
                time.sleep(1)
        finally:
            stop.set()
            watcher.join(10)
            EventsWorker.drain_all(timeout=10)
        time.sleep(3)
        found = runs()
    assert sent == [1] and len(found) == 1
    assert found[0].parameters["paths"] == [str(inbox.resolve())] and found[0].parameters["name"] == name
