"""Ingest configuration (``flywheel ingest --config configs/ingest/*.yaml``, a workload's ``ingest:``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flywheel.core.config import ConfigModel


class OcrConfig(ConfigModel):
    """Tesseract OCR of scanned pages (``kind=ocr``) and embedded images (``kind=image_text``)."""

    enabled: bool = Field(
        True, description="OCR pages without a text layer and large embedded images (needs the tesseract binary)."
    )
    lang: str = Field(
        "eng", pattern=r"^[A-Za-z_+]{3,64}$", description="Tesseract language pack(s), e.g. 'eng' or 'eng+deu'."
    )
    dpi: int = Field(300, ge=72, le=1200, description="Render resolution of a scanned page before OCR.")
    min_image_px: int = Field(
        120,
        ge=1,
        le=100_000,
        description="Embedded images smaller than this on either side (logos, bullets) are not OCR'd.",
    )
    min_confidence: float = Field(
        30.0, ge=0, le=100, description="Words Tesseract is less sure of (0-100) are dropped."
    )


class ChunkingConfig(ConfigModel):
    """Chunks for retrieval/training: by tokens with overlap, never across a table row."""

    enabled: bool = Field(True, description="Write a '<name>-chunks' dataset next to the ingested one.")
    tokenizer: str = Field(
        "smollm2-135m-instruct",
        description="'smollm2-135m-instruct' (the base model's tokenizer), 'whitespace', or a local tokenizer folder.",
    )
    chunk_tokens: int = Field(256, ge=16, le=1_000_000, description="Maximum tokens per chunk.")
    overlap_tokens: int = Field(
        32,
        ge=0,
        le=100_000,
        description="Tokens repeated from the end of the previous chunk (text only; tables split at rows).",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self):
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be smaller than chunk_tokens ({self.chunk_tokens})"
            )
        return self


class IngestConfig(ConfigModel):
    """Document ingest: readers chosen by content, PDF text/tables/OCR, quarantine, Dask, incremental cache."""

    backend: Literal["local", "nv_ingest"] = Field(
        "local",
        description="local: pypdfium2 + pdfplumber + Tesseract on Dask; nv_ingest: send PDFs to a running NV-Ingest "
        "service.",
    )
    nv_ingest_url: str | None = Field(
        None,
        description="NV-Ingest service URL (http://host:7670) when backend=nv_ingest; needs the [nv-ingest] extra.",
    )
    max_file_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1,
        description="Larger files are quarantined as 'oversize' (not JSONL: it is read in 8 MiB blocks of lines).",
    )
    timeout_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="Per-task wall-clock limit (a file, or one page batch of a large PDF); a hung parser is killed "
        "and its file quarantined as 'timeout'.",
    )
    pages_per_task: int = Field(
        64,
        ge=1,
        le=100_000,
        description="PDF pages per parallel task; bounds the memory of one task (at most 8 once a PDF's first pages "
        "needed OCR).",
    )
    min_rulings: int = Field(
        4, ge=1, le=10_000, description="Path objects a PDF page needs before the table parser opens it."
    )
    tables: bool = Field(True, description="Extract ruled tables as Markdown rows of kind=table.")
    ocr: OcrConfig = Field(default_factory=OcrConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    incremental: bool = Field(
        True, description="Reuse the rows of files whose content digest (and this config) was already ingested."
    )
    workers: int = Field(
        0,
        ge=0,
        le=4096,
        description="Parallel tasks on the local Dask cluster; 0 = one per core. Ignored with FLYWHEEL_DASK_ADDRESS.",
    )

    @model_validator(mode="after")
    def _url_for_nv_ingest(self):
        if self.backend == "nv_ingest" and not self.nv_ingest_url:
            raise ValueError("nv_ingest_url is required when backend is nv_ingest")
        return self
