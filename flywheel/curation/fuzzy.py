"""Fuzzy deduplication across the whole dataset: MinHash -> LSH buckets -> verified edges -> connected components.

1. signatures per partition (on Dask workers; :mod:`flywheel.curation.minhash`), reduced to
   ``bands`` bucket hashes of ``rows`` values each;
2. documents sharing a bucket in any band are candidates — every pair of a small bucket, each
   member and the bucket's smallest id in a large one — global, not per partition;
3. each candidate edge is verified (``verify``): ``exact`` recomputes both documents' shingle sets
   and keeps the edge when their Jaccard similarity is >= ``threshold``; ``minhash`` uses the share
   of equal signature values (an unbiased Jaccard estimate); ``none`` keeps every LSH edge;
4. connected components of the kept edges (scipy): in each component the smallest id is kept, the
   others are removed as ``fuzzy_duplicate`` with ``duplicate_of`` = the kept id.

With 20 bands x 13 rows a pair at Jaccard 0.8 becomes a candidate with probability
1 - (1 - 0.8^13)^20 = 0.68 (the S-curve's knee is near 0.8); at 0.85 it is 0.92, at 0.9 0.997.
Presets (``FuzzyDedupConfig``): ``curator`` = NeMo Curator's (character 24-grams, 20 x 13 = 260 hashes, seed 42,
and its exact MinHash values: cuDF's murmur3, see :mod:`flywheel.curation.minhash`), ``fast`` = word 5-grams,
9 x 13 = 117 hashes, the rolling hash.

    dups, info = find_duplicates(df, FuzzyDedupConfig(enabled=True))   # id, duplicate_of, similarity, pos
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flywheel.curation.minhash import band_hashes, exact_jaccard, no_shingles, signatures

PRESETS = {
    "curator": {"shingle": "char", "ngram": 24, "bands": 20, "rows": 13, "hash": "murmur3"},
    "fast": {"shingle": "word", "ngram": 5, "bands": 9, "rows": 13, "hash": "rolling"},
}


def resolved(cfg) -> dict:
    """The preset's values, overridden by any field the config sets explicitly."""
    out = dict(PRESETS[cfg.preset])
    for key in ("shingle", "ngram", "bands", "rows", "hash"):
        if getattr(cfg, key) is not None:
            out[key] = getattr(cfg, key)
    if out["shingle"] == "word" and cfg.hash is None:
        out["hash"] = "rolling"  # murmur3 (cuDF's) is defined on character windows only
    out.update(seed=cfg.seed, threshold=cfg.threshold, verify=cfg.verify)
    return out


def signatures_with(texts: list[str], p: dict) -> np.ndarray:
    """:func:`~flywheel.curation.minhash.signatures` with resolved fuzzy-dedup parameters (:func:`resolved`);
    with ``backend: cudf`` in them, computed by cuDF on the GPU (the same values)."""
    if p.get("backend") == "cudf":
        from flywheel.curation.gpu import cudf_signatures

        return cudf_signatures(texts, p)
    return signatures(texts, p["shingle"], p["ngram"], p["bands"] * p["rows"], p["seed"], p.get("hash", "rolling"))


def curation_params(cfg) -> dict:
    """:func:`resolved` for a whole ``CurationConfig``: its fuzzy-dedup values plus the backend that hashes."""
    return {**resolved(cfg.fuzzy_dedup), "backend": cfg.backend}


def partition_signatures(part: pd.DataFrame, p: dict) -> pd.DataFrame:
    """One partition's ids with their signatures (columns ``s0..``) — what a Dask worker computes."""
    sig = signatures_with(part["text"].tolist(), p)
    out = pd.DataFrame(sig, columns=[f"s{k}" for k in range(sig.shape[1])], index=part.index)
    out.insert(0, "id", part["id"].astype(str).values)
    return out


ALL_PAIRS_UP_TO = 32  # buckets up to this size yield every pair; larger ones link each member to the anchor


def candidate_edges(ids: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """(i, j) index pairs sharing a bucket in some band: all pairs in small buckets, member-to-anchor
    (the smallest id) in large ones, so one odd anchor cannot hide a pair of true duplicates."""
    order = np.argsort(ids, kind="stable")  # members of a bucket come out smallest id first
    edges = []
    for band in range(bands.shape[1]):
        frame = pd.DataFrame({"h": bands[order, band], "i": order})
        sizes = frame.groupby("h", sort=False)["i"].transform("size").to_numpy()
        multi = frame[sizes > 1]
        for members in multi.groupby("h", sort=False)["i"].agg(list):
            if len(members) <= ALL_PAIRS_UP_TO:
                a, b = np.triu_indices(len(members), k=1)
                m = np.asarray(members)
                edges.append(np.stack([m[a], m[b]], axis=1))
            else:
                edges.append(np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1))
    if not edges:
        return np.empty((0, 2), np.int64)
    return np.unique(np.concatenate(edges), axis=0)


def find_duplicates(df: pd.DataFrame, cfg, sig: np.ndarray | None = None) -> tuple[pd.DataFrame, dict]:
    """Rows to remove: ``id, duplicate_of, similarity, pos`` (row position in ``df``); and counts.

    ``sig`` may be passed when the signatures were computed elsewhere (on Dask partitions), in the
    order of ``df``'s rows."""
    p = resolved(cfg)
    ids = df["id"].astype(str).to_numpy()
    texts = df["text"].tolist()
    if sig is None:
        sig = signatures_with(texts, p)
    empty = no_shingles(sig)
    edges = candidate_edges(ids, band_hashes(sig, p["bands"], p["rows"]))
    edges = edges[~(empty[edges[:, 0]] | empty[edges[:, 1]])] if len(edges) else edges
    info = {"candidate_pairs": int(len(edges))}
    if p["verify"] == "exact" and len(edges):
        sims = exact_jaccard(texts, edges, p["shingle"], p["ngram"])
    elif len(edges):
        sims = (sig[edges[:, 0]] == sig[edges[:, 1]]).mean(axis=1)
    else:
        sims = np.empty(0)
    if p["verify"] != "none" and len(edges):
        keep = sims >= p["threshold"]
        edges, sims = edges[keep], sims[keep]
    info["verified_pairs"] = int(len(edges))
    removed, info["components"] = linked_duplicates(ids, edges, sims)
    return removed, info


def linked_duplicates(ids: np.ndarray, edges: np.ndarray, sims: np.ndarray) -> tuple[pd.DataFrame, int]:
    """Connected components of the verified pairs (``edges`` index ``ids``): in each, the smallest id is
    kept and the others are removed as its duplicates. Returns ``id, duplicate_of, similarity, pos`` (the
    similarity that linked the document, its position in ``ids``) and the number of components."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(edges):
        return pd.DataFrame(
            {
                "id": pd.Series(dtype="str"),
                "duplicate_of": pd.Series(dtype="str"),
                "similarity": pd.Series(dtype="float64"),
                "pos": pd.Series(dtype="int64"),
            }
        ), 0
    n = len(ids)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    frame = pd.DataFrame({"id": ids, "label": labels})
    sizes = frame.groupby("label")["id"].transform("size")
    frame = frame[sizes > 1]
    keeper = frame.groupby("label")["id"].transform("min")
    removed = frame[frame["id"] != keeper].assign(duplicate_of=keeper[frame["id"] != keeper])
    best = pd.Series(sims, index=edges[:, 1]).groupby(level=0).max()  # the similarity that linked each doc
    removed = removed.assign(
        similarity=[float(best.get(i, np.nan)) for i in removed.index], pos=removed.index.to_numpy()
    )
    removed = removed[["id", "duplicate_of", "similarity", "pos"]].reset_index(drop=True)
    return removed, int(frame["label"].nunique())
