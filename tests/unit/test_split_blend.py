"""Deterministic (stratified) splits, leakage protection between splits, and blending by source weight."""

import itertools
import json

import pandas as pd
import pytest

from examples.near_duplicates import near_duplicate_corpus
from flywheel.core.config import validate
from flywheel.core.errors import ConfigError
from flywheel.curation.config import CurationConfig
from flywheel.curation.pipeline import curate
from flywheel.curation.split import assign_splits


def _frame(n, label=lambda i: "LEGIT"):
    return pd.DataFrame(
        {
            "id": [f"r{i:05d}" for i in range(n)],
            "text": [f"row {i} text" for i in range(n)],
            "source": "s",
            "page": 0,
            "kind": "text",
            "meta": [json.dumps({"label": label(i)}) for i in range(n)],
        }
    )


def test_splits_are_a_pure_function_of_seed_and_id():
    df = _frame(3000)
    fr = {"train": 0.8, "validation": 0.1, "test": 0.1}
    a = assign_splits(df, fr, seed=1)
    assert a.equals(assign_splits(df.sample(frac=1, random_state=0).sort_index(), fr, seed=1))
    sub = df.iloc[::7]
    assert assign_splits(sub, fr, seed=1).equals(a.iloc[::7])  # a row's split does not depend on the others
    shares = a.value_counts(normalize=True)
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["test"] - 0.1) < 0.02
    assert not a.equals(assign_splits(df, fr, seed=2))


def test_stratified_splits_keep_the_label_mix_in_every_split():
    df = _frame(1000, label=lambda i: "FRAUD" if i % 10 < 3 else "LEGIT")  # 30 % fraud
    split = assign_splits(df, {"train": 0.8, "test": 0.2}, seed=0, stratify_by="meta.label")
    labels = df["meta"].map(lambda m: json.loads(m)["label"])
    for name, n in (("train", 800), ("test", 200)):
        part = labels[split == name]
        assert len(part) == n and (part == "FRAUD").sum() == int(n * 0.3)


def test_near_duplicates_of_held_out_rows_leave_train():
    df, _ = near_duplicate_corpus(80, copies=(1, 2), seed=4)
    df = df.assign(source="gen", page=0, kind="text", meta="{}")
    cfg = CurationConfig(min_words=1, exact_dedup=False, split={"fractions": {"train": 0.7, "test": 0.3}, "seed": 3})
    kept, removed, stats = curate(df[["id", "text", "source", "page", "kind", "meta"]], cfg)
    leaks = removed[removed.reason == "leakage"]
    assert len(leaks) > 5 and stats["steps"]["split"]["dropped_leakage"] == len(leaks)
    test_ids = set(kept[kept.split == "test"].id)
    assert set(leaks.duplicate_of) <= test_ids
    # brute force: no train row left with char-24 Jaccard >= 0.8 to any test row
    sh = {r.id: set(r.text[i : i + 24] for i in range(len(r.text) - 23)) for r in kept.itertuples()}
    for a, b in itertools.product(kept[kept.split == "train"].id, test_ids):
        inter = len(sh[a] & sh[b])
        assert inter / (len(sh[a]) + len(sh[b]) - inter) < 0.8, (a, b)


def test_blend_down_and_up_samples_sources_to_their_weights():
    a = _frame(300).assign(source="docs/a.jsonl")
    b = _frame(100).assign(source="docs/b.pdf", id=lambda d: "b" + d.id, text=lambda d: "other " + d.text)
    cfg = CurationConfig(min_words=1, blend={"weights": {"*.jsonl": 0.25, "*.pdf": 0.75}, "total": 400, "seed": 1})
    kept, removed, stats = curate(pd.concat([a, b], ignore_index=True), cfg)
    assert (kept.source == "docs/a.jsonl").sum() == 100 and (kept.source == "docs/b.pdf").sum() == 300
    assert kept.id.is_unique and kept.id.str.contains("#2$").sum() == 100  # every b row three times
    assert stats["steps"]["blend"]["dropped_not_sampled"] == 200 == (removed.reason == "not_sampled").sum()


def test_split_config_is_checked():
    with pytest.raises(ConfigError, match="sum to 1"):
        validate(CurationConfig, {"split": {"fractions": {"train": 0.8, "test": 0.3}}})
    with pytest.raises(ConfigError, match="train split 'train' is not among"):
        validate(CurationConfig, {"split": {"fractions": {"a": 0.5, "b": 0.5}}})
