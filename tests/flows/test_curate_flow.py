"""`flywheel curate --in FILES --out DIR --config F`: ingest + curate on the Prefect API, counts in MLflow."""

import json

import yaml

from examples.near_duplicates import near_duplicate_corpus
from examples.pii_corpus import pii_corpus
from flywheel.core.dataset import read_dataset


def _curate_cli(tmp_path, recipe: dict, cli):
    """`flywheel curate --in tmp/corpus.jsonl --out tmp/curated --config <recipe> --json` on the test Prefect API."""
    from prefect.settings import PREFECT_API_URL

    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    env = {
        "FLYWHEEL_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}",
    }
    run = cli(
        "curate",
        "--in",
        str(tmp_path / "corpus.jsonl"),
        "--out",
        str(tmp_path / "curated"),
        "--config",
        str(tmp_path / "recipe.yaml"),
        "--json",
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    return run, json.loads(run.stdout), env


def test_cli_curates_raw_jsonl_with_pii_fuzzy_dedup_and_splits(prefect_api, tmp_path, cli):
    docs, _ = near_duplicate_corpus(30, copies=(1, 1), seed=2)
    tickets, seeded = pii_corpus(10, seed=3)
    with (tmp_path / "corpus.jsonl").open("w") as f:
        for r in docs.itertuples():
            f.write(json.dumps({"id": r.id, "text": r.text}) + "\n")
        for r in tickets.itertuples():
            f.write(json.dumps({"id": r.id, "text": r.text}) + "\n")
        f.write(
            '{"id": "null", "text": null}\n{"id": "blank", "text": "   "}\n{"id": "sur", "text": "bad \\ud800 x"}\n'
        )
    run, res, env = _curate_cli(
        tmp_path,
        {
            "min_words": 5,
            "pii": {"enabled": True},
            "fuzzy_dedup": {"enabled": True},
            "split": {"fractions": {"train": 0.8, "test": 0.2}, "seed": 1},
        },
        cli,
    )
    out = tmp_path / "curated"
    kept = read_dataset(out).to_pandas()
    removed = read_dataset(out / "removed").to_pandas()
    assert res["rows"] == len(kept) and set(kept.split) == {"train", "test"}
    # 30 planted copies: every copy goes (fuzzy) or is a train/test leak of its original
    assert ((removed.reason == "fuzzy_duplicate") | (removed.reason == "leakage")).sum() >= 25
    text = "\n".join(kept.text) + "\n".join(removed.text)
    assert not any(v in text for values in seeded.values() for v in values.values())  # nothing un-redacted written
    # the bad lines were quarantined by ingest (null, blank, lone surrogate), not curated
    (raw,) = (tmp_path / "home" / "datasets" / "curated-raw").iterdir()
    assert read_dataset(raw).digest == res["parent"]
    quarantined = {json.loads(x)["line"] for x in (raw / "quarantine.jsonl").read_text().splitlines()}
    n = len(docs) + len(tickets)
    assert quarantined == {n + 1, n + 2, n + 3}
    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    r = mlflow.get_run(res["mlflow_run_id"])
    assert r.data.metrics["kept"] == len(kept) and "fuzzy_dedup.dropped_fuzzy_duplicate" in r.data.metrics
    assert {i.dataset.name for i in r.inputs.dataset_inputs} == {"curated", "curated-raw"}


def test_sft_data_leaves_out_rows_that_duplicate_held_out_rows(tmp_path, root):
    import pandas as pd

    from examples.fraud import generate
    from flywheel.core.dataset import write_dataset
    from flywheel.core.workload import load_workload
    from tasks.train import build_sft_dataset

    def frame(rows):
        return pd.DataFrame(
            [
                {
                    "id": r["id"],
                    "text": r["text"],
                    "source": "gen",
                    "page": 0,
                    "kind": "text",
                    "meta": json.dumps({"label": r["label"], "answer": r["answer"]}),
                }
                for r in rows
            ]
        )

    train, test = generate(200, seed=1), generate(40, seed=2, prefix="test")
    copy = dict(test[5], id="leak-1", text=test[5]["text"] + " Reviewed.")  # a near-copy of a held-out row
    train_ds = write_dataset(frame(train + [copy]), tmp_path, "train")
    test_ds = write_dataset(frame(test), tmp_path, "test")
    wl = load_workload(root / "configs/workloads/fraud.yaml")
    res = build_sft_dataset.fn(str(train_ds.path), wl, False, str(test_ds.path))
    assert res["dropped_leakage"] == 1 and res["rows"] == 200  # the near-copy of test[5] is out, nothing else
    assert "leak-1" not in set(read_dataset(res["path"]).to_pandas().id)


def test_cli_streaming_curation_writes_the_same_datasets_with_counts(prefect_api, tmp_path, cli):
    """`streaming: on` through the CLI: part-by-part curation, the kept and removed Datasets and their counts."""
    docs, _ = near_duplicate_corpus(30, copies=(1, 1), seed=4)
    with (tmp_path / "corpus.jsonl").open("w") as f:
        for r in docs.itertuples():
            f.write(json.dumps({"id": r.id, "text": r.text}) + "\n")
        f.write(json.dumps({"id": "zz-copy", "text": docs.text.iloc[0]}) + "\n")  # the smaller id is kept
    run, res, _ = _curate_cli(tmp_path, {"min_words": 5, "fuzzy_dedup": {"enabled": True}, "streaming": "on"}, cli)
    out = tmp_path / "curated"
    kept, removed = read_dataset(out).to_pandas(), read_dataset(out / "removed").to_pandas()
    assert res["counts"]["total"] == len(docs) + 1 == len(kept) + len(removed)
    assert removed.set_index("id").loc["zz-copy", "reason"] == "exact_duplicate"
    assert (removed.reason == "fuzzy_duplicate").sum() == res["counts"]["dropped_fuzzy_duplicate"] >= 15
    assert "streaming" in run.stderr


def test_cli_trains_a_quality_classifier_and_curates_with_it(prefect_api, tmp_path, cli):
    """`flywheel curate-classifier` (real MiniLM) then `flywheel curate` with its quality step: junk is removed."""
    from examples.quality import quality_corpus

    with (tmp_path / "labelled.jsonl").open("w") as f:
        for r in quality_corpus(200, seed=0):
            f.write(json.dumps({"body": r["text"], "quality": r["label"]}) + "\n")
    bad = cli("curate-classifier", "--data", str(tmp_path / "labelled.jsonl"), "--out", str(tmp_path / "clf"))
    assert bad.returncode == 2 and "no column ['text', 'label']" in bad.stderr  # default columns absent
    run = cli(
        "curate-classifier",
        "--data",
        str(tmp_path / "labelled.jsonl"),
        "--out",
        str(tmp_path / "clf"),
        "--text-column",
        "body",
        "--label-column",
        "quality",
        "--json",
        env={"FLYWHEEL_HOME": str(tmp_path / "home")},
    )
    assert run.returncode == 0, run.stderr
    trained = json.loads(run.stdout)
    assert trained["holdout_rows"] == 40 and trained["holdout_accuracy"] >= 0.95
    rows = quality_corpus(40, seed=11)
    with (tmp_path / "corpus.jsonl").open("w") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "text": r["text"]}) + "\n")
    _, res, _ = _curate_cli(
        tmp_path,
        {
            "min_words": 3,
            "max_non_alnum_ratio": 1.0,
            "quality": {"enabled": True, "model": str(tmp_path / "clf"), "keep_labels": ["High"]},
        },
        cli,
    )
    kept = read_dataset(tmp_path / "curated").to_pandas()
    removed = read_dataset(tmp_path / "curated" / "removed").to_pandas()
    assert set(removed[removed.reason == "low_quality"].id) == {r["id"] for r in rows if r["label"] == "Low"}
    assert res["counts"]["dropped_low_quality"] == 20 and set(kept.quality_pred) == {"High"}
