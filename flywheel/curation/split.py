"""Blending sources by weight, deterministic train/validation/test splits, and leakage protection.

- **blend**: rows are grouped by the first ``source`` glob they match; each group is sampled to
  ``weight x total`` rows (down-sampled without replacement, up-sampled with repeats), seeded.
- **split**: each row's split comes from a hash of ``seed`` and its id, so it does not depend on row
  order or on the other rows; with ``stratify_by`` (a column, or ``meta.<key>``) each stratum is
  cut by the fractions on its own, so every split has the same label mix.
- **leakage**: a train row that is an exact or near-duplicate (MinHash LSH + exact Jaccard >=
  the fuzzy threshold) of any validation/test row is removed from train (``leakage``,
  ``duplicate_of`` = the held-out row), so evaluation never scores what training has seen.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json

import numpy as np
import pandas as pd

from flywheel.curation.fuzzy import resolved, signatures_with
from flywheel.curation.minhash import band_hashes, exact_jaccard, no_shingles

LEAKAGE_BANDS, LEAKAGE_ROWS = 40, 6


def _unit_hash(seed: int, key: str) -> float:
    h = hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def blend(df: pd.DataFrame, weights: dict[str, float], total: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """Sample rows by source glob to ``weights`` (normalised) x ``total``; returns the rows and per-glob counts."""
    norm = sum(weights.values())
    group = pd.Series(None, index=df.index, dtype="object")
    for pattern in weights:  # first matching glob wins
        free = group.isna()
        group[free & df["source"].astype(str).map(lambda s, p=pattern: fnmatch.fnmatch(s, p))] = pattern
    parts, info = [], {}
    rng = np.random.default_rng(seed)
    for pattern, w in weights.items():
        rows = df[group == pattern]
        want = int(round(total * w / norm))
        if rows.empty or want == 0:
            info[pattern] = {"available": len(rows), "taken": 0}
            continue
        # every row want // n times, the remainder drawn without replacement: repeats are as even as possible
        reps, rest = divmod(want, len(rows))
        idx = np.concatenate([np.tile(np.arange(len(rows)), reps), rng.choice(len(rows), size=rest, replace=False)])
        parts.append(rows.iloc[np.sort(idx)])
        info[pattern] = {"available": len(rows), "taken": want, "repeated": max(0, want - len(rows))}
    out = pd.concat(parts) if parts else df.head(0)
    # repeated rows need their own ids: <id>#<k> for the k-th extra copy
    dup_rank = out.groupby("id").cumcount()
    out = out.assign(
        id=np.where(dup_rank > 0, out["id"].astype(str) + "#" + dup_rank.astype(str), out["id"].astype(str))
    )
    return out.reset_index(drop=True), info


def _stratum(df: pd.DataFrame, by: str | None) -> pd.Series:
    if not by:
        return pd.Series("all", index=df.index)
    if by.startswith("meta."):
        key = by[5:]
        return df["meta"].map(lambda m: str(json.loads(m).get(key)) if isinstance(m, str) and m else "None")
    if by not in df.columns:
        raise ValueError(f"stratify_by: no column {by!r} (columns: {list(df.columns)})")
    return df[by].astype(str)


def assign_splits(
    df: pd.DataFrame, fractions: dict[str, float], seed: int, stratify_by: str | None = None
) -> pd.Series:
    """The split name of every row, deterministic in (seed, id)."""
    names = list(fractions)
    cum = np.cumsum([fractions[n] for n in names]) / sum(fractions.values())
    u = df["id"].astype(str).map(lambda i: _unit_hash(seed, i))
    out = pd.Series(names[-1], index=df.index, dtype="object")
    if not stratify_by:
        out[:] = np.array(names, dtype=object)[np.searchsorted(cum, u.to_numpy(), side="right").clip(0, len(names) - 1)]
        return out
    for _, idx in _stratum(df, stratify_by).groupby(_stratum(df, stratify_by)).groups.items():
        order = u[idx].sort_values(kind="stable").index
        bounds = np.round(cum * len(order)).astype(int)
        start = 0
        for name, end in zip(names, bounds):
            out[order[start:end]] = name
            start = end
    return out


def leakage(df: pd.DataFrame, split: pd.Series, fuzzy_cfg, train: str = "train") -> pd.DataFrame:
    """Train rows that duplicate a held-out row: ``pos`` (row position), ``id``, ``duplicate_of``, ``similarity``."""
    # Leakage wants recall: 40 bands of 6 rows make a pair at Jaccard 0.8 a candidate with probability
    # 1 - (1 - 0.8^6)^40 > 0.9999 (Curator's 20 x 13 gives 0.68); candidates are verified exactly anyway.
    p = {**resolved(fuzzy_cfg), "bands": LEAKAGE_BANDS, "rows": LEAKAGE_ROWS}
    texts = df["text"].tolist()
    ids = df["id"].astype(str).to_numpy()
    is_train = (split == train).to_numpy()
    if is_train.all() or not is_train.any():
        return pd.DataFrame(columns=["pos", "id", "duplicate_of", "similarity"])
    sig = signatures_with(texts, p)
    empty = no_shingles(sig)
    bands = band_hashes(sig, p["bands"], p["rows"])
    pos = np.arange(len(df))
    train_mask, held_mask = is_train & ~empty, ~is_train & ~empty
    pairs = set()
    for b in range(bands.shape[1]):  # candidates: a train row and a held-out row sharing a bucket
        left = pd.DataFrame({"h": bands[train_mask, b], "i": pos[train_mask]})
        right = pd.DataFrame({"h": bands[held_mask, b], "j": pos[held_mask]})
        pairs.update(map(tuple, left.merge(right, on="h")[["i", "j"]].to_numpy()))
    pairs = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    found = pd.DataFrame(
        {"pos": pairs[:, 0], "j": pairs[:, 1], "similarity": exact_jaccard(texts, pairs, p["shingle"], p["ngram"])}
    )
    # each leaking train row once: its most similar held-out row (ties: the first by position)
    found = (
        found[found["similarity"] >= p["threshold"]]
        .sort_values(["pos", "similarity", "j"], ascending=[True, False, True])
        .drop_duplicates("pos")
    )
    rows = [
        {"pos": int(i), "id": ids[i], "duplicate_of": ids[j], "similarity": float(sim)}
        for i, j, sim in found[["pos", "j", "similarity"]].itertuples(index=False)
    ]
    return pd.DataFrame(rows, columns=["pos", "id", "duplicate_of", "similarity"])
