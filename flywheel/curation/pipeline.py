"""Run a CurationConfig over a document Dataset, partition-wise on Dask.

Per partition (``map_partitions``): sanity, normalisation, PII redaction, the filters (word count,
non-alnum, language, NeMo Curator's heuristics). Then, over the whole dataset: exact dedup (the
smallest id of each text hash across *all* partitions is kept, the others are removed with
``reason=exact_duplicate`` and ``duplicate_of=<kept id>``), fuzzy dedup (signatures on the
partitions, LSH and connected components in the driver), semantic dedup, blending and splits with
leakage protection. Every removed row comes back with its step, reason and ``duplicate_of``.

The Dask cluster is a scheduler address (``FLYWHEEL_DASK_ADDRESS``) or, by default, an
in-process LocalCluster; with ``backend: cudf`` the MinHash signatures are computed by cuDF on a
dask-cuda cluster (flywheel/curation/gpu.py; the same values as the CPU kernel) while the
per-document steps stay on the CPU workers.

    from flywheel.curation.pipeline import curate
    kept, removed, stats = curate(df, CurationConfig(), dask_address=None)
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import pandas as pd

from flywheel.core.cluster import dask_client
from flywheel.core.steps import StepStats
from flywheel.curation.config import CurationConfig
from flywheel.curation.steps import (
    HeuristicFilters,
    LanguageFilter,
    NonAlphaNumericFilter,
    PiiRedaction,
    QualityFilter,
    TextSanity,
    UnicodeNormalizer,
    WordCountFilter,
    text_hash,
)


def build_steps(cfg: CurationConfig) -> list:
    steps = [TextSanity()]
    if cfg.normalize_unicode:
        steps.append(UnicodeNormalizer(cfg.fix_mojibake))
    if cfg.pii.enabled:  # before any filter, so removed rows are redacted too
        steps.append(PiiRedaction(cfg.pii))
    steps.append(WordCountFilter(cfg.min_words, cfg.max_words))
    if cfg.language.keep:
        steps.append(LanguageFilter(cfg.language))
    steps.append(NonAlphaNumericFilter(cfg.max_non_alnum_ratio))
    if cfg.heuristics:
        steps.append(HeuristicFilters(cfg.heuristics))
    if cfg.quality.enabled and not _curator_quality(cfg):  # the costly model last, on what the cheap filters kept
        steps.append(QualityFilter(cfg.quality))
    return steps


def _curator_quality(cfg: CurationConfig) -> bool:
    """The quality step is a NeMo Curator classifier, run over the whole set after exact dedup."""
    return cfg.quality.enabled and (cfg.quality.model or "").startswith("nemo_curator:")


def step_columns(cfg: CurationConfig) -> dict:
    """Columns (name -> dtype) the per-partition steps add to every row."""
    return dict(QualityFilter.columns) if cfg.quality.enabled and not _curator_quality(cfg) else {}


def _run_partition(part: pd.DataFrame, cfg: CurationConfig) -> pd.DataFrame:
    """Apply the steps; return every row with ``_step``/``reason`` set where it was dropped."""
    if part.empty:
        added = {name: pd.Series(dtype=dtype) for name, dtype in step_columns(cfg).items()}
        return part.assign(
            **added,
            _step=pd.Series(dtype="object"),
            reason=pd.Series(dtype="object"),
            hash=pd.Series(dtype="object"),
            _modified=pd.Series(dtype="object"),
        )
    live = part
    removed = []
    modified: dict = {}
    seconds: dict = {}
    for step in build_steps(cfg):
        live, gone, st = step.apply(live)
        seconds[step.name] = st.seconds
        if st.modified:
            modified[step.name] = st.modified
        if len(gone):
            removed.append(gone.rename(columns={"step": "_step"}))
    live = live.assign(_step=None, reason=None)
    out = pd.concat([live, *removed], ignore_index=True) if removed else live.reset_index(drop=True)
    out["hash"] = out["text"].map(text_hash)
    out["_modified"] = None
    if len(out):
        # carried back to the driver for the step counts and timings
        out.at[0, "_modified"] = json.dumps({"modified": modified, "seconds": seconds})
    return out


def _live(result: pd.DataFrame, mask) -> tuple:
    """Positions of the rows selected by ``mask`` in ``result`` (whose index may repeat) and their id/text."""
    import numpy as np

    positions = np.flatnonzero(mask)
    return positions, result.iloc[positions][["id", "text"]].reset_index(drop=True)


def _mark_removed(result: pd.DataFrame, positions, dups: pd.DataFrame, step: str, reason: str) -> None:
    """Mark the rows a dedup step found (``dups.pos`` indexes ``positions``) as removed, in place."""
    rows = positions[dups["pos"].to_numpy(dtype=int)]
    for column, value in (("_step", step), ("reason", reason), ("duplicate_of", dups["duplicate_of"].to_numpy())):
        result.iloc[rows, result.columns.get_loc(column)] = value


def _fuzzy(result: pd.DataFrame, cfg: CurationConfig, dask_address: str | None, work=None) -> StepStats:
    """Mark near-duplicates among the rows still live (in place, by position); signatures are computed on Dask."""
    import dask.dataframe as dd

    from flywheel.curation.fuzzy import curation_params, find_duplicates, partition_signatures

    positions, live = _live(result, result["_step"].isna().to_numpy())
    st = StepStats("fuzzy_dedup", total=len(live))
    t0 = time.perf_counter()
    if len(live) and cfg.backend == "nemo_curator":
        from flywheel.curation.nemo import fuzzy_duplicates

        dups = fuzzy_duplicates(live, curation_params(cfg), work)
        _mark_removed(result, positions, dups, "fuzzy_dedup", "fuzzy_duplicate")
        st.dropped["fuzzy_duplicate"] = len(dups)
    elif len(live):
        p = curation_params(cfg)
        with dask_client(dask_address, cuda=cfg.backend == "cudf"):
            parts = dd.from_pandas(live, npartitions=max(1, min(cfg.partitions, len(live))))
            sig = parts.map_partitions(partition_signatures, p, meta=partition_signatures(live.head(0), p)).compute()
        dups, _ = find_duplicates(live, cfg.fuzzy_dedup, sig.drop(columns=["id"]).to_numpy())
        _mark_removed(result, positions, dups, "fuzzy_dedup", "fuzzy_duplicate")
        st.dropped["fuzzy_duplicate"] = len(dups)
    st.kept = st.total - sum(st.dropped.values())
    st.seconds = time.perf_counter() - t0
    return st


def _semantic(result: pd.DataFrame, cfg: CurationConfig, work=None) -> StepStats:
    """Mark semantic duplicates among the rows still live (in place, by position). Tables are not embedded."""
    from flywheel.curation.semantic import semantic_duplicates

    positions, live = _live(result, result["_step"].isna().to_numpy() & (result["kind"] != "table").to_numpy())
    st = StepStats("semantic_dedup", total=len(live))
    t0 = time.perf_counter()
    if len(live) > 1:
        if cfg.backend == "nemo_curator":
            from flywheel.curation.nemo import semantic_duplicates as curator_semantic

            dups = curator_semantic(live, cfg.semantic_dedup, work)
        else:
            dups, _ = semantic_duplicates(live, cfg.semantic_dedup)
        _mark_removed(result, positions, dups, "semantic_dedup", "semantic_duplicate")
        if len(dups):
            st.dropped["semantic_duplicate"] = len(dups)
    st.kept = st.total - sum(st.dropped.values())
    st.seconds = time.perf_counter() - t0
    return st


def _quality_by_curator(result: pd.DataFrame, cfg: CurationConfig, work) -> StepStats:
    """A NeMo Curator classifier over the rows still live (tables are not judged); marks the rejected in place."""
    from flywheel.curation.nemo import classify, keep_classified

    positions, live = _live(result, result["_step"].isna().to_numpy() & (result["kind"] != "table").to_numpy())
    st = StepStats("quality", total=len(live))
    t0 = time.perf_counter()
    for column, dtype in QualityFilter.columns.items():
        result[column] = pd.Series(dtype=dtype, index=result.index)
    if len(live):
        pred = classify(live, cfg.quality, work).set_index("id").reindex(live["id"].astype(str))
        for column in QualityFilter.columns:
            result.iloc[positions, result.columns.get_loc(column)] = pred[column].to_numpy()
        gone = ~keep_classified(pred.reset_index(), cfg.quality).to_numpy()
        rows = positions[gone]
        result.iloc[rows, result.columns.get_loc("_step")] = "quality"
        result.iloc[rows, result.columns.get_loc("reason")] = "low_quality"
        if gone.any():
            st.dropped["low_quality"] = int(gone.sum())
    st.kept = st.total - sum(st.dropped.values())
    st.seconds = time.perf_counter() - t0
    return st


def _blend(kept: pd.DataFrame, cfg: CurationConfig):
    from flywheel.curation.split import blend

    out, info = blend(kept, cfg.blend.weights, cfg.blend.total or len(kept), cfg.blend.seed)
    base_ids = set(out["id"].str.replace(r"#\d+$", "", regex=True))
    gone = kept[~kept["id"].astype(str).isin(base_ids)].assign(step="blend", reason="not_sampled", duplicate_of=None)
    st = StepStats("blend", total=len(kept), kept=len(out))
    if len(gone):
        st.dropped["not_sampled"] = len(gone)
    st.modified = sum(v.get("repeated", 0) for v in info.values())  # rows added as repeats (up-sampling)
    return out.sort_values("id").reset_index(drop=True), gone, st


def _split(kept: pd.DataFrame, cfg: CurationConfig):
    from flywheel.curation.split import assign_splits, leakage

    split = assign_splits(kept, cfg.split.fractions, cfg.split.seed, cfg.split.stratify_by)
    st = StepStats("split", total=len(kept))
    kept = kept.assign(split=split.to_numpy())
    gone = kept.head(0).assign(step=None, reason=None, duplicate_of=None)
    if cfg.split.leakage:
        leaks = leakage(kept, split, cfg.fuzzy_dedup, cfg.split.train)
        if len(leaks):
            rows = kept.iloc[leaks["pos"].to_numpy()]
            gone = rows.assign(step="split", reason="leakage", duplicate_of=leaks["duplicate_of"].to_numpy())
            kept = kept.drop(index=rows.index)
            st.dropped["leakage"] = len(gone)
    st.kept = len(kept)
    return kept.reset_index(drop=True), gone, st


def _mark_bad_text(df: pd.DataFrame) -> pd.DataFrame:
    """Before Dask sees the rows: Dask turns text columns into Arrow strings, which would make ``42``
    the text "42" and fail on lone surrogates (JSON can carry them). Such rows get a printable text
    and a ``_bad_text`` reason that TextSanity drops them with."""

    def verdict(t):
        if not isinstance(t, str):
            return "not_text"
        try:
            t.encode("utf-8")
            return None
        except UnicodeEncodeError:
            return "invalid_utf8"

    bad = df["text"].map(verdict)
    if bad.isna().all():
        return df
    df = df.copy()
    df["text"] = [
        ("" if b == "not_text" else t.encode("utf-8", "backslashreplace").decode("utf-8")) if b else t
        for t, b in zip(df["text"], bad)
    ]
    return df.assign(_bad_text=bad)


@contextlib.contextmanager
def _curator_work(cfg: CurationConfig):
    """A scratch folder for the Parquet handed to NeMo Curator (backend nemo_curator), removed afterwards."""
    if cfg.backend != "nemo_curator":
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="flywheel-curator-") as work:
        yield Path(work)


def curate(df: pd.DataFrame, cfg: CurationConfig, dask_address: str | None = None):
    import dask.dataframe as dd

    if cfg.backend == "cudf":
        from flywheel.curation.gpu import require_gpu

        require_gpu()
    if cfg.backend == "nemo_curator":
        from flywheel.curation.nemo import require_curator

        require_curator()
    build_steps(cfg)  # a step that does not fit its config (a classifier's labels) fails here, before any work
    df = _mark_bad_text(df.reset_index(drop=True))
    with dask_client(dask_address):  # per-document Python steps: CPU workers on every backend
        ddf = dd.from_pandas(df, npartitions=max(1, min(cfg.partitions, len(df) or 1)))
        meta = _run_partition(df.head(0), cfg)
        marked = ddf.map_partitions(_run_partition, cfg, meta=meta)
        if cfg.exact_dedup:
            live = marked[marked["_step"].isna()]
            first = live.groupby("hash")["id"].min().rename("_first_id").reset_index()
            marked = marked.merge(first, on="hash", how="left")
        result = marked.compute()

    stats: OrderedDict[str, StepStats] = OrderedDict()
    total = len(df)
    for step in build_steps(cfg):
        st = StepStats(step.name, total=total)
        dropped = result[result["_step"] == step.name]
        st.dropped.update(dropped["reason"].tolist())
        st.kept = total - len(dropped)
        stats[step.name] = st
        total = st.kept
    for cell in result["_modified"].dropna():  # summed over partitions (seconds: CPU time of all workers)
        carried = json.loads(cell)
        for name, n in carried["modified"].items():
            stats[name].modified += n
        for name, sec in carried["seconds"].items():
            stats[name].seconds += sec
    result = result.drop(columns=["_modified"])
    if cfg.exact_dedup:
        live_mask = result["_step"].isna()
        dup = live_mask & (result["id"] != result["_first_id"])
        st = StepStats("exact_dedup", total=int(live_mask.sum()))
        st.dropped["exact_duplicate"] = int(dup.sum())
        st.kept = st.total - int(dup.sum())
        stats["exact_dedup"] = st
        result.loc[dup, "_step"] = "exact_dedup"
        result.loc[dup, "reason"] = "exact_duplicate"
        result["duplicate_of"] = result["_first_id"].where(dup, None)
        result = result.drop(columns=["_first_id"])
    else:
        result["duplicate_of"] = None
    with _curator_work(cfg) as work:
        if _curator_quality(cfg):
            stats["quality"] = _quality_by_curator(result, cfg, work)
        if cfg.fuzzy_dedup.enabled:
            stats["fuzzy_dedup"] = _fuzzy(result, cfg, dask_address, work)
        if cfg.semantic_dedup.enabled:
            stats["semantic_dedup"] = _semantic(result, cfg, work)
    result = result.drop(columns=["_bad_text"], errors="ignore")
    keep_mask = result["_step"].isna()
    kept = result[keep_mask].drop(columns=["_step", "reason", "duplicate_of"]).sort_values("id").reset_index(drop=True)
    removed = result[~keep_mask].rename(columns={"_step": "step"}).sort_values("id").reset_index(drop=True)
    if cfg.blend.weights:
        kept, gone, stats["blend"] = _blend(kept, cfg)
        removed = pd.concat([removed, gone], ignore_index=True)
    if cfg.split.fractions:
        kept, gone, stats["split"] = _split(kept, cfg)
        removed = pd.concat([removed, gone], ignore_index=True)
    summary = {"total": len(df), "kept": len(kept)}
    for st in stats.values():
        for k, v in st.dropped.items():
            summary[f"dropped_{k}"] = summary.get(f"dropped_{k}", 0) + v
    return kept, removed, {"summary": summary, "steps": {k: v.as_dict() for k, v in stats.items()}}
