"""Readers for the thin ingest stage: PDF (pypdfium2), JSONL and plain text.

Each file is read on its own; a file that cannot be read is *quarantined* with its reason and the
run goes on. A malformed JSONL line is quarantined line by line, the other lines of that file are
kept. The reader is chosen by content (magic bytes), not by the extension.

    from flywheel.ingest.readers import ingest_paths
    result = ingest_paths(["docs/", "data/fraud-train.jsonl"])
    result.rows, result.quarantine, result.stats
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.core.steps import StepStats
from flywheel.ingest.tables import MIN_RULINGS, ruling_count, table_rows

MAX_FILE_BYTES = 512 * 1024 * 1024  # 512 MiB: beyond this a single file is quarantined as oversize


@dataclass
class IngestResult:
    rows: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    stats: StepStats = field(default_factory=lambda: StepStats("ingest"))
    files: int = 0
    extra: dict = field(default_factory=dict)  # e.g. table_pages_scanned


class QuarantineError(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def sniff(path: Path) -> str:
    """Return 'pdf', 'jsonl' or 'text' from the first bytes of the file."""
    head = path.open("rb").read(2048)
    if head.startswith(b"%PDF-"):
        return "pdf"
    if not head.strip():
        raise QuarantineError("empty", "file has no content")
    if b"\x00" in head:
        raise QuarantineError("unsupported_binary", "binary content that no reader handles")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if len(head) < 2048 or e.start < len(head) - 4:  # a cut multi-byte char at the end is fine
            raise QuarantineError("not_utf8", str(e)) from None
    if head.lstrip().startswith(b"{"):
        return "jsonl"
    return "text"


def _doc_id(source: str, *parts) -> str:
    return hashlib.sha1("|".join([source, *map(str, parts)]).encode()).hexdigest()[:16]


def read_pdf(path: Path, result: IngestResult) -> list[dict]:
    """Text per page (pypdfium2) plus Markdown tables (pdfplumber) from pages with ruling lines."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        msg = str(e)
        reason = "encrypted" if "password" in msg.lower() else "corrupt_pdf"
        raise QuarantineError(reason, msg) from None
    try:
        if len(pdf) == 0:
            raise QuarantineError("zero_pages", "PDF has no pages")
        rows, table_pages = [], []
        for i in range(len(pdf)):
            page = pdf[i]
            text = page.get_textpage().get_text_bounded().replace("\r\n", "\n").strip()
            if text:
                rows.append({"id": _doc_id(str(path), i + 1), "text": text, "source": str(path),
                             "page": i + 1, "kind": "text", "meta": json.dumps({"pages": len(pdf)})})
            if ruling_count(page) >= MIN_RULINGS:
                table_pages.append(i + 1)
        n_pages = len(pdf)
    finally:
        pdf.close()
    try:
        rows += table_rows(str(path), table_pages, n_pages, _doc_id)
    except Exception as e:  # noqa: BLE001 - a table parser failure must not lose the page text
        result.quarantine.append({"path": str(path), "reason": "table_extraction_failed",
                                  "error": f"{type(e).__name__}: {e}", "partial": True})
    result.extra["table_pages_scanned"] = result.extra.get("table_pages_scanned", 0) + len(table_pages)
    return rows


def read_jsonl(path: Path, quarantine: list[dict]) -> list[dict]:
    rows = []
    with path.open("r", encoding="utf-8", errors="strict") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("line is not a JSON object")
                text = rec.get("text")
                if not isinstance(text, str) or not text.strip():
                    raise ValueError("missing or empty 'text' field")
            except (json.JSONDecodeError, ValueError) as e:
                quarantine.append({"path": str(path), "line": lineno, "reason": "malformed_jsonl", "error": str(e)})
                continue
            meta = {k: v for k, v in rec.items() if k not in ("id", "text", "source")}
            rows.append({"id": str(rec.get("id") or _doc_id(str(path), lineno)), "text": text,
                         "source": str(rec.get("source") or path), "page": 0, "kind": "text",
                         "meta": json.dumps(meta, sort_keys=True)})
    return rows


def read_text(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8").strip()
    return [{"id": _doc_id(str(path)), "text": text, "source": str(path), "page": 0, "kind": "text", "meta": "{}"}]


def expand(paths: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(x for x in p.rglob("*") if x.is_file() and not x.name.startswith(".")))
        else:
            files.append(p)
    return files


def ingest_file(path: Path, result: IngestResult) -> None:
    result.files += 1
    try:
        if not path.exists():
            raise QuarantineError("missing", "no such file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise QuarantineError("oversize", f"{size} bytes > {MAX_FILE_BYTES}")
        kind = sniff(path)
        if kind == "pdf":
            rows = read_pdf(path, result)
        elif kind == "jsonl":
            rows = read_jsonl(path, result.quarantine)
        else:
            rows = read_text(path)
        result.rows.extend(rows)
    except QuarantineError as e:
        result.quarantine.append({"path": str(path), "reason": e.reason, "error": e.detail})
    except (OSError, UnicodeDecodeError) as e:
        result.quarantine.append({"path": str(path), "reason": "unreadable", "error": f"{type(e).__name__}: {e}"})


def ingest_paths(paths: list[str | Path]) -> IngestResult:
    result = IngestResult()
    for path in expand(paths):
        ingest_file(path, result)
    s = result.stats
    # Counted per input unit: a file, or a JSONL line. Quarantined units are the drops.
    s.kept = len(result.rows)
    for q in result.quarantine:
        if q.get("partial"):  # the file's text was kept; only one extraction failed
            result.extra["partial_failures"] = result.extra.get("partial_failures", 0) + 1
        else:
            s.dropped[q["reason"]] += 1
    s.total = s.kept + sum(s.dropped.values())
    return result
