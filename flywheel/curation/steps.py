"""Curation steps: one transform or predicate each (NeMo Curator names where one exists).

TextSanity          not a string / empty / invalid UTF-8 -> dropped_not_text / _empty / _invalid_utf8
UnicodeNormalizer   ftfy (mojibake) + NFKC + whitespace collapse (Transform)
PiiRedaction        Presidio, typed placeholders, fail-closed -> dropped_pii_error
WordCountFilter     min/max words               -> dropped_too_few_words / dropped_too_many_words
NonAlphaNumericFilter share of symbols          -> dropped_non_alnum
HeuristicFilters    NeMo Curator's filter set   -> dropped_<Curator filter name>
QualityFilter       a quality classifier        -> dropped_low_quality (+ quality_pred, quality_score)
exact dedup         sha1 of normalised text     -> dropped_exact_duplicate (see pipeline.py: global)
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from flywheel.core.steps import Filter, Transform

_WS = re.compile(r"[ \t\u00a0]+")
_NL = re.compile(r"\n{3,}")
_TABLE_SYNTAX = re.compile(r"\|---(?:\|---)*\||(?<!\\)\|")


class UnicodeNormalizer(Transform):
    name = "normalize"

    def __init__(self, fix_mojibake: bool = True):
        self.fix_mojibake = fix_mojibake

    def transform(self, text: str) -> str:
        if self.fix_mojibake:
            import ftfy

            text = ftfy.fix_text(text, normalization="NFKC")
        text = unicodedata.normalize("NFKC", text)
        text = _WS.sub(" ", text)
        text = _NL.sub("\n\n", text)
        return "\n".join(line.strip() for line in text.split("\n")).strip()


class TextSanity(Filter):
    """Rows no step can judge: text that is not a string, is empty, or is not valid Unicode (lone surrogates)."""

    name = "sanity"

    def keep(self, row: dict) -> tuple[bool, str]:
        text = row.get("text")
        if not isinstance(text, str):
            return False, "not_text"
        if isinstance(row.get("_bad_text"), str):  # marked by the pipeline before Dask saw the row
            return False, row["_bad_text"]
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return False, "invalid_utf8"
        if not text.strip():
            return False, "empty"
        return True, ""


class PiiRedaction:
    """Presidio redaction as a step, fail-closed: a row the analyzer fails on is dropped (``pii_error``)."""

    name = "pii"

    def __init__(self, cfg):
        self.cfg = cfg

    def apply(self, df):
        import time

        import pandas as pd

        from flywheel.core.steps import StepStats
        from flywheel.curation.pii import redactor_for

        t0 = time.perf_counter()
        redactor = redactor_for(self.cfg)
        texts, ok, modified = [], [], 0
        for text in df["text"].tolist():
            try:
                new, counts = redactor.redact(text)
                texts.append(new)
                ok.append(True)
                modified += bool(counts)
            except Exception:  # noqa: BLE001 - never let an un-redacted row through
                texts.append("")
                ok.append(False)
        out = df.assign(text=texts)
        mask = pd.Series(ok, index=df.index)
        stats = StepStats(
            self.name, total=len(df), kept=int(mask.sum()), modified=modified, seconds=time.perf_counter() - t0
        )
        if (~mask).any():
            stats.dropped["pii_error"] = int((~mask).sum())
        return out[mask], out[~mask].assign(reason="pii_error", step=self.name), stats


class WordCountFilter(Filter):
    name = "word_count"

    def __init__(self, min_words: int = 3, max_words: int = 100_000):
        self.min_words, self.max_words = min_words, max_words

    def keep(self, row: dict) -> tuple[bool, str]:
        n = len(row["text"].split())
        if n < self.min_words:
            return False, "too_few_words"
        if n > self.max_words:
            return False, "too_many_words"
        return True, ""


class NonAlphaNumericFilter(Filter):
    name = "non_alnum"

    def __init__(self, max_ratio: float = 0.25):
        self.max_ratio = max_ratio

    def keep(self, row: dict) -> tuple[bool, str]:
        text = row["text"]
        if row.get("kind") == "table":  # Markdown pipes and rules are structure, not noise: judge the cells
            text = _TABLE_SYNTAX.sub(" ", text)
        if not text.strip():
            return False, "empty"
        symbols = sum(1 for c in text if not (c.isalnum() or c.isspace()))
        return (symbols / len(text) <= self.max_ratio), "non_alnum"


_DETECTORS: dict = {}


class LanguageFilter(Filter):
    """lingua's language of the text must be in ``keep``; the reason names what it was (``language_de``)."""

    name = "language"

    def __init__(self, cfg):
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        self.allowed, self.min_confidence = {c.lower() for c in cfg.keep}, cfg.min_confidence
        key = tuple(sorted(cfg.candidates))
        if key not in _DETECTORS:
            codes = [getattr(IsoCode639_1, c.upper()) for c in key]
            _DETECTORS[key] = LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()
        self.detector = _DETECTORS[key]

    def keep(self, row: dict) -> tuple[bool, str]:
        if row.get("kind") == "table":
            return True, ""
        best = self.detector.compute_language_confidence_values(row["text"])
        if not best or best[0].value < self.min_confidence:
            return False, "language_unknown"
        code = best[0].language.iso_code_639_1.name.lower()
        return code in self.allowed, f"language_{code}"


class HeuristicFilters(Filter):
    """NeMo Curator's heuristic filters (flywheel/curation/heuristics.py) as one step; the reason is the
    refusing filter's Curator name. Tables are structure, not prose: they are not judged by these."""

    name = "heuristics"

    def __init__(self, specs: list[dict]):
        from flywheel.curation.heuristics import FilterSet

        self.set = FilterSet(specs)

    def keep(self, row: dict) -> tuple[bool, str]:
        if row.get("kind") == "table":
            return True, ""
        reason = self.set.reason(row["text"])
        return reason is None, reason or ""


class QualityFilter:
    """A quality classifier (flywheel/curation/quality.py) as a step. It runs after the cheap filters,
    on what they kept; every row it sees gets ``quality_pred``/``quality_score`` (NeMo Curator's
    columns), removed rows included, so a threshold can be audited. Tables are not judged. The
    config is checked against the model's metadata when the step is built; weights load on first use."""

    name = "quality"
    columns = {"quality_pred": "object", "quality_score": "float64"}

    def __init__(self, cfg):
        from flywheel.curation.quality import check_config

        self.cfg = cfg
        check_config(cfg)

    def apply(self, df):
        import time

        import numpy as np
        import pandas as pd

        from flywheel.core.steps import StepStats
        from flywheel.curation.quality import keep_mask, load_classifier

        t0 = time.perf_counter()
        judged = (df["kind"] != "table").to_numpy() if "kind" in df.columns else np.ones(len(df), bool)
        pred = pd.Series(None, index=df.index, dtype="object")
        score = pd.Series(np.nan, index=df.index, dtype="float64")
        keep = np.ones(len(df), bool)
        if judged.any():
            c = self.cfg
            clf = load_classifier(c.model, c.device, c.batch_size, c.max_tokens, c.max_chars)
            probs = clf.probabilities(df["text"][judged].tolist())
            labels, scores = clf.predict_from(probs)
            pred[judged], score[judged] = labels, scores
            keep[judged] = keep_mask(clf, probs, c)
        out = df.assign(quality_pred=pred, quality_score=score)
        stats = StepStats(self.name, total=len(df), kept=int(keep.sum()), seconds=time.perf_counter() - t0)
        if (~keep).any():
            stats.dropped["low_quality"] = int((~keep).sum())
        return out[keep], out[~keep].assign(reason="low_quality", step=self.name), stats


def text_hash(text) -> str:
    """Hash of the text with case and whitespace folded: what 'exact duplicate' means here."""
    if not isinstance(text, str):
        return ""  # a row without text (already dropped by TextSanity)
    return hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()
