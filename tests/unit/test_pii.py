"""PII: seeded identifiers of every configured type never reach the curated output (Presidio + spaCy, offline)."""

import re

import pandas as pd

from examples.pii_corpus import pii_corpus
from flywheel.core.config import CurationConfig
from flywheel.curation.pipeline import curate


def test_no_seeded_identifier_survives_curation():
    df, seeded = pii_corpus(60, seed=1)
    kept, removed, stats = curate(df, CurationConfig(pii={"enabled": True}, min_words=3))
    out = "\n".join(kept.text.tolist() + removed.text.tolist())
    digits = re.sub(r"\D", "", out)
    leaks = []
    for values in seeded.values():
        for entity, value in values.items():
            if value in out or (entity in ("CREDIT_CARD", "IBAN_CODE") and re.sub(r"\D", "", value) in digits):
                leaks.append((entity, value))
            if entity == "PERSON" and any(part in out for part in value.split()):
                leaks.append((entity, value))
    assert leaks == []
    for placeholder in ["<PERSON>", "<EMAIL_ADDRESS>", "<CREDIT_CARD>", "<IBAN_CODE>", "<IP_ADDRESS>", "<STREET_ADDRESS>"]:
        assert placeholder in out
    assert stats["steps"]["pii"]["modified"] == 60 and len(kept) == 60
    assert "The analyst closed the case." in kept.text.iloc[0]  # the rest of the text is untouched


def test_a_row_the_analyzer_fails_on_is_dropped_not_passed(monkeypatch):
    from flywheel.curation import pii

    df, _ = pii_corpus(3, seed=2)
    cfg = CurationConfig(pii={"enabled": True}, min_words=3)
    redactor = pii.redactor_for(cfg.pii)
    real = redactor.redact

    def flaky(text):
        if text.startswith("Ticket 1:"):
            raise RuntimeError("analyzer crashed")
        return real(text)

    monkeypatch.setattr(redactor, "redact", flaky)
    kept, removed, stats = curate(df, cfg)
    assert sorted(kept.id) == ["t0000", "t0002"]
    assert removed[["id", "reason"]].values.tolist() == [["t0001", "pii_error"]] and removed.text.iloc[0] == ""


def test_bad_rows_are_dropped_with_a_reason():
    df = pd.DataFrame({"id": ["a", "b", "c", "d", "e"],
                       "text": ["a fine row of words", None, 42, "   ", "bad \ud800 surrogate here"],
                       "source": "s", "page": 0, "kind": "text", "meta": "{}"})
    kept, removed, _ = curate(df, CurationConfig(min_words=1))
    assert list(kept.id) == ["a"]
    assert dict(zip(removed.id, removed.reason)) == {"b": "not_text", "c": "not_text", "d": "empty", "e": "invalid_utf8"}


def test_mojibake_is_repaired():
    df = pd.DataFrame({"id": ["m"], "text": ["The cafÃ© was closed and the analyst wrote a note."],
                       "source": "s", "page": 0, "kind": "text", "meta": "{}"})
    kept, _, _ = curate(df, CurationConfig(min_words=1))
    assert kept.text.iloc[0] == "The café was closed and the analyst wrote a note."
