"""Bounded-memory curation (flywheel/curation/streaming.py) decides exactly what the in-memory path decides:
the same kept rows, the same removed rows with the same step, reason and duplicate_of — across parts."""

import pandas as pd
import pytest

import flywheel.core.dataset as dataset_mod
from examples.near_duplicates import near_duplicate_corpus
from flywheel.core.dataset import DatasetWriter, write_dataset
from flywheel.core.errors import ConfigError
from flywheel.curation.config import CurationConfig
from flywheel.curation.pipeline import curate
from flywheel.curation.streaming import check_streamable, curate_streaming, use_streaming


def _corpus() -> pd.DataFrame:
    df, _ = near_duplicate_corpus(60, copies=(1, 2), seed=5)
    df = df.assign(source="gen", page=0, kind="text", meta="{}")[["id", "text", "source", "page", "kind", "meta"]]
    extra = pd.DataFrame(
        {
            "id": ["x-exact", "x-short", "x-symbols", "x-empty"],
            "text": [df.text.iloc[3], "too short", "@@@ ### $$$ %%% ^^^ &&& *** !!! ??? ~~~", ""],
            "source": "gen",
            "page": 0,
            "kind": "text",
            "meta": "{}",
        }
    )
    return pd.concat([df, extra], ignore_index=True).sample(frac=1, random_state=3).reset_index(drop=True)


def test_streaming_matches_the_in_memory_path(tmp_path, monkeypatch):
    df = _corpus()
    monkeypatch.setattr(dataset_mod, "PART_ROWS", 37)  # several parts, duplicates spread across them
    src = write_dataset(df, tmp_path, "src")
    assert len(list(src.path.glob("part-*.parquet"))) > 3
    cfg = CurationConfig(min_words=3, fuzzy_dedup={"enabled": True})
    kept_mem, removed_mem, stats_mem = curate(df, cfg)
    with DatasetWriter(tmp_path, "kept") as kw, DatasetWriter(tmp_path, "removed") as rw:
        stats = curate_streaming(src, cfg, kw, rw, tmp_path / "work")
    kept, removed = kw.dataset.to_pandas(), rw.dataset.to_pandas()
    assert sorted(kept.id) == sorted(kept_mem.id)
    cols = ["id", "step", "reason", "duplicate_of"]
    a = removed[cols].sort_values("id").reset_index(drop=True)
    b = removed_mem[cols].sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a.astype(str), b.astype(str))
    assert stats["summary"] == stats_mem["summary"]
    assert stats["summary"]["dropped_exact_duplicate"] >= 1 and stats["summary"]["dropped_fuzzy_duplicate"] >= 10
    assert not (tmp_path / "work").exists()  # the work folder is removed


def test_streaming_refuses_steps_that_need_the_whole_set():
    with pytest.raises(ConfigError, match="semantic_dedup, split"):
        check_streamable(
            CurationConfig(semantic_dedup={"enabled": True}, split={"fractions": {"train": 0.9, "test": 0.1}})
        )
    assert use_streaming(CurationConfig(), 10**6) and not use_streaming(CurationConfig(), 10)
    assert not use_streaming(CurationConfig(blend={"weights": {"*": 1.0}}), 10**6)  # auto falls back
    assert use_streaming(CurationConfig(streaming="on"), 1)


def test_streaming_an_empty_dataset_gives_two_empty_datasets(tmp_path):
    src = write_dataset(
        pd.DataFrame({c: pd.Series(dtype="object") for c in ("id", "text", "source", "kind", "meta")}),
        tmp_path,
        "empty",
    )
    with DatasetWriter(tmp_path, "kept") as kw, DatasetWriter(tmp_path, "removed") as rw:
        stats = curate_streaming(src, CurationConfig(streaming="on"), kw, rw, tmp_path / "work")
    assert stats["summary"] == {"total": 0, "kept": 0} and kw.dataset.rows == 0 == rw.dataset.rows
    assert list(rw.dataset.to_pandas().columns)[-3:] == ["step", "reason", "duplicate_of"]
