"""Optional backend: PDFs go to a running NV-Ingest service, everything else to the local engine.

Set ``backend: nv_ingest`` and ``nv_ingest_url: http://host:7670`` in the ingest config and install
the client (``pip install 'flywheel[nv-ingest]'``). NV-Ingest's elements become the same rows the
local readers produce (its metadata schema, docs/extraction/metadata_documentation.md):

=================================  ==================================================
NV-Ingest element                  Flywheel row
=================================  ==================================================
``text`` (text_type ocr)           ``kind=ocr``, else ``kind=text``
``structured`` subtype ``table``   ``kind=table`` (``table_metadata.table_content``)
``structured`` subtype ``chart``   ``kind=image_text`` (the chart's extracted text)
``image``                          ``kind=image_text`` (caption and OCR text)
=================================  ==================================================

``content_metadata.page_number`` is 0-based in NV-Ingest and becomes the 1-based ``page``; the
element's location box and the page count go into ``meta`` with ``backend: nv_ingest``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

from flywheel.core.errors import ConfigError, QuarantineError


def _kind_and_text(el: dict) -> tuple[str, str, list | None]:
    md = el.get("metadata") or {}
    cm = md.get("content_metadata") or {}
    dtype = el.get("document_type") or cm.get("type")
    if dtype == "structured":
        tm = md.get("table_metadata") or {}
        text = tm.get("table_content") or md.get("content") or ""
        kind = "table" if (cm.get("subtype") or "table") == "table" else "image_text"
        return kind, text, tm.get("table_location")
    if dtype == "image":
        im = md.get("image_metadata") or {}
        text = "\n".join(t for t in (im.get("caption"), im.get("text")) if t)
        return "image_text", text, im.get("image_location")
    tx = md.get("text_metadata") or {}
    return ("ocr" if tx.get("text_type") == "ocr" else "text"), md.get("content") or "", tx.get("text_location")


def rows_from_elements(elements: list[dict], doc) -> list[dict]:
    """Rows for one document's NV-Ingest result (a list of ``{document_type, metadata}`` elements)."""
    rows, seen = [], {}
    for el in elements:
        kind, text, box = _kind_and_text(el)
        if not text or not text.strip():
            continue
        cm = (el.get("metadata") or {}).get("content_metadata") or {}
        page = int(cm.get("page_number", -1)) + 1 if int(cm.get("page_number", -1)) >= 0 else 0
        k = seen[(page, kind)] = seen.get((page, kind), -1) + 1
        pages = (cm.get("hierarchy") or {}).get("page_count", -1)
        rows.append(
            doc.row(
                text.strip(),
                kind,
                page=page,
                k=k,
                backend="nv_ingest",
                bbox=[float(v) for v in box] if box else None,
                pages=pages,
            )
        )
    return rows


def run_nv_ingest(paths, cfg, cache_dir: str | Path):
    """Like :func:`flywheel.ingest.engine.run_ingest`, with PDFs extracted by the NV-Ingest service."""
    try:
        from nv_ingest_client.client import Ingestor
    except ImportError as e:
        raise ConfigError("backend: nv_ingest needs the NV-Ingest client: pip install 'flywheel[nv-ingest]'") from e
    from flywheel.ingest.engine import cache_key, run_ingest
    from flywheel.ingest.readers import Doc, check_file, expand, file_digest
    from flywheel.ingest.sniff import sniff
    from flywheel.ingest.unit import _write_rows

    pdfs, others, bad = [], [], []
    for p in expand(paths):
        try:
            check_file(p, cfg.max_file_bytes)
            (pdfs if sniff(p) == "pdf" else others).append(p)
        except (QuarantineError, OSError):
            others.append(p)  # the local engine quarantines it with its reason
    result = run_ingest(others, cfg.model_copy(update={"backend": "local"}), cache_dir=cache_dir)
    result.files += len(pdfs)
    if not pdfs:
        return result
    url = urlparse(cfg.nv_ingest_url)
    ingestor = Ingestor(message_client_hostname=url.hostname, message_client_port=url.port or 7670)
    results, failures = (
        ingestor.files([str(p) for p in pdfs])
        .extract(extract_text=True, extract_tables=cfg.tables, extract_charts=True, extract_images=cfg.ocr.enabled)
        .ingest(return_failures=True)
    )
    by_source = {}
    for elements in results or []:
        if elements:
            src = ((elements[0].get("metadata") or {}).get("source_metadata") or {}).get("source_id", "")
            by_source[str(src)] = elements
    for source, error in failures or []:
        bad.append({"path": str(source), "reason": "nv_ingest_failed", "error": str(error)})
    for p in pdfs:
        elements = by_source.get(str(p)) or by_source.get(p.name)
        if elements is None:
            if not any(b["path"] in (str(p), p.name) for b in bad):
                bad.append({"path": str(p), "reason": "nv_ingest_failed", "error": "no result returned for this file"})
            continue
        digest = file_digest(p)
        doc = Doc(str(p), digest, cfg)
        rows = rows_from_elements(elements, doc)
        entry_dir = Path(cache_dir) / f"{cache_key(digest, cfg)}-nv"
        shutil.rmtree(entry_dir, ignore_errors=True)
        entry_dir.mkdir(parents=True)
        _write_rows(rows, entry_dir / "unit-0000001.parquet")
        (entry_dir / "entry.json").write_text(
            json.dumps(
                {
                    "path": str(p),
                    "digest": digest,
                    "kind": "pdf",
                    "rows": len(rows),
                    "units": ["unit-0000001"],
                    "quarantine": [],
                    "counters": {},
                    "created": time.time(),
                    "backend": "nv_ingest",
                }
            )
        )
        result.entries.append((str(p), entry_dir))
        result.stats.kept += len(rows)
        result.stats.total += len(rows)
    for b in bad:
        result.quarantine.append(b)
        result.stats.dropped[b["reason"]] += 1
        result.stats.total += 1
    result.extra["files_by_type"]["pdf"] = result.extra["files_by_type"].get("pdf", 0) + len(pdfs) - len(bad)
    result.extra["backend"] = "nv_ingest"
    return result
