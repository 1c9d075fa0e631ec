"""Which reader a file gets, decided by its bytes — never by its extension.

    from flywheel.ingest.sniff import sniff
    sniff(Path("report.txt"))   # -> "pdf" when the bytes say %PDF-

A file whose extension names a different format than its content is still read by its content;
the mismatch is reported as a ``mislabelled`` note (``partial``: nothing was lost). Content no
reader handles is quarantined: ``mislabelled`` when the extension promised a format we read,
``unsupported_binary`` otherwise.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from flywheel.core.errors import QuarantineError

HEAD_BYTES = 8192

# Extension -> the kinds its content may legitimately have.
EXPECTED = {
    ".pdf": {"pdf"},
    ".docx": {"docx"},
    ".html": {"html"},
    ".htm": {"html"},
    ".xhtml": {"html"},
    ".md": {"markdown", "text"},
    ".markdown": {"markdown", "text"},
    ".txt": {"text", "markdown"},
    ".text": {"text", "markdown"},
    ".jsonl": {"jsonl"},
    ".ndjson": {"jsonl"},
    ".json": {"jsonl"},
    ".parquet": {"parquet"},
    ".png": {"image"},
    ".jpg": {"image"},
    ".jpeg": {"image"},
    ".tif": {"image"},
    ".tiff": {"image"},
    ".gif": {"image"},
    ".bmp": {"image"},
    ".webp": {"image"},
}

IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"GIF87a", b"GIF89a", b"BM")
_HTML = re.compile(rb"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])", re.I | re.S)
_MD_LINE = re.compile(r"^(#{1,6}\s+\S|\s*\|.*\|\s*$|\s*[-*+]\s+\S|\s*\d+\.\s+\S|```|>\s)", re.M)
_MD_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$", re.M)


def _zip_kind(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except zipfile.BadZipFile as e:
        raise QuarantineError("corrupt", f"zip container: {e}") from None
    if "word/document.xml" in names:
        return "docx"
    return None


def has_eof(path: str | Path) -> bool:
    """A complete PDF ends with %%EOF (allowing trailing whitespace/junk in the last KiB)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 1024))
        return b"%%EOF" in f.read()


def _text_kind(head: bytes) -> str:
    if _HTML.match(head):
        return "html"
    text = head.decode("utf-8", errors="ignore")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if first.lstrip().startswith("{"):
        return "jsonl"
    # Markdown: a heading, a pipe table with its rule line, or several list/quote/code lines.
    if _MD_RULE.search(text) or re.search(r"^#{1,6}\s+\S", text, re.M) or len(_MD_LINE.findall(text)) >= 3:
        return "markdown"
    return "text"


def sniff(path: Path) -> str:
    """One of pdf, docx, parquet, image, html, jsonl, markdown, text (or raise QuarantineError)."""
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    if not head:
        raise QuarantineError("empty", "file has no content")
    if head.startswith(b"%PDF-") or (0 < head[:1024].find(b"%PDF-") and has_eof(path)):
        return "pdf"  # junk before the header is legal; a text that merely mentions %PDF- is not a PDF
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        kind = _zip_kind(path)
        if kind:
            return kind
        raise QuarantineError("unsupported_binary", "a zip archive that is not a .docx document")
    if head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    if not head.strip():
        raise QuarantineError("empty", "file holds only whitespace")
    if b"\x00" in head:
        raise QuarantineError("unsupported_binary", "binary content that no reader handles")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if len(head) < HEAD_BYTES or e.start < len(head) - 4:  # a cut multi-byte char at the end is fine
            raise QuarantineError("not_utf8", str(e)) from None
    return _text_kind(head)


def mislabel_note(path: Path, kind: str) -> str | None:
    """A human-readable note when the extension promises another format than the content has."""
    expected = EXPECTED.get(path.suffix.lower())
    if expected and kind not in expected:
        return f"extension {path.suffix!r} but the content is {kind}; read as {kind}"
    return None


def unsupported_reason(path: Path) -> str:
    """``mislabelled`` when the extension promised a readable format, else ``unsupported_binary``."""
    return "mislabelled" if path.suffix.lower() in EXPECTED else "unsupported_binary"
