"""Bounded-memory curation of a Dataset on disk (``CurationConfig.streaming``), for corpora larger than RAM.

The in-memory path (pipeline.curate) gathers every row in the driver. This path never does:

1. **Per part, on the Dask workers**: each Parquet part of the source Dataset (50,000 rows) is read,
   run through the partition steps (sanity, normalisation, PII, filters), and written back to a work
   folder as a marked part (``_step``/``reason`` set on removed rows, ``hash`` of the folded text).
   With fuzzy dedup on, the worker also writes the LSH band hashes of the part's live rows.
2. **Exact dedup** as a Dask groupby over the marked parts' ``(id, hash)`` columns with ``split_out``
   (a shuffle across partitions): only the hashes seen more than once come back, then only the ids
   that duplicate them.
3. **Fuzzy dedup**: the driver holds the band hashes (bands x 8 bytes per document: 160 B for the
   Curator preset, about 1/6 of a 1 KB document), finds candidate pairs, reads the texts of the
   candidates alone for exact Jaccard, and runs connected components.
4. **Write-out**, one marked part at a time: the dedup marks are applied by id and the rows are
   streamed into the curated and removed Datasets.

Peak memory is a few parts per worker plus the band hashes and the duplicate ids — not the corpus
(bench/RESULTS.md measures a 1 GB JSONL). Semantic dedup, blending and splits need the whole kept set
and are refused here with a clear error (run them on the curated output).

    from flywheel.curation.streaming import curate_streaming
    stats = curate_streaming(src_dataset, cfg, kept_writer, removed_writer, work_dir, dask_address)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from flywheel.core.errors import ConfigError
from flywheel.core.steps import StepStats
from flywheel.curation.config import CurationConfig


def use_streaming(cfg: CurationConfig, rows: int) -> bool:
    if cfg.streaming == "on":
        check_streamable(cfg)
        return True
    if cfg.streaming == "off":
        return False
    try:
        check_streamable(cfg)
    except ConfigError:
        return False
    return rows > cfg.stream_above_rows


def check_streamable(cfg: CurationConfig) -> None:
    if cfg.backend == "nemo_curator":
        raise ConfigError("streaming: backend nemo_curator hands whole sets to NeMo Curator, which streams them itself")
    needs_all = [
        name
        for name, on in (
            ("semantic_dedup", cfg.semantic_dedup.enabled),
            ("blend", bool(cfg.blend.weights)),
            ("split", bool(cfg.split.fractions)),
        )
        if on
    ]
    if needs_all:
        raise ConfigError(
            f"streaming: {', '.join(needs_all)} need the whole kept set in memory; turn streaming off "
            "or run them on the curated output"
        )


def _part_task(src: str, out: str, cfg_json: str) -> dict:
    """Worker: mark one source part and write it (and its live rows' band hashes) to the work folder."""
    from flywheel.curation.pipeline import _mark_bad_text, _run_partition

    cfg = CurationConfig.model_validate_json(cfg_json)
    df = _mark_bad_text(pd.read_parquet(src).reset_index(drop=True))
    marked = _run_partition(df, cfg)
    carried = json.loads(marked["_modified"].dropna().iloc[0]) if marked["_modified"].notna().any() else {}
    marked = marked.drop(columns=["_modified", "_bad_text"], errors="ignore")
    drops = marked.loc[marked["_step"].notna(), ["_step", "reason"]].value_counts().reset_index(name="n")
    marked.to_parquet(out, index=False)
    if cfg.fuzzy_dedup.enabled:
        from flywheel.curation.fuzzy import curation_params, signatures_with
        from flywheel.curation.minhash import band_hashes, no_shingles

        p = curation_params(cfg)
        live = marked[marked["_step"].isna()]
        sig = signatures_with(live["text"].tolist(), p)
        np.savez(
            out + ".bands.npz",
            ids=live["id"].astype(str).to_numpy(),
            bands=band_hashes(sig, p["bands"], p["rows"]),
            empty=no_shingles(sig),
        )
    return {"rows": len(df), "drops": drops.to_dict("records"), "carried": carried}


def _exact_duplicates(marked: list[str], partitions: int) -> pd.DataFrame:
    """``id, duplicate_of`` of live rows whose hash an earlier (smaller) id already has; a Dask shuffle."""
    import dask.dataframe as dd

    live = dd.read_parquet(marked, columns=["id", "hash", "_step"])
    live = live[live["_step"].isna()][["id", "hash"]]
    groups = live.groupby("hash")["id"].agg(["min", "count"], split_out=max(1, partitions))
    repeated = groups[groups["count"] > 1][["min"]].compute()
    if not len(repeated):
        return pd.DataFrame({"id": pd.Series(dtype="str"), "duplicate_of": pd.Series(dtype="str")})
    rep = dd.from_pandas(repeated.reset_index(), npartitions=1)
    hits = live.merge(rep, on="hash", how="inner")
    hits = hits[hits["id"] != hits["min"]][["id", "min"]].compute()
    return hits.rename(columns={"min": "duplicate_of"}).reset_index(drop=True)


def _fuzzy_duplicates(marked: list[str], cfg: CurationConfig, exact_ids: set) -> tuple[pd.DataFrame, dict]:
    """Near-duplicates from the parts' band hashes; candidates verified on their texts alone."""
    from flywheel.curation.fuzzy import candidate_edges, linked_duplicates, resolved
    from flywheel.curation.minhash import exact_jaccard

    p = resolved(cfg.fuzzy_dedup)
    ids, bands, empty = [], [], []
    for m in marked:
        z = np.load(m + ".bands.npz", allow_pickle=True)
        keep = ~np.isin(z["ids"], list(exact_ids)) if exact_ids else np.ones(len(z["ids"]), bool)
        ids.append(z["ids"][keep])
        bands.append(z["bands"][keep])
        empty.append(z["empty"][keep])
    ids = np.concatenate(ids) if ids else np.empty(0, object)
    bands = np.concatenate(bands) if bands else np.empty((0, p["bands"]), np.uint64)
    empty = np.concatenate(empty) if empty else np.empty(0, bool)
    edges = candidate_edges(ids, bands) if len(ids) else np.empty((0, 2), np.int64)
    edges = edges[~(empty[edges[:, 0]] | empty[edges[:, 1]])] if len(edges) else edges
    info = {"candidate_pairs": int(len(edges))}
    if len(edges) and p["verify"] != "none":
        need = np.unique(edges)
        wanted = set(ids[need])
        texts: dict[str, str] = {}
        for m in marked:  # a second pass that keeps only the candidates' texts
            part = pd.read_parquet(m, columns=["id", "text"])
            part = part[part["id"].isin(wanted)]
            texts.update(zip(part["id"], part["text"]))
        pairs = np.searchsorted(need, edges)  # edges renumbered into ``need`` (sorted, unique)
        if p["verify"] == "exact":
            sims = exact_jaccard([texts[ids[i]] for i in need], pairs, p["shingle"], p["ngram"])
        else:  # minhash estimate from the band agreement is too coarse: verify on the texts' signatures
            from flywheel.curation.fuzzy import signatures_with

            sig = signatures_with([texts[ids[i]] for i in need], p)
            sims = (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1)
        keep = sims >= p["threshold"]
        edges, sims = edges[keep], sims[keep]
    else:
        sims = np.ones(len(edges))
    info["verified_pairs"] = int(len(edges))
    removed, info["components"] = linked_duplicates(ids, edges, sims)
    return removed[["id", "duplicate_of", "similarity"]], info


def _record(dups: pd.DataFrame, step: str, reason: str, total: int, t0: float, marks: dict) -> StepStats:
    """Counts of one dedup step; its removals added to ``marks`` (id -> step, reason, duplicate_of)."""
    st = StepStats(step, total=total)
    if len(dups):
        st.dropped[reason] = len(dups)
    marks.update({i: (step, reason, d) for i, d in zip(dups["id"], dups["duplicate_of"])})
    st.kept, st.seconds = total - len(dups), time.perf_counter() - t0
    return st


def curate_streaming(
    src, cfg: CurationConfig, kept_writer, removed_writer, work: Path, dask_address: str | None = None
) -> dict:
    """Curate the Dataset ``src`` part by part into the two DatasetWriters; returns the stats dict."""
    from flywheel.core.cluster import dask_client
    from flywheel.curation.pipeline import build_steps

    check_streamable(cfg)
    if cfg.backend == "cudf":
        from flywheel.curation.gpu import require_gpu

        require_gpu()
    work = Path(work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    parts = sorted(Path(src.path).glob("part-*.parquet"))
    if not parts or not src.rows:  # nothing to curate: two empty Datasets with the source's columns
        empty = src.to_pandas().head(0)
        kept_writer.write(empty)
        removed_writer.write(empty.assign(step=None, reason=None, duplicate_of=None))
        return {"summary": {"total": 0, "kept": 0}, "steps": {}, "phase1_seconds": 0.0}
    marked = [str(work / f"marked-{i:05d}.parquet") for i in range(len(parts))]
    cfg_json = cfg.model_dump_json()
    stats: OrderedDict[str, StepStats] = OrderedDict()
    try:
        # without a cluster address: one single-thread worker process per core, since the per-document
        # filters are pure Python and threads would share one GIL (1.75x on a 1 GB corpus, bench/RESULTS.md)
        with dask_client(
            dask_address, workers=os.cpu_count() or 1, threads=1, processes=True, cuda=cfg.backend == "cudf"
        ) as client:
            t0 = time.perf_counter()
            outs = client.gather(
                client.map(_part_task, [str(p) for p in parts], marked, [cfg_json] * len(parts), pure=False)
            )
            phase1 = time.perf_counter() - t0
            total = sum(o["rows"] for o in outs)
            for step in build_steps(cfg):
                st = StepStats(step.name, total=total)
                for o in outs:
                    for d in o["drops"]:
                        if d["_step"] == step.name:
                            st.dropped[d["reason"]] = st.dropped.get(d["reason"], 0) + int(d["n"])
                    carried = o["carried"]
                    st.modified += carried.get("modified", {}).get(step.name, 0)
                    st.seconds += carried.get("seconds", {}).get(step.name, 0.0)
                st.kept = total - sum(st.dropped.values())
                stats[step.name] = st
                total = st.kept
            marks: dict[str, tuple[str, str, str | None]] = {}
            if cfg.exact_dedup:
                t0 = time.perf_counter()
                dups = _exact_duplicates(marked, cfg.partitions)
                stats["exact_dedup"] = _record(dups, "exact_dedup", "exact_duplicate", total, t0, marks)
                total = stats["exact_dedup"].kept
        if cfg.fuzzy_dedup.enabled:
            t0 = time.perf_counter()
            dups, _ = _fuzzy_duplicates(marked, cfg, set(marks))
            stats["fuzzy_dedup"] = _record(dups, "fuzzy_dedup", "fuzzy_duplicate", total, t0, marks)
        kept_n = 0
        for m in marked:  # write-out, one part at a time
            part = pd.read_parquet(m)
            hit = part["id"].map(marks)
            found = hit.notna() & part["_step"].isna()
            if found.any():
                part.loc[found, "_step"] = hit[found].str[0]
                part.loc[found, "reason"] = hit[found].str[1]
                part.loc[found, "duplicate_of"] = hit[found].str[2]
            if "duplicate_of" not in part:
                part["duplicate_of"] = None
            keep = part["_step"].isna()
            kept = part[keep].drop(columns=["_step", "reason", "duplicate_of", "hash"])
            gone = part[~keep].rename(columns={"_step": "step"}).drop(columns=["hash"])
            kept_n += len(kept)
            kept_writer.write(kept.reset_index(drop=True))
            removed_writer.write(gone.reset_index(drop=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n_total = next(iter(stats.values())).total if stats else 0
    summary = {"total": n_total, "kept": kept_n}
    for st in stats.values():
        for k, v in st.dropped.items():
            summary[f"dropped_{k}"] = summary.get(f"dropped_{k}", 0) + v
    return {"summary": summary, "steps": {k: v.as_dict() for k, v in stats.items()}, "phase1_seconds": phase1}
