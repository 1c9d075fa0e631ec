"""PII redaction (seeded identifiers never reach the output), bad text rows, mojibake, language identification."""

import re

import pandas as pd

from examples.pii_corpus import pii_corpus
from flywheel.curation.config import CurationConfig
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
    for placeholder in [
        "<PERSON>",
        "<EMAIL_ADDRESS>",
        "<CREDIT_CARD>",
        "<IBAN_CODE>",
        "<IP_ADDRESS>",
        "<STREET_ADDRESS>",
    ]:
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
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "text": ["a fine row of words", None, 42, "   ", "bad \ud800 surrogate here"],
            "source": "s",
            "page": 0,
            "kind": "text",
            "meta": "{}",
        }
    )
    kept, removed, _ = curate(df, CurationConfig(min_words=1))
    assert list(kept.id) == ["a"]
    assert dict(zip(removed.id, removed.reason)) == {
        "b": "not_text",
        "c": "not_text",
        "d": "empty",
        "e": "invalid_utf8",
    }


def test_mojibake_is_repaired():
    df = pd.DataFrame(
        {
            "id": ["m"],
            "text": ["The cafÃ© was closed and the analyst wrote a note."],
            "source": "s",
            "page": 0,
            "kind": "text",
            "meta": "{}",
        }
    )
    kept, _, _ = curate(df, CurationConfig(min_words=1))
    assert kept.text.iloc[0] == "The café was closed and the analyst wrote a note."


def test_language_filter_keeps_the_listed_languages():
    rows = [
        ("en", "The analyst reviewed the payment and wrote a short note for the team."),
        ("de", "Der Analyst hat die Zahlung geprüft und eine kurze Notiz für das Team geschrieben."),
        ("es", "El analista revisó el pago y escribió una breve nota para el equipo."),
        ("num", "12345 67890 11111"),
    ]
    df = pd.DataFrame([{"id": i, "text": t, "source": "s", "page": 0, "kind": "text", "meta": "{}"} for i, t in rows])
    kept, removed, stats = curate(df, CurationConfig(min_words=1, max_non_alnum_ratio=1.0, language={"keep": ["en"]}))
    assert list(kept.id) == ["en"]
    assert dict(zip(removed.id, removed.reason)) == {
        "de": "language_de",
        "es": "language_es",
        "num": "language_unknown",
    }


def test_language_codes_are_checked_when_the_config_loads():
    import pytest

    from flywheel.core.config import validate
    from flywheel.core.errors import ConfigError

    with pytest.raises(ConfigError, match="'xx' is not an ISO 639-1 code"):
        validate(CurationConfig, {"language": {"keep": ["en"], "candidates": ["en", "xx"]}})
    with pytest.raises(ConfigError, match="must also be in candidates"):
        validate(CurationConfig, {"language": {"keep": ["fr"], "candidates": ["en"]}})
