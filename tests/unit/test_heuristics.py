"""NeMo Curator's heuristic filters: each one's keep/drop on documents made to sit on either side of its threshold."""

import pandas as pd
import pytest

from flywheel.core.config import load_config, validate
from flywheel.core.errors import ConfigError
from flywheel.curation.config import CurationConfig
from flywheel.curation.heuristics import FILTERS, Doc, FilterSet, build

PROSE = (
    "The analyst reviewed the payment and found that the merchant had a history of disputes. "
    "She wrote a short note to the team and moved on to the next case in the queue."
)


def keeps(spec, text):
    f = build(spec)
    return f.keep(f.score(Doc(text)))


@pytest.mark.parametrize(
    "spec, good, bad",
    [
        ({"filter": "WordCountFilter", "min_words": 10}, PROSE, "too short to keep"),
        ({"filter": "NonAlphaNumericFilter"}, PROSE, "$$$ %%% &&& *** ### @@@ ^^^ ~~~ abc"),
        ({"filter": "SymbolsToWordsFilter"}, PROSE, "# ... word # words here and more words"),
        ({"filter": "NumbersFilter"}, PROSE, "Order 123456 789012 345678 total"),
        ({"filter": "UrlsFilter"}, PROSE, "see https://example.com/a/very/long/path/to/a/page?id=123456 now"),
        ({"filter": "BulletsFilter"}, PROSE, "\u2022 one\n\u2022 two\n\u2022 three"),
        ({"filter": "WhiteSpaceFilter"}, PROSE, "a    b    c    d"),
        ({"filter": "ParenthesesFilter"}, PROSE, "(a) (b) [c] {d}"),
        ({"filter": "LongWordFilter", "max_word_length": 20}, PROSE, "short " + "x" * 21),
        (
            {"filter": "BoilerPlateStringFilter"},
            PROSE + "\n\nMore prose here.",
            "Read our privacy policy.\n\nAccept terms of use.",
        ),
        ({"filter": "BoilerPlateStringFilter"}, PROSE, PROSE + " lorem ipsum dolor"),
        ({"filter": "MeanWordLengthFilter"}, PROSE, "a b c d e f"),
        ({"filter": "PunctuationFilter"}, PROSE, "no end mark here\nnor here\nnor here either"),
        ({"filter": "EllipsisFilter"}, PROSE, "Read the rest...\nClick for more...\nOne line."),
        ({"filter": "CommonEnglishWordsFilter"}, PROSE, "PAYMENT REVIEW MERCHANT DISPUTE"),
        ({"filter": "WordsWithoutAlphabetsFilter"}, PROSE, "123 456 789 abc 000"),
        ({"filter": "PornographicUrlsFilter"}, PROSE, "visit https://pornsite.example now"),
        ({"filter": "RepeatedLinesFilter"}, "a\nb\nc", "same line\nsame line\nsame line\nother"),
        ({"filter": "RepeatedParagraphsFilter"}, "a\n\nb\n\nc", "same\n\nsame\n\nsame\n\nother"),
        ({"filter": "RepeatedLinesByCharFilter"}, "a\nb\nc", "a long repeated line\na long repeated line\nx"),
        ({"filter": "RepeatedParagraphsByCharFilter"}, "a\n\nb", "a long repeated para\n\na long repeated para\n\nx"),
        ({"filter": "RepeatingTopNGramsFilter", "n": 2}, PROSE, "buy now buy now buy now buy now and then"),
        ({"filter": "RepeatingDuplicateNGramsFilter", "n": 3}, PROSE, "one two three one two three one two three four"),
    ],
)
def test_each_filter_keeps_prose_and_drops_its_pathology(spec, good, bad):
    assert keeps(spec, good) is True
    assert keeps(spec, bad) is False


def test_scores_match_curators_definitions_on_known_values():
    assert build({"filter": "NonAlphaNumericFilter"}).score(Doc("ab#!")) == 0.25  # '!' counts as alphanumeric there
    assert build({"filter": "WhiteSpaceFilter"}).score(Doc("a b\n")) == 0.5
    assert build({"filter": "RepeatedLinesFilter"}).score(Doc("x\nx\ny\n\n")) == 2 / 3
    # duplicate 2-grams: "a b" repeats once -> its 2 words and 1 space = 3 of 11 characters
    assert build({"filter": "RepeatingDuplicateNGramsFilter", "n": 2}).score(Doc("a b c a b d")) == 3 / 11
    assert build({"filter": "RepeatingTopNGramsFilter", "n": 2}).score(Doc("a b c a b d")) == 6 / 11
    assert build({"filter": "RepeatingTopNGramsFilter", "n": 2}).name == "repeating_top_2grams"


def test_the_set_reports_the_first_refusing_filter_in_recipe_order():
    fs = FilterSet([{"filter": "WordCountFilter", "min_words": 3}, {"filter": "NumbersFilter"}])
    assert fs.reason("1 2") == "word_count" and fs.reason("11 22 33 44") == "numbers_ratio"
    assert fs.reason(PROSE) is None and fs.reason(None) == "not_text" and fs.reason("") == "word_count"


def test_recipe_has_curators_filters_and_config_errors_name_the_entry(root):
    cfg = load_config(root / "configs/curation/nemo-heuristics-en.yaml", CurationConfig)
    names = {s["filter"] for s in cfg.heuristics}
    assert names == set(FILTERS) and len(cfg.heuristics) == 29
    with pytest.raises(ConfigError, match=r"heuristics\[0\]: NumbersFilter: unknown parameter"):
        validate(CurationConfig, {"heuristics": [{"filter": "NumbersFilter", "max_ratio": 0.1}]})


def test_curation_drops_with_curator_reasons_and_spares_tables():
    from flywheel.curation.pipeline import curate

    rows = [
        ("p", PROSE, "text"),
        ("n", "11 22 33 44 55 66 77 88 99 00 11 22", "text"),
        ("t", "| a | b |\n|---|---|\n| 1 | 2 |", "table"),
        ("e", "Read our privacy policy.\n\nAccept terms of use.", "text"),
    ]
    df = pd.DataFrame([{"id": i, "text": t, "source": "s", "page": 0, "kind": k, "meta": "{}"} for i, t, k in rows])
    cfg = CurationConfig(
        min_words=0,
        max_non_alnum_ratio=1.0,
        heuristics=[{"filter": "NumbersFilter"}, {"filter": "BoilerPlateStringFilter"}],
    )
    kept, removed, stats = curate(df, cfg)
    assert sorted(kept.id) == ["p", "t"]
    assert dict(zip(removed.id, removed.reason)) == {"e": "boilerplate_string_ratio", "n": "numbers_ratio"}
    counts = {k: v for k, v in stats["steps"]["heuristics"].items() if k != "seconds"}
    assert counts == {"total": 4, "kept": 2, "dropped_boilerplate_string_ratio": 1, "dropped_numbers_ratio": 1}
