"""NeMo Curator's English heuristic filters, under their class names, parameter names and defaults.

A recipe written for NeMo Curator moves across as a list of ``{filter: <ClassName>, <param>: value}``
(``configs/curation/nemo-heuristics-en.yaml`` is Curator's ``heuristic_filter_en`` set). Each filter
scores a document and keeps it by the same rule as Curator's (``score_document`` /
``keep_document``); a dropped row's reason is Curator's filter name (``alpha_numeric``,
``repeating_top_2grams``, ...). Definitions follow Curator: words are whitespace-split, a "sentence"
is a non-empty line, a paragraph is a block between blank lines (``\\n\\n``).

Speed: the filters of a recipe run as one step, and a document's words, lines, paragraphs and
n-gram counts are computed once for all of them (Curator recomputes them in every filter), so the
set runs several times faster per core than Curator's own (bench/filters_vs_nemo_curator.py).

Documents Curator cannot score (no words, no lines: it divides by zero) are dropped here with the
reason of the first filter that needs words or lines.
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from functools import cached_property

END_MARKS = (".", "?", "!", '"', "'")
ELLIPSIS_MARKS = frozenset(["...", "[...]", "\u2026", "(...)", "[\u2026]", "-\u00bb", "read more..", "read more"])
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "privacy overview",
    "use of cookies",
    "use cookies",
    "privacy & cookies policy",
    "privacy and cookies policy",
    "this website uses cookies to improve your experience while you navigate through the website. out of these "
    "cookies, the cookies that are categorized as necessary are stored on your browser as they are essential for "
    "the working of basic functionalities of the website. we also use third-party cookies that help us analyze and "
    "understand how you use this website. these cookies will be stored in your browser only with your consent. you "
    "also have the option to opt-out of these cookies. but opting out of some of these cookies may have an effect "
    "on your browsing experience.",
    "necessary cookies are absolutely essential for the website to function properly. this category only includes "
    "cookies that ensures basic functionalities and security features of the website. these cookies do not store "
    "any personal information.",
    "any cookies that may not be particularly necessary for the website to function and is used specifically to "
    "collect user personal data via analytics, ads, other embedded contents are termed as non-necessary cookies. it "
    "is mandatory to procure user consent prior to running these cookies on your website.",
    "this site uses cookies, including for analytics, personalization, and advertising purposes. for more "
    "information or to change your cookie settings, click here.",
    "if you continue to browse this site without changing your cookie settings, you agree to this use. acceptread more",
)
WHITE_SPACE = frozenset("\t\n\r\b ")
COMMON_ENGLISH_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])
BULLETS = (
    "\u2022",
    "\u2023",
    "\u2043",
    "\u204c",
    "\u204d",
    "\u2219",
    "\u25cb",
    "\u25cf",
    "\u25d8",
    "\u25e6",
    "\u29be",
    "\u29bf",
)

RE_ALPHANUM = re.compile(r"[a-zA-Z0-9\n?!,.]")  # Curator's (ASCII) definition
RE_ALPHA = re.compile(r"[^\W\d_]")  # POSIX [[:alpha:]] over Unicode
RE_DIGIT = re.compile(r"\d")  # POSIX [[:digit:]] over Unicode
RE_URL = re.compile(r"http[s]?://(?:[a-zA-Z]|[0-9]|[$-_@.&+]|[!*\(\),]|(?:%[0-9a-fA-F][0-9a-fA-F]))+")
RE_PAREN = re.compile(r"{|}|\u27e8|\u27e9|\[|\]|\(|\)")
RE_HASH = re.compile(r"#+")


class Doc:
    """A document's derived views, each computed at most once and shared by every filter."""

    __slots__ = ("text", "__dict__")

    def __init__(self, text: str):
        self.text = text

    @cached_property
    def words(self) -> list[str]:
        return self.text.strip().split()

    @cached_property
    def lines(self) -> list[str]:
        return [x for x in self.text.split("\n") if x.strip()]

    @cached_property
    def paragraphs(self) -> list[str]:
        return self.text.split("\n\n")

    @cached_property
    def urls(self) -> list[str]:
        return RE_URL.findall(self.text)

    def ngrams(self, n: int) -> list[tuple[str, ...]]:
        key = f"_ngrams{n}"
        if key not in self.__dict__:
            w = self.words
            self.__dict__[key] = list(zip(*[w[i:] for i in range(n)]))
        return self.__dict__[key]


class HeuristicFilter:
    """Base: ``score(doc) -> float`` and ``keep(score) -> bool``; ``name`` is Curator's ``_name``."""

    name = "heuristic"
    cutoff: float
    # Most filters keep a score <= cutoff; those scoring a share to preserve (unique lines, common
    # words, words with letters) keep a score >= cutoff, as in Curator's keep_document.
    at_least = False

    def score(self, doc: Doc) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def keep(self, score: float) -> bool:
        return score >= self.cutoff if self.at_least else score <= self.cutoff


def _ratio(count: int, total: int, empty: float = 1.0) -> float:
    return count / total if total else empty


class NonAlphaNumericFilter(HeuristicFilter):
    def __init__(self, max_non_alpha_numeric_to_text_ratio: float = 0.25):
        self.cutoff, self.name = max_non_alpha_numeric_to_text_ratio, "alpha_numeric"

    def score(self, doc):
        n = len(doc.text)
        return _ratio(n - len(RE_ALPHANUM.findall(doc.text)), n)


class SymbolsToWordsFilter(HeuristicFilter):
    def __init__(self, max_symbol_to_word_ratio: float = 0.1, lang: str = "en"):
        self.cutoff, self.name = max_symbol_to_word_ratio, "symbol_to_word"

    def score(self, doc):
        count = 0
        for w in doc.words:
            if w in ELLIPSIS_MARKS or ("#" in w and len(RE_HASH.findall(w)) / len(w) > 0.5):
                count += 1
        return _ratio(count, len(doc.words))


class NumbersFilter(HeuristicFilter):
    def __init__(self, max_number_to_text_ratio: float = 0.15):
        self.cutoff, self.name = max_number_to_text_ratio, "numbers_ratio"

    def score(self, doc):
        return _ratio(len(RE_DIGIT.findall(doc.text)), len(doc.text))


class UrlsFilter(HeuristicFilter):
    def __init__(self, max_url_to_text_ratio: float = 0.2):
        self.cutoff, self.name = max_url_to_text_ratio, "urls_ratio"

    def score(self, doc):
        return _ratio(sum(map(len, doc.urls)), len(doc.text)) if "http" in doc.text else (0.0 if doc.text else 1.0)


class BulletsFilter(HeuristicFilter):
    def __init__(self, max_bullet_lines_ratio: float = 0.9):
        self.cutoff, self.name = max_bullet_lines_ratio, "bullet_ratio"

    def score(self, doc):
        return _ratio(sum(1 for s in doc.lines if s.strip().startswith(BULLETS)), len(doc.lines))


class WhiteSpaceFilter(HeuristicFilter):
    def __init__(self, max_white_space_ratio: float = 0.25):
        self.cutoff, self.name = max_white_space_ratio, "white_space"

    def score(self, doc):
        t = doc.text
        return _ratio(t.count(" ") + t.count("\n") + t.count("\t") + t.count("\r") + t.count("\b"), len(t))


class ParenthesesFilter(HeuristicFilter):
    def __init__(self, max_parentheses_ratio: float = 0.1):
        self.cutoff, self.name = max_parentheses_ratio, "parentheses_ratio"

    def score(self, doc):
        return _ratio(len(RE_PAREN.findall(doc.text)), len(doc.text))


class LongWordFilter(HeuristicFilter):
    def __init__(self, max_word_length: int = 1000, lang: str = "en"):
        self.cutoff, self.name = max_word_length, "max_word_length"

    def score(self, doc):
        return max(map(len, doc.words), default=float("inf"))


class WordCountFilter(HeuristicFilter):
    def __init__(self, min_words: int = 50, max_words: int = 100000, lang: str = "en"):
        self.min_words, self.max_words, self.name = min_words, max_words, "word_count"

    def score(self, doc):
        return len(doc.words)

    def keep(self, score):
        return self.min_words <= score <= self.max_words


class BoilerPlateStringFilter(HeuristicFilter):
    def __init__(self, remove_if_at_top_or_bottom: bool = True, max_boilerplate_string_ratio: float = 0.4):
        self.cutoff, self.name = max_boilerplate_string_ratio, "boilerplate_string_ratio"

    def score(self, doc):
        count = 0
        for p in doc.paragraphs:
            p = p.strip().lower()
            if "lorem ipsum" in p:
                return 1.0
            if any(s in p for s in POLICY_SUBSTRINGS):
                count += 1
        return _ratio(count, len(doc.paragraphs))


class MeanWordLengthFilter(HeuristicFilter):
    def __init__(self, min_mean_word_length: int = 3, max_mean_word_length: int = 10, lang: str = "en"):
        self.lo, self.hi, self.name = min_mean_word_length, max_mean_word_length, "mean_word_length"

    def score(self, doc):
        return _ratio(sum(map(len, doc.words)), len(doc.words), empty=0.0)

    def keep(self, score):
        return self.lo <= score <= self.hi


class PunctuationFilter(HeuristicFilter):
    def __init__(self, max_num_sentences_without_endmark_ratio: float = 0.85):
        self.cutoff, self.name = max_num_sentences_without_endmark_ratio, "punctuation"

    def score(self, doc):
        return _ratio(sum(1 for s in doc.lines if not s.strip().endswith(END_MARKS)), len(doc.lines))


class EllipsisFilter(HeuristicFilter):
    def __init__(self, max_num_lines_ending_with_ellipsis_ratio: float = 0.3):
        self.cutoff, self.name = max_num_lines_ending_with_ellipsis_ratio, "ellipsis"

    def score(self, doc):
        marks = tuple(ELLIPSIS_MARKS)
        return _ratio(sum(1 for s in doc.lines if s.strip().lower().endswith(marks)), len(doc.lines))


class CommonEnglishWordsFilter(HeuristicFilter):
    at_least = True

    def __init__(self, min_num_common_words: int = 2, stop_at_false: bool = True):
        self.cutoff, self.stop, self.name = min_num_common_words, stop_at_false, "common_english_words"

    def score(self, doc):
        count = 0
        for w in doc.words:
            if w in COMMON_ENGLISH_WORDS:
                count += 1
                if self.stop and count >= self.cutoff:
                    break
        return count


class WordsWithoutAlphabetsFilter(HeuristicFilter):
    at_least = True

    def __init__(self, min_words_with_alphabets: float = 0.8, lang: str = "en"):
        self.cutoff, self.name = min_words_with_alphabets, "words_without_alphabets"

    def score(self, doc):
        return _ratio(sum(1 for w in doc.words if RE_ALPHA.search(w)), len(doc.words), empty=0.0)


class PornographicUrlsFilter(HeuristicFilter):
    def __init__(self):
        self.name = "pornographic_urls"

    def score(self, doc):
        return int(any("porn" in u for u in doc.urls)) if "http" in doc.text else 0

    def keep(self, score):
        return score != 1


class RepeatedLinesFilter(HeuristicFilter):
    at_least = True

    def __init__(self, max_repeated_line_fraction: float = 0.7):
        self.cutoff, self.name = max_repeated_line_fraction, "repeated_lines"

    def score(self, doc):
        return _ratio(len(set(doc.lines)), len(doc.lines), empty=0.0)


class RepeatedParagraphsFilter(HeuristicFilter):
    at_least = True

    def __init__(self, max_repeated_paragraphs_ratio: float = 0.7):
        self.cutoff, self.name = max_repeated_paragraphs_ratio, "repeated_paragraphs"

    def score(self, doc):
        return _ratio(len(set(doc.paragraphs)), len(doc.paragraphs), empty=0.0)


class RepeatedLinesByCharFilter(HeuristicFilter):
    at_least = True

    def __init__(self, max_repeated_lines_char_ratio: float = 0.8):
        self.cutoff, self.name = max_repeated_lines_char_ratio, "repeated_lines_char"

    def score(self, doc):
        return _ratio(sum(map(len, set(doc.lines))), sum(map(len, doc.lines)), empty=0.0)


class RepeatedParagraphsByCharFilter(HeuristicFilter):
    at_least = True

    def __init__(self, max_repeated_paragraphs_char_ratio: float = 0.8):
        self.cutoff, self.name = max_repeated_paragraphs_char_ratio, "repeated_paragraphs_char"

    def score(self, doc):
        return _ratio(sum(map(len, set(doc.paragraphs))), sum(map(len, doc.paragraphs)), empty=0.0)


class RepeatingTopNGramsFilter(HeuristicFilter):
    """Share of characters covered by the most frequent word n-gram (its occurrences removed from the text)."""

    def __init__(self, n: int = 2, max_repeating_ngram_ratio: float = 0.2, lang: str = "en"):
        self.n, self.cutoff, self.name = n, max_repeating_ngram_ratio, f"repeating_top_{n}grams"

    def score(self, doc):
        if len(doc.words) < self.n:
            return 1.0
        counts = Counter(doc.ngrams(self.n))
        top = max(counts.values())
        # Ties: the first in document order (Curator takes whichever its set yields first).
        gram = next(g for g, c in counts.items() if c == top)
        nchar = len(doc.text)
        return _ratio(nchar - len(doc.text.replace(" ".join(gram), "")), nchar)


class RepeatingDuplicateNGramsFilter(HeuristicFilter):
    """Share of characters in word n-grams that occur more than once (overlaps counted once)."""

    def __init__(self, n: int = 2, max_repeating_duplicate_ngram_ratio: float = 0.2, lang: str = "en"):
        self.n, self.cutoff, self.name = n, max_repeating_duplicate_ngram_ratio, f"repeating_dup_{n}gram"

    def score(self, doc):
        n = self.n
        if len(doc.words) < n:
            return 1.0
        seen: set = set()
        dup_chars, overlap = 0, 0
        for gram in doc.ngrams(n):
            if gram in seen:
                dup_chars += sum(len(w) for w in gram[overlap:]) + min(n - overlap, n - 1)
                overlap = n
            else:
                seen.add(gram)
            overlap = max(overlap - 1, 0)
        return _ratio(dup_chars, len(doc.text))


FILTERS: dict[str, type[HeuristicFilter]] = {cls.__name__: cls for cls in HeuristicFilter.__subclasses__()}


def build(spec: dict) -> HeuristicFilter:
    """``{"filter": "RepeatingTopNGramsFilter", "n": 3, "max_repeating_ngram_ratio": 0.18}`` -> a filter.

    Unknown filter names and parameters raise ValueError naming them."""
    spec = dict(spec)
    name = spec.pop("filter", None)
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; known: {', '.join(sorted(FILTERS))}")
    allowed = set(inspect.signature(FILTERS[name].__init__).parameters) - {"self"}
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return FILTERS[name](**spec)


class FilterSet:
    """Several heuristic filters as one step: the first filter (in recipe order) that refuses a document names
    the reason."""

    def __init__(self, specs: list[dict]):
        self.filters = [build(s) for s in specs]

    def reason(self, text) -> str | None:
        if not isinstance(text, str):
            return "not_text"
        doc = Doc(text)
        for f in self.filters:
            if not f.keep(f.score(doc)):
                return f.name
        return None
