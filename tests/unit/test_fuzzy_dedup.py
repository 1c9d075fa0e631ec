"""Fuzzy dedup (MinHash + LSH + connected components) against brute-force Jaccard on planted near-duplicates."""

import itertools

import numpy as np
import pandas as pd
import pytest

from examples.near_duplicates import near_duplicate_corpus
from flywheel.curation.config import CurationConfig, FuzzyDedupConfig
from flywheel.curation.fuzzy import find_duplicates, resolved
from flywheel.curation.minhash import curator_permutations, jaccard, murmur_signatures, shingle_set, signatures


def _truth_pairs(df, n=24, threshold=0.8):
    """Every pair whose exact character-24-gram Jaccard is >= threshold, from Python sets of substrings."""
    sh = [set(t[i : i + n] for i in range(max(1, len(t) - n + 1))) for t in df.text]
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


@pytest.mark.parametrize("hash", ["rolling", "murmur3"])
def test_signature_agreement_estimates_jaccard(hash):
    df, _ = near_duplicate_corpus(40, copies=(1, 1), seed=5)
    sig = signatures(df.text.tolist(), hash=hash)
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


def _murmur3_32(data: bytes, seed: int) -> int:
    """The reference MurmurHash3_x86_32, in plain Python (an independent check of the numba kernel)."""
    m, c1, c2 = 0xFFFFFFFF, 0xCC9E2D51, 0x1B873593

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & m

    h, n = seed & m, len(data)
    for i in range(n // 4):
        k = rotl((int.from_bytes(data[4 * i : 4 * i + 4], "little") * c1) & m, 15) * c2 & m
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & m
    tail, k = data[n // 4 * 4 :], 0
    for i in reversed(range(len(tail))):
        k ^= tail[i] << (8 * i)
    if tail:
        h ^= rotl((k * c1) & m, 15) * c2 & m
    h ^= n
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & m
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & m
    return h ^ (h >> 16)


def _cudf_minhash(text: str, seed: int, a, b, width: int) -> list[int]:
    """cuDF's documented formula: min over width-character windows of (max(murmur3, 1) * a + b) mod 2^32."""
    if not text:
        return [0] * len(a)
    windows = [text[i : i + width] for i in range(len(text)) if i == 0 or len(text) - i >= width]
    hv = [max(_murmur3_32(w.encode(), seed), 1) for w in windows]
    return [min((h * int(ak) + int(bk)) & 0xFFFFFFFF for h in hv) for ak, bk in zip(a, b)]


def test_murmur3_signatures_equal_cudf_str_minhash():
    # cuDF's own example (docs.rapids.ai, cudf StringMethods.minhash):
    # s.str.minhash(0, a=[1, 2, 3], b=[4, 5, 6], width=5)
    got = murmur_signatures(["this is my", "favorite book"], 5, [1, 2, 3], [4, 5, 6], 0)
    assert got.tolist() == [[1305480171, 462824409, 74608232], [32665388, 65330773, 97996158]]
    rng = np.random.default_rng(0)
    texts = ["", "ab", "x" * 30, "héllo wörld ünïcode 😀 text", "日本語のテキストです。これは試験です。"]
    texts += [" ".join(rng.choice(["alpha", "beta", "δέλτα", "😀", "naïve"], 12)) for _ in range(20)]
    a, b = rng.integers(1, 2**31 - 1, 7).astype(np.uint32), rng.integers(0, 2**31 - 1, 7).astype(np.uint32)
    got = murmur_signatures(texts, 5, a, b, 1234)
    assert got.tolist() == [_cudf_minhash(t, 1234, a, b, 5) for t in texts]


def test_curator_preset_draws_nemo_curators_permutations():
    a, b, seed = curator_permutations(4, 42)
    gen = np.random.RandomState(42)  # GPUMinHash.generate_seeds: (a, b) pairs below 2^31 - 1, a >= 1
    want = [
        (gen.randint(1, np.uint32(2**31 - 1), dtype=np.uint32), gen.randint(0, np.uint32(2**31 - 1), dtype=np.uint32))
        for _ in range(4)
    ]
    assert list(zip(a.tolist(), b.tolist())) == [(int(x), int(y)) for x, y in want] and seed == int(want[0][0])
    sig = signatures(["some document text that is long enough"], "char", 24, 4, 42, hash="murmur3")
    assert sig.tolist() == [_cudf_minhash("some document text that is long enough", seed, a, b, 24)]


def test_hash_choice_follows_the_preset_and_is_checked():
    assert (
        resolved(FuzzyDedupConfig())["hash"] == "murmur3"
        and resolved(FuzzyDedupConfig(preset="fast"))["hash"] == "rolling"
    )
    assert resolved(FuzzyDedupConfig(shingle="word"))["hash"] == "rolling"  # murmur3 is defined on characters only
    with pytest.raises(ValueError, match="hash: murmur3"):
        FuzzyDedupConfig(preset="fast", hash="murmur3")
    with pytest.raises(ValueError, match="murmur3"):
        signatures(["x"], "word", 5, 4, 1, hash="murmur3")
