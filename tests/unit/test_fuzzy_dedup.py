"""Fuzzy dedup (MinHash + LSH + connected components) against brute-force Jaccard on planted near-duplicates."""

import itertools

import numpy as np
import pandas as pd
import pytest

from examples.near_duplicates import near_duplicate_corpus
from flywheel.core.config import CurationConfig, FuzzyDedupConfig
from flywheel.curation.fuzzy import find_duplicates
from flywheel.curation.minhash import jaccard, shingle_set, signatures


def _truth_pairs(df, n=24, threshold=0.8):
    """Every pair whose exact character-24-gram Jaccard is >= threshold, from Python sets of substrings."""
    sh = [set(t[i:i + n] for i in range(max(1, len(t) - n + 1))) for t in df.text]
    ids = df.id.tolist()
    out = set()
    for i, j in itertools.combinations(range(len(ids)), 2):
        inter = len(sh[i] & sh[j])
        if inter and inter / (len(sh[i]) + len(sh[j]) - inter) >= threshold:
            out.add(frozenset((ids[i], ids[j])))
    return out


def _component_pairs(dups):
    groups = {}
    for r in dups.itertuples():
        groups.setdefault(r.duplicate_of, {r.duplicate_of}).add(r.id)
    return {frozenset(p) for members in groups.values() for p in itertools.combinations(sorted(members), 2)}


def test_precision_and_recall_against_brute_force_jaccard():
    df, clusters = near_duplicate_corpus(150, seed=3)
    truth = _truth_pairs(df)
    assert len(truth) > 100  # the corpus really has near-duplicates (edits, swaps, footers, cuts, noise)
    dups, info = find_duplicates(df, FuzzyDedupConfig(enabled=True))  # the Curator preset, exact verification
    pred = _component_pairs(dups)
    tp = len(pred & truth)
    precision, recall = tp / len(pred), tp / len(truth)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall, info)
    # one survivor per component, the smallest id; everything removed points at it
    for r in dups.itertuples():
        assert r.duplicate_of < r.id and r.duplicate_of not in set(dups.id) and r.similarity >= 0.8
    # every removed document hangs on at least one verified edge, and verification only ever drops candidates
    assert info["candidate_pairs"] > info["verified_pairs"] >= len(dups) > 0


def test_unverified_lsh_candidates_are_less_precise_than_verified_ones():
    df, _ = near_duplicate_corpus(150, seed=3)
    truth = _truth_pairs(df)
    scores = {}
    for verify in ("exact", "minhash", "none"):
        pred = _component_pairs(find_duplicates(df, FuzzyDedupConfig(enabled=True, verify=verify))[0])
        scores[verify] = len(pred & truth) / len(pred)
    assert scores["exact"] > scores["minhash"] > scores["none"]


def test_signature_agreement_estimates_jaccard():
    df, _ = near_duplicate_corpus(40, copies=(1, 1), seed=5)
    sig = signatures(df.text.tolist())
    pos = {i: k for k, i in enumerate(df.id)}
    errors = []
    for c in range(40):
        a, b = pos[f"d{c:05d}-0"], pos[f"d{c:05d}-1"]
        exact = jaccard(shingle_set(df.text[a]), shingle_set(df.text[b]))
        errors.append(abs((sig[a] == sig[b]).mean() - exact))
    assert np.mean(errors) < 0.025  # the standard error at 260 hashes is about 0.015


def test_empty_and_short_documents():
    df = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "text": ["", "", "short one", "short one", "short two"]})
    dups, _ = find_duplicates(df, FuzzyDedupConfig(enabled=True))
    assert dups[["id", "duplicate_of"]].values.tolist() == [["d", "c"]]  # empty texts are never duplicates


def test_fast_preset_uses_word_shingles():
    df, _ = near_duplicate_corpus(60, seed=7)
    dups, _ = find_duplicates(df, FuzzyDedupConfig(enabled=True, preset="fast"))
    assert len(dups) > 0 and dups.similarity.min() >= 0.8
    with pytest.raises(ValueError, match="shingle"):
        signatures(["x"], shingle="byte")


def test_curation_pipeline_removes_planted_copies_with_reason():
    from flywheel.curation.pipeline import curate

    df, clusters = near_duplicate_corpus(40, copies=(1, 2), seed=11)
    df = df.assign(source="gen", page=0, kind="text", meta="{}")
    cfg = CurationConfig(min_words=3, fuzzy_dedup={"enabled": True})
    kept, removed, stats = curate(df[["id", "text", "source", "page", "kind", "meta"]], cfg)
    fuzzy = removed[removed.step == "fuzzy_dedup"]
    assert set(fuzzy.reason) == {"fuzzy_duplicate"} and len(fuzzy) > 0
    assert stats["steps"]["fuzzy_dedup"]["dropped_fuzzy_duplicate"] == len(fuzzy)
    assert stats["summary"]["kept"] == len(kept) == len(df) - len(removed)
    for r in fuzzy.itertuples():  # a removed copy points at a kept document of its own cluster
        assert r.duplicate_of in set(kept.id) and r.duplicate_of.split("-")[0] == r.id.split("-")[0]
