"""Tasks of the kb-build and kb-synth flows: a Dataset (ingest or curate output) -> the knowledge base, updated in
place; -> synthetic question-answer pairs."""

from __future__ import annotations

from prefect import task

from blocks.endpoints import resolve_into
from flywheel.core.dataset import read_table
from flywheel.rag.config import KbConfig
from flywheel.rag.kb import build_kb
from flywheel.synth.config import SynthConfig
from tasks.common import logger, publish_counts


@task(name="kb-build", tags=["kb"])
def build(dataset: str, kb_dir: str, config: KbConfig, rebuild: bool = False) -> dict:
    """Embed the chunks of new or changed documents, drop those of removed ones, rebuild BM25; the counts."""
    key = None
    if config.graph_extractor == "llm":  # llm_url may name an OpenAIEndpoint block
        config, key = resolve_into(config, "llm_url", "llm_model")
    counts = build_kb(read_table(dataset), kb_dir, config, rebuild, llm_api_key=key)
    logger().info(
        "kb %s: %s documents (%s changed, %s removed), %s chunks, %s embedded in %ss",
        kb_dir, counts["documents"], counts["changed"], counts["removed"], counts["chunks"], counts["embedded"],
        counts["seconds"],
    )  # fmt: skip
    publish_counts("kb-build", "Knowledge base build", counts)
    return counts


@task(name="synthesize-qa", tags=["kb", "synth"])
def synthesize_qa(dataset: str, out: str, config: SynthConfig, holdout: list[str]) -> dict:
    """Question -> answer pairs from the documents, filtered (counts by reason); written as a Dataset at ``out``
    (SFT rows + judgments) with the removed pairs and their reasons in ``out/removed``."""
    from pathlib import Path

    from flywheel.core.dataset import read_dataset, write_dataset
    from flywheel.synth.qa import synthesize

    key = None
    if config.generator == "teacher":  # teacher_url may name an OpenAIEndpoint block
        config, key = resolve_into(config, "teacher_url", "teacher_model")
    rows, removed, counts = synthesize(read_table(dataset), config, holdout, api_key=key)
    parents = [read_dataset(dataset).digest] if Path(dataset, "manifest.json").exists() else []
    ds = write_dataset(rows, Path(out).parent, Path(out).name, parents=parents, config=config.model_dump(),
                       path=out)  # fmt: skip
    if len(removed):
        write_dataset(removed.astype(str), Path(out), "removed", path=Path(out) / "removed")
    logger().info("synthetic QA %s: %s", out, counts)
    publish_counts("kb-synth", "Synthetic question-answer pairs", counts)
    return {"path": str(ds.path), "digest": ds.digest, **counts}
