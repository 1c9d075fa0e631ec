"""Curation: which rows each step removes, and the counts it reports."""

import pandas as pd

from flywheel.curation.config import CurationConfig
from flywheel.curation.pipeline import curate
from flywheel.curation.steps import NonAlphaNumericFilter, UnicodeNormalizer, WordCountFilter


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


def test_filters_and_global_exact_dedup_remove_the_right_rows():
    df = _df(
        [
            "Hello   world this is fine",  # d0 kept (normalised)
            "hello world THIS is fine",  # d1 duplicate of d0 after case/space folding
            "too short",  # d2 too few words
            "$$$$ %%%% ^^^^ &&&& ok ok ok",  # d3 symbols
            "Another good row here",  # d4 kept
            "\ufb01ne ligature text row",  # d5 kept, NFKC turns the ligature into 'fi'
            "Another  good row here",  # d6 duplicate of d4, in the other partition
            "x y z w",  # d7 kept
        ]
    )
    kept, removed, stats = curate(df, CurationConfig(partitions=2))
    assert kept["id"].tolist() == ["d0", "d4", "d5", "d7"]
    assert kept.set_index("id").loc["d5", "text"] == "fine ligature text row"
    assert kept.set_index("id").loc["d0", "text"] == "Hello world this is fine"
    got = {r["id"]: (r["step"], r["reason"], r["duplicate_of"]) for r in removed.to_dict("records")}
    assert got == {
        "d1": ("exact_dedup", "exact_duplicate", "d0"),
        "d2": ("word_count", "too_few_words", None),
        "d3": ("non_alnum", "non_alnum", None),
        "d6": ("exact_dedup", "exact_duplicate", "d4"),
    }
    assert stats["summary"] == {
        "total": 8,
        "kept": 4,
        "dropped_too_few_words": 1,
        "dropped_non_alnum": 1,
        "dropped_exact_duplicate": 2,
    }
    assert stats["steps"]["word_count"]["total"] == 8 and stats["steps"]["non_alnum"]["total"] == 7
    exact = {k: v for k, v in stats["steps"]["exact_dedup"].items() if k != "seconds"}
    assert exact == {"total": 6, "kept": 4, "dropped_exact_duplicate": 2}
    assert stats["steps"]["normalize"]["modified"] == 3
    # the partitions' step timings come back to the driver (summed over partitions)
    assert stats["steps"]["normalize"]["seconds"] > 0 and stats["steps"]["word_count"]["seconds"] > 0


def test_dedup_off_keeps_duplicates():
    kept, removed, stats = curate(_df(["same text here", "same text here"]), CurationConfig(exact_dedup=False))
    assert len(kept) == 2 and removed.empty and stats["summary"] == {"total": 2, "kept": 2}


def test_single_steps():
    assert UnicodeNormalizer().transform("  a\u00a0 b \n\n\n\n c ") == "a b\n\nc"
    assert WordCountFilter(2, 3).keep({"text": "one"}) == (False, "too_few_words")
    assert WordCountFilter(2, 3).keep({"text": "a b c d"}) == (False, "too_many_words")
    assert WordCountFilter(2, 3).keep({"text": "a b"})[0]
    assert NonAlphaNumericFilter(0.25).keep({"text": "ab!!"})[0] is False  # 2/4 = 0.5 > 0.25
    assert NonAlphaNumericFilter(0.25).keep({"text": "abc!"})[0] is True  # 1/4 = 0.25
