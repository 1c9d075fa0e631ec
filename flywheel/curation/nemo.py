"""``backend: nemo_curator`` (extra ``nemo``): fuzzy dedup, semantic dedup and quality classifiers
delegated to NeMo Curator 1.x workflows on Ray, on GPUs.

Everything per document stays ours (sanity, normalisation, PII — Curator 1.x has none —, the
heuristic filters with Curator's names and thresholds, exact dedup), then the live rows are written
as Parquet to a work folder and handed to Curator:

- fuzzy dedup: ``FuzzyDeduplicationWorkflow`` (cuDF MinHash, LSH, connected components; the
  recipe's ngram/bands/rows/seed) and ``TextDuplicatesRemovalWorkflow`` with its id generator;
  the ids missing from its output are ``fuzzy_duplicate``. Curator does not say which document a
  removed one duplicates, so ``duplicate_of`` is empty; its edges are not Jaccard-verified
  (``verify`` is ignored).
- semantic dedup: ``TextSemanticDeduplicationWorkflow`` (vLLM embeddings of ``semantic_dedup.model``,
  GPU k-means, ``eps = 1 - threshold``, removal on our ``id`` column).
- quality: ``quality.model: nemo_curator:<Classifier>`` runs that Curator classifier stage
  (QualityClassifier, DomainClassifier, FineWebEduClassifier, ...) over all live rows; our keep
  rule (``keep_labels`` / ``min_score``) then decides, so removed rows keep their prediction. The
  Hugging Face weights must already be in ``quality.cache_dir`` (Curator loads them offline).

On a machine without the extra or a GPU, the backend stops with a message naming what is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from flywheel.core.errors import ConfigError

# Curator classifier stages: their task, labels (None: not checked here) and output columns.
CLASSIFIERS = {
    "QualityClassifier": {"task": "categorical", "labels": ["High", "Medium", "Low"]},
    "DomainClassifier": {"task": "categorical", "labels": None},
    "MultilingualDomainClassifier": {"task": "categorical", "labels": None},
    "ContentTypeClassifier": {"task": "categorical", "labels": None},
    "FineWebEduClassifier": {"task": "regression", "labels": []},
    "FineWebMixtralEduClassifier": {"task": "regression", "labels": []},
    "FineWebNemotronEduClassifier": {"task": "regression", "labels": []},
}
PREFIX = "nemo_curator:"


def classifier_name(model: str | None) -> str | None:
    """``QualityClassifier`` for ``nemo_curator:QualityClassifier``, else None."""
    return model[len(PREFIX) :] if model and model.startswith(PREFIX) else None


def require_curator() -> None:
    """Raise a ConfigError naming what ``backend: nemo_curator`` lacks here."""
    try:
        import nemo_curator  # noqa: F401
    except ImportError:
        raise ConfigError(
            "backend: nemo_curator needs NeMo Curator (pip install 'flywheel[nemo]', CPU or CUDA torch first); "
            "its dedup and classifiers also need an NVIDIA GPU with cuDF"
        ) from None
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "backend: nemo_curator: NeMo Curator's dedup and classifier stages need a CUDA device; "
            "none is visible here (backend: pandas runs the same steps on CPU)"
        )
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local Ray cluster started by Curator


def _write(live: pd.DataFrame, folder: Path) -> str:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    live[["id", "text"]].astype({"id": str}).to_parquet(folder / "part-00000.parquet", index=False)
    return str(folder)


def _ids(folder: Path) -> set[str]:
    files = sorted(Path(folder).rglob("*.parquet"))
    return set().union(*(set(pd.read_parquet(f, columns=["id"])["id"].astype(str)) for f in files)) if files else set()


def _removed(live: pd.DataFrame, kept_ids: set[str]) -> pd.DataFrame:
    """``pos, id, duplicate_of`` of the live rows Curator did not keep (positions index ``live``)."""
    ids = live["id"].astype(str).reset_index(drop=True)
    gone = ids[~ids.isin(kept_ids)]
    return pd.DataFrame({"pos": gone.index.to_numpy(), "id": gone.to_numpy(), "duplicate_of": None})


def fuzzy_duplicates(live: pd.DataFrame, p: dict, work: Path) -> pd.DataFrame:
    """Live rows NeMo Curator's fuzzy dedup removes (``pos, id, duplicate_of``)."""
    from nemo_curator.stages.deduplication.fuzzy.workflow import (
        ID_GENERATOR_OUTPUT_FILENAME,
        FuzzyDeduplicationWorkflow,
    )
    from nemo_curator.stages.deduplication.id_generator import CURATOR_DEDUP_ID_STR
    from nemo_curator.stages.text.deduplication.removal_workflow import TextDuplicatesRemovalWorkflow

    if p["shingle"] != "char":
        raise ConfigError("fuzzy_dedup.shingle: NeMo Curator's MinHash hashes character n-grams; use preset: curator")
    inp = _write(live, work / "fuzzy-input")
    out = work / "fuzzy-output"
    FuzzyDeduplicationWorkflow(
        cache_path=str(work / "fuzzy-cache"),
        output_path=str(out),
        input_path=inp,
        input_filetype="parquet",
        text_field="text",
        seed=p["seed"],
        char_ngrams=p["ngram"],
        num_bands=p["bands"],
        minhashes_per_band=p["rows"],
    ).run()
    dup_ids = out / "FuzzyDuplicateIds"
    if not dup_ids.exists():  # Curator found no candidate pairs and skipped the removal list
        return _removed(live, set(live["id"].astype(str)))
    TextDuplicatesRemovalWorkflow(
        input_path=inp,
        ids_to_remove_path=str(dup_ids),
        output_path=str(work / "fuzzy-kept"),
        input_filetype="parquet",
        id_field=CURATOR_DEDUP_ID_STR,
        duplicate_id_field=CURATOR_DEDUP_ID_STR,
        id_generator_path=str(out / ID_GENERATOR_OUTPUT_FILENAME),
    ).run()
    return _removed(live, _ids(work / "fuzzy-kept"))


def semantic_duplicates(live: pd.DataFrame, cfg, work: Path) -> pd.DataFrame:
    """Live rows NeMo Curator's semantic dedup removes (``pos, id, duplicate_of``)."""
    from nemo_curator.stages.text.deduplication.semantic import TextSemanticDeduplicationWorkflow

    from flywheel.curation.semantic import model_path

    inp = _write(live, work / "semantic-input")
    k = cfg.clusters or max(1, int(round((len(live) / 2) ** 0.5)))
    TextSemanticDeduplicationWorkflow(
        input_path=inp,
        output_path=str(work / "semantic-output"),
        cache_path=str(work / "semantic-cache"),
        text_field="text",
        id_field="id",
        model_identifier=str(model_path(cfg.model)),
        n_clusters=min(k, len(live)),
        eps=1.0 - cfg.threshold,
        perform_removal=True,
        kmeans_random_state=cfg.seed,
        input_filetype="parquet",
        output_filetype="parquet",
    ).run()
    return _removed(live, _ids(work / "semantic-output" / "deduplicated"))


def classify(live: pd.DataFrame, qcfg, work: Path) -> pd.DataFrame:
    """``id, quality_pred, quality_score`` of every live row, from a NeMo Curator classifier stage."""
    import nemo_curator.stages.text.classifiers as classifiers
    from nemo_curator.pipeline import Pipeline
    from nemo_curator.stages.text.io.reader import ParquetReader
    from nemo_curator.stages.text.io.writer import ParquetWriter

    name = classifier_name(qcfg.model)
    task = CLASSIFIERS[name]["task"]
    kwargs = {"cache_dir": qcfg.cache_dir, "max_chars": qcfg.max_chars, "model_inference_batch_size": qcfg.batch_size}
    if task == "regression":
        kwargs.update(label_field="quality_label", float_score_field="quality_score", int_score_field="quality_pred")
    else:
        kwargs.update(label_field="quality_pred", score_field="quality_probs")
    stage = getattr(classifiers, name)(**kwargs)
    inp = _write(live, work / "quality-input")
    out = work / "quality-output"
    shutil.rmtree(out, ignore_errors=True)
    Pipeline(
        name="flywheel-quality",
        stages=[ParquetReader(file_paths=inp, fields=["id", "text"]), stage, ParquetWriter(path=str(out))],
    ).run()
    files = sorted(out.rglob("*.parquet"))
    got = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame(columns=["id"])
    if task == "categorical":
        labels = got["quality_pred"].astype(str).tolist()
        got["quality_score"] = [
            float(max(p)) if p is not None and len(p) else float("nan")
            for p in got.get("quality_probs", pd.Series([None] * len(got)))
        ]
        got["quality_pred"] = labels
    else:
        got["quality_pred"] = got["quality_pred"].astype(str)
    return got[["id", "quality_pred", "quality_score"]].astype({"id": str})


def keep_classified(pred: pd.DataFrame, qcfg) -> pd.Series:
    """The keep rule of ``QualityConfig`` on a Curator classifier's output (True = keep), by position of ``pred``."""
    if CLASSIFIERS[classifier_name(qcfg.model)]["task"] == "regression":
        return pred["quality_score"] >= qcfg.min_score
    return pred["quality_pred"].isin(qcfg.keep_labels)
