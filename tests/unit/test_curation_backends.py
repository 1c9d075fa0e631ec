"""The GPU curation backends on a machine without them: each stops with a message naming what is missing,
config mistakes fail with the field's name, and our side of the NeMo Curator hand-off (which rows its
answer removes, how a classifier's labels are kept) is checked on its own. The GPU runs themselves are
tests/gpu/ (marker ``gpu``)."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from flywheel.core.errors import ConfigError
from flywheel.curation import nemo, pipeline
from flywheel.curation.config import CurationConfig, QualityConfig
from flywheel.curation.pipeline import curate
from flywheel.curation.quality import check_config
from flywheel.curation.streaming import use_streaming


def _df(texts):
    return pd.DataFrame(
        {
            "id": [f"d{i}" for i in range(len(texts))],
            "text": texts,
            "source": "s",
            "page": 0,
            "kind": "text",
            "meta": "{}",
        }
    )


@pytest.mark.skipif(importlib.util.find_spec("cudf") is not None, reason="cuDF is installed here: tests/gpu/ covers it")
def test_cudf_backend_names_the_missing_packages():
    with pytest.raises(ConfigError, match=r"backend: cudf needs cudf-cu12, dask-cuda \(pip install 'flywheel\[gpu\]'"):
        curate(_df(["one two three four"]), CurationConfig(backend="cudf"))


@pytest.mark.skipif(importlib.util.find_spec("nemo_curator") is not None, reason="NeMo Curator is installed here")
def test_nemo_curator_backend_names_the_missing_extra():
    with pytest.raises(ConfigError, match=r"backend: nemo_curator needs NeMo Curator \(pip install 'flywheel\[nemo\]'"):
        curate(_df(["one two three four"]), CurationConfig(backend="nemo_curator", fuzzy_dedup={"enabled": True}))


def test_backend_config_mistakes_name_the_field():
    with pytest.raises(ValueError, match="fuzzy_dedup.hash: backend cudf computes cuDF's murmur3"):
        CurationConfig(backend="cudf", fuzzy_dedup={"enabled": True, "preset": "fast"})
    CurationConfig(backend="cudf", fuzzy_dedup={"enabled": True})  # the Curator preset is what cuDF computes
    with pytest.raises(ValueError, match="quality.model: nemo_curator:QualityClassifier runs on NeMo Curator"):
        CurationConfig(quality={"enabled": True, "model": "nemo_curator:QualityClassifier", "keep_labels": ["High"]})
    with pytest.raises(ValueError, match="streaming: backend nemo_curator"):
        CurationConfig(backend="nemo_curator", streaming="on")
    assert not use_streaming(CurationConfig(backend="nemo_curator"), 10**7)  # auto stays in memory


def test_curator_classifier_choices_are_checked():
    q = lambda **kw: QualityConfig(enabled=True, **kw)  # noqa: E731
    assert (
        check_config(q(model="nemo_curator:QualityClassifier", keep_labels=["High", "Medium"]))["task"] == "categorical"
    )
    assert check_config(q(model="nemo_curator:FineWebEduClassifier", min_score=3))["task"] == "regression"
    assert check_config(q(model="nemo_curator:DomainClassifier", keep_labels=["Science"]))["labels"] is None
    for kw, error in [
        ({"model": "nemo_curator:QualityClassifier", "keep_labels": ["Good"]}, "keep_labels: \\['Good'\\] not among"),
        (
            {"model": "nemo_curator:QualityClassifier", "keep_labels": ["High"], "min_score": 0.5},
            "min_score: .* categorical",
        ),
        ({"model": "nemo_curator:FineWebEduClassifier"}, "min_score: .* predicts a score"),
        ({"model": "nemo_curator:Nope", "keep_labels": ["x"]}, "not one of NeMo Curator's classifiers"),
    ]:
        with pytest.raises(ConfigError, match=error):
            check_config(q(**kw))


def test_rows_curator_did_not_return_are_the_removed_ones():
    live = _df(["a b c", "d e f", "g h i", "j k l"]).assign(id=["x9", "x1", "x5", "x3"])
    gone = nemo._removed(live, {"x9", "x5"})
    assert gone.to_dict("list") == {"pos": [1, 3], "id": ["x1", "x3"], "duplicate_of": [None, None]}


def test_curator_classifier_verdicts_mark_rows_with_their_prediction(monkeypatch):
    """Our side of the hand-off: Curator's per-row labels (stood in for here; Curator needs a GPU) decide
    which live rows go, tables are not sent, and every judged row keeps its label and score."""
    df = pd.concat(
        [
            _df(["good text here", "junk junk junk", "fine prose indeed", "x"]),
            pd.DataFrame([{"id": "t", "text": "| a | b |", "source": "s", "page": 0, "kind": "table", "meta": "{}"}]),
        ],
        ignore_index=True,
    )
    sent = []

    def fake_classify(live, qcfg, work):
        sent.extend(live["id"])
        labels = {"d0": "High", "d1": "Low", "d2": "Medium"}
        return pd.DataFrame(
            {
                "id": list(live["id"]),
                "quality_pred": [labels[i] for i in live["id"]],
                "quality_score": [0.9, 0.8, 0.7][: len(live)],
            }
        )

    monkeypatch.setattr(nemo, "classify", fake_classify)
    monkeypatch.setattr(nemo, "require_curator", lambda: None)
    cfg = CurationConfig(
        backend="nemo_curator",
        min_words=2,
        max_non_alnum_ratio=1.0,
        quality={"enabled": True, "model": "nemo_curator:QualityClassifier", "keep_labels": ["High", "Medium"]},
    )
    assert not any(s.name == "quality" for s in pipeline.build_steps(cfg))  # not a per-partition step on this backend
    kept, removed, stats = curate(df, cfg)
    assert sorted(sent) == ["d0", "d1", "d2"]  # d3 had too few words, the table is not judged
    assert sorted(kept.id) == ["d0", "d2", "t"]
    assert removed.set_index("id").loc["d1", ["step", "reason", "quality_pred"]].tolist() == [
        "quality",
        "low_quality",
        "Low",
    ]
    assert stats["steps"]["quality"] == {
        "total": 3,
        "kept": 2,
        "dropped_low_quality": 1,
        "seconds": stats["steps"]["quality"]["seconds"],
    }
    assert np.isclose(kept.set_index("id").loc["d2", "quality_score"], 0.7)
