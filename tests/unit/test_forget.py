"""Data rights: `flywheel forget` deletes a tenant's interactions and feedback from the real store and names the
Datasets (the SFT data holding their feedback rows, and what was made from it) and the model versions trained on
them; another tenant's rows, and Datasets without them, are untouched."""

import json

import pandas as pd

from flywheel.core.dataset import write_dataset
from flywheel.core.home import Home
from flywheel.feedback.store import FeedbackStore
from flywheel.registry.mlflow_registry import Registry


def test_forget_a_tenant_deletes_its_rows_and_names_what_was_built_from_them(tmp_path, cli, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = Home.resolve(tmp_path / "home")
    store = FeedbackStore(home.database_url())
    ids = {}
    for tenant in ("acme", "other"):
        ids[tenant] = []
        for i in range(3):
            msgs = [{"role": "user", "content": f"{tenant} {i}"}]
            iid = store.log_interaction(
                workload="fraud", model="fraud", tenant=tenant, latency_ms=1.0, messages=msgs, response="LEGIT: ok"
            )
            if i < 2:
                store.add_feedback(iid, -1, "FRAUD: velocity")
            ids[tenant].append(iid)
    rows = [{"id": f"fb-{i}", "text": "t", "answer": "FRAUD: velocity"} for i in ids["acme"][:1] + ids["other"][:1]]
    sft = write_dataset(pd.DataFrame(rows), home.datasets, "fraud-sft")
    # made from the SFT data, holding only the other tenant's row: still built from acme's data
    child = write_dataset(pd.DataFrame(rows[1:]), home.datasets, "fraud-sft-tokens", parents=[sft.digest])
    clean = write_dataset(pd.DataFrame([{"id": "fb-nobody", "text": "t"}]), home.datasets, "fraud-sft-old")
    reg = Registry(home.tracking_uri(), home.artifact_root())
    v1 = reg.register_base("fraud", "smollm2-135m-instruct", {})
    reg.set_tag("fraud", v1.version, "data.training", sft.digest)

    env = {"FLYWHEEL_HOME": str(home.root)}
    dry = json.loads(cli("forget", "--tenant", "acme", "--dry-run", "--json", env=env).stdout)
    assert dry["matched"] == 3 and dry["deleted"] == 0 and len(store.list(tenant="acme")) == 3
    out = cli("forget", "--tenant", "acme", "--json", env=env)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["deleted"] == 3 and res["with_feedback"] == 2 and res["workloads"] == ["fraud"]
    assert store.list(tenant="acme") == [] and len(store.list(tenant="other")) == 3
    assert store.counts("fraud")["feedback"] == 2  # only the other tenant's
    named = {d["digest"]: d["holds_rows"] for d in res["datasets"]}
    assert named == {sft.digest: True, child.digest: False} and clean.digest not in named
    assert res["versions"] == [{"workload": "fraud", "version": v1.version, "datasets": [sft.digest]}]
    assert cli("forget", env=env).returncode == 2  # neither --tenant nor --id
