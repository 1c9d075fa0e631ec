"""Readers for everything that is not a PDF: HTML, Markdown, DOCX, JSONL, Parquet, plain text, images.

Each takes a :class:`flywheel.ingest.readers.Doc` (path, content digest, row builder, notes) and
returns rows ``{id, text, source, page, kind, meta}``. Tables become Markdown rows of
``kind=table`` wherever the format has them (HTML ``<table>``, Markdown pipe tables, DOCX tables),
so downstream chunking never cuts through one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from flywheel.core.errors import QuarantineError
from flywheel.ingest.tables import to_markdown

_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "dt",
    "dd",
    "pre",
    "blockquote",
    "br",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "figcaption",
    "caption",
    "address",
    "hr",
}
_DROP = "//script|//style|//noscript|//template|//svg|//nav|//footer|//header|//aside|//form|//iframe"


def tidy(text: str) -> str:
    lines = [re.sub(r"[ \t\u00a0]+", " ", ln).strip() for ln in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def read_html(doc) -> list[dict]:
    """Main text with headings as Markdown '#', boilerplate (nav, header, footer, scripts) removed; tables apart."""
    from lxml import html as lh
    from lxml.etree import ParserError

    raw = doc.read_bytes()
    try:
        root = lh.document_fromstring(raw)
    except (ParserError, ValueError) as e:
        raise QuarantineError("corrupt", f"HTML: {e}") from None
    for el in root.xpath(_DROP):
        el.drop_tree()
    title = (root.findtext(".//title") or "").strip()
    rows = []
    for k, table in enumerate(root.xpath("//table[not(ancestor::table)]")):
        cells = [[tidy(c.text_content()) for c in tr.xpath("./th|./td")] for tr in table.xpath(".//tr")]
        cells = [r for r in cells if r]
        if cells and any(any(r) for r in cells):
            rows.append(doc.row(to_markdown(cells), "table", k=k, rows=len(cells), cols=max(map(len, cells)), index=k))
        table.drop_tree()
    body = root.find("body") if root.find("body") is not None else root
    for head in root.xpath("//title|//head"):
        head.drop_tree()
    for el in body.iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower()
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            el.text = "#" * int(tag[1]) + " " + (el.text or "")
        elif tag == "li":
            el.text = "- " + (el.text or "")
        if tag in _BLOCKS:
            el.tail = "\n\n" + (el.tail or "") if tag.startswith("h") or tag == "p" else "\n" + (el.tail or "")
    text = tidy(body.text_content())
    if text:
        rows.insert(0, doc.row(text, "text", title=title))
    return rows


def read_markdown(doc) -> list[dict]:
    """Prose as one ``kind=text`` row; each pipe table (found by markdown-it) as its own ``kind=table`` row."""
    from markdown_it import MarkdownIt

    source = doc.read_text()
    lines = source.splitlines()
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    rows, in_table = [], set()
    for k, (a, b) in enumerate(t.map for t in tokens if t.type == "table_open" and t.map):
        table = [ln.rstrip() for ln in lines[a:b] if ln.strip()]
        in_table.update(range(a, b))
        rows.append(
            doc.row(
                "\n".join(table),
                "table",
                k=k,
                rows=len(table) - 1,
                cols=table[0].strip().strip("|").count("|") + 1,
                lines=[a + 1, b],
            )
        )
    title = next(
        (t.content for i, t in enumerate(tokens) if t.type == "inline" and i and tokens[i - 1].tag == "h1"), ""
    )
    text = tidy("\n".join(ln for i, ln in enumerate(lines) if i not in in_table))
    if text:
        rows.insert(0, doc.row(text, "text", title=title))
    return rows


def read_docx(doc) -> list[dict]:
    """Paragraphs in body order (headings as '#'), tables as Markdown rows, embedded images OCR'd."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        d = docx.Document(doc.path)
    except Exception as e:  # noqa: BLE001 - python-docx raises many types for a broken package
        raise QuarantineError("corrupt", f"DOCX: {type(e).__name__}: {e}") from None
    parts, rows, k = [], [], 0
    for child in d.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            p = Paragraph(child, d)
            style = (p.style.name if p.style is not None else "") or ""
            text = p.text.strip()
            if text:
                level = re.match(r"Heading (\d)", style)
                parts.append(("#" * int(level.group(1)) + " " if level else "- " if "List" in style else "") + text)
        elif tag == "tbl":
            cells = [[c.text.strip() for c in r.cells] for r in Table(child, d).rows]
            if cells and any(any(r) for r in cells):
                rows.append(
                    doc.row(to_markdown(cells), "table", k=k, rows=len(cells), cols=max(map(len, cells)), index=k)
                )
                k += 1
    text = "\n\n".join(parts)
    title = (d.core_properties.title or "").strip()
    if text:
        rows.insert(0, doc.row(text, "text", title=title))
    for i, rel in enumerate(r for r in d.part.rels.values() if "image" in r.reltype and not r.is_external):
        rows += _ocr_blob(doc, rel.target_part.blob, k=i)
    return rows


def _ocr_blob(doc, blob: bytes, k: int) -> list[dict]:
    import io

    from PIL import Image

    if not doc.ocr_ready():
        return []
    cfg = doc.cfg.ocr
    try:
        img = Image.open(io.BytesIO(blob))
        img.load()
    except Exception as e:  # noqa: BLE001 - e.g. an EMF/WMF drawing Pillow cannot decode
        doc.note("image_unreadable", f"image {k}: {type(e).__name__}: {e}")
        return []
    if min(img.size) < cfg.min_image_px:
        return []
    from flywheel.ingest.ocr import ocr_image

    text, _ = ocr_image(img, cfg.lang, cfg.min_confidence)
    doc.counters["images_ocrd"] += 1
    return (
        [
            doc.row(
                text,
                "image_text",
                k=k,
                bbox=[0, 0, *img.size],
                image={"px": list(img.size)},
                ocr={"engine": "tesseract", "lang": cfg.lang},
            )
        ]
        if text
        else []
    )


def read_image(doc) -> list[dict]:
    """A standalone image (PNG, JPEG, TIFF — every frame is a page): OCR'd into ``kind=image_text``."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    if not doc.ocr_ready():
        raise QuarantineError("ocr_unavailable", "an image file needs tesseract (or ocr.enabled: true)")
    from flywheel.ingest.ocr import ocr_image

    try:
        img = Image.open(doc.path)
        frames = [f.copy() for f in ImageSequence.Iterator(img)]
    except (UnidentifiedImageError, OSError) as e:
        raise QuarantineError("corrupt", f"image: {e}") from None
    rows = []
    for page, frame in enumerate(frames, 1):
        text, _ = ocr_image(frame, doc.cfg.ocr.lang, doc.cfg.ocr.min_confidence)
        doc.counters["images_ocrd"] += 1
        if text:
            rows.append(
                doc.row(
                    text,
                    "image_text",
                    page=page if len(frames) > 1 else 0,
                    bbox=[0, 0, *frame.size],
                    image={"px": list(frame.size)},
                    ocr={"engine": "tesseract", "lang": doc.cfg.ocr.lang},
                )
            )
    return rows


def _record_row(doc, rec: dict, index: int) -> dict:
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("missing, null or empty 'text' field")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # JSON may escape lone surrogates; they are not text
        raise ValueError(f"'text' is not valid Unicode: {e.reason} at {e.start}") from None
    meta = {k: v for k, v in rec.items() if k not in ("id", "text", "source")}
    rid = rec.get("id")
    return {
        "id": str(rid) if rid not in (None, "") else doc.id(index),
        "text": text,
        "source": str(rec.get("source") or doc.path),
        "page": 0,
        "kind": "text",
        "meta": json.dumps(meta, sort_keys=True, default=str, ensure_ascii=False),
    }


JSONL_BLOCK_BYTES = 8 << 20  # a large JSONL file is read in blocks of lines: 8 MiB each, JSONL_BLOCKS_PER_TASK per task


def jsonl_blocks(size: int) -> int:
    return max(1, -(-size // JSONL_BLOCK_BYTES))


def read_jsonl(doc, first_block: int = 1, last_block: int | None = None) -> list[dict]:
    """One row per JSON object with a non-empty ``text``; a bad line is quarantined alone.

    Reads the lines that *start* in blocks ``first_block..last_block`` (8 MiB each, 1-based), so parallel
    tasks cover a big file exactly once with bounded memory; line numbers (and the ids of records
    without one) are those of the whole file."""
    size = Path(doc.path).stat().st_size
    start = (first_block - 1) * JSONL_BLOCK_BYTES
    end = size if last_block is None else min(size, last_block * JSONL_BLOCK_BYTES)
    rows = []
    with open(doc.path, "rb") as f:
        lineno = 0
        if start:
            f.seek(start - 1)
            if f.read(1) != b"\n":
                f.readline()  # the line that straddles the block start belongs to the previous block
            pos = f.tell()
            f.seek(0)
            done = 0
            while done < pos:  # line number = newlines before this block's first line
                chunk = f.read(min(1 << 24, pos - done))
                lineno += chunk.count(b"\n")
                done += len(chunk)
        while f.tell() < end:
            raw = f.readline()
            if not raw:
                break
            lineno += 1
            line = raw.decode("utf-8", errors="strict")
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("line is not a JSON object")
                rows.append(_record_row(doc, rec, lineno))
            except ValueError as e:  # JSONDecodeError is a ValueError
                doc.quarantine.append({"path": doc.path, "line": lineno, "reason": "malformed_jsonl", "error": str(e)})
    return rows


def read_parquet(doc) -> list[dict]:
    """Rows of a Parquet file with a string ``text`` column, streamed by record batch."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(doc.path)
    except Exception as e:  # noqa: BLE001 - ArrowInvalid and friends
        raise QuarantineError("corrupt", f"Parquet: {e}") from None
    if "text" not in pf.schema_arrow.names:
        raise QuarantineError("no_text_column", f"columns are {pf.schema_arrow.names}")
    rows, index = [], 0
    for batch in pf.iter_batches(batch_size=8192):
        for rec in batch.to_pylist():
            index += 1
            try:
                rows.append(_record_row(doc, rec, index))
            except ValueError as e:
                doc.quarantine.append({"path": doc.path, "line": index, "reason": "missing_text", "error": str(e)})
    return rows


def read_text(doc) -> list[dict]:
    text = doc.read_text().strip()
    return [doc.row(text, "text")] if text else []
