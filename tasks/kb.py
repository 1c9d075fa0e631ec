"""Tasks of the kb-build flow: a Dataset (ingest or curate output) -> the knowledge base, updated in place."""

from __future__ import annotations

from prefect import task

from flywheel.core.dataset import read_table
from flywheel.rag.config import KbConfig
from flywheel.rag.kb import build_kb
from tasks.common import logger, publish_counts


@task(name="kb-build", tags=["kb"])
def build(dataset: str, kb_dir: str, config: KbConfig, rebuild: bool = False) -> dict:
    """Embed the chunks of new or changed documents, drop those of removed ones, rebuild BM25; the counts."""
    counts = build_kb(read_table(dataset), kb_dir, config, rebuild)
    logger().info(
        "kb %s: %s documents (%s changed, %s removed), %s chunks, %s embedded in %ss",
        kb_dir, counts["documents"], counts["changed"], counts["removed"], counts["chunks"], counts["embedded"],
        counts["seconds"],
    )  # fmt: skip
    publish_counts("kb-build", "Knowledge base build", counts)
    return counts
