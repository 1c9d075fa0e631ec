"""One unit of ingest work: a file, or a batch of pages of a PDF, read by the reader its bytes call for.

:func:`read_unit` is what runs inside the sandboxed worker process (see :mod:`flywheel.ingest.engine`);
it raises :class:`QuarantineError` for a file that cannot be ingested at all, and reports smaller
losses (a malformed JSONL line, a page whose OCR failed, a wrong extension) without losing the rest.

    from flywheel.ingest.engine import run_ingest
    result = run_ingest(["docs/", "data/fraud-train.jsonl"])     # runs read_unit on the sandboxed workers
    result.rows, result.quarantine, result.stats
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.core.errors import QuarantineError
from flywheel.ingest import formats
from flywheel.ingest.sniff import sniff, unsupported_reason


@dataclass
class Doc:
    """The file being read: its path, content digest and config; builds rows with stable ids."""

    path: str
    digest: str
    cfg: object  # IngestConfig
    quarantine: list[dict] = field(default_factory=list)  # entries for parts of the file (lines, pages)
    counters: Counter = field(default_factory=Counter)

    def id(self, *parts) -> str:
        # From the content digest, not the path: the same file in two folders gives the same ids.
        return hashlib.sha1("|".join([self.digest, *map(str, parts)]).encode()).hexdigest()[:16]

    def row(self, text: str, kind: str, page: int = 0, k: int = 0, **meta) -> dict:
        meta = {"source": self.path, "page": page, **meta}
        return {
            "id": self.id(page, kind, k),
            "text": text,
            "source": self.path,
            "page": page,
            "kind": kind,
            "meta": json.dumps(meta, sort_keys=True, ensure_ascii=False),
        }

    def note(self, reason: str, error: str, **kw) -> None:
        self.quarantine.append({"path": self.path, "reason": reason, "error": error, "partial": True, **kw})

    def ocr_ready(self) -> bool:
        from flywheel.ingest.ocr import available

        if not self.cfg.ocr.enabled:
            return False
        if not available():
            if not any(q["reason"] == "ocr_unavailable" for q in self.quarantine):
                self.note("ocr_unavailable", "tesseract is not installed; scanned pages and images are not OCR'd")
            return False
        return True

    def read_bytes(self) -> bytes:
        return Path(self.path).read_bytes()

    def read_text(self) -> str:
        try:
            return Path(self.path).read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise QuarantineError("not_utf8", str(e)) from None


READERS = {
    "html": formats.read_html,
    "markdown": formats.read_markdown,
    "docx": formats.read_docx,
    "jsonl": formats.read_jsonl,
    "parquet": formats.read_parquet,
    "text": formats.read_text,
    "image": formats.read_image,
}


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_file(path: Path, max_bytes: int) -> int:
    """Size of a regular, readable file within the limit, or QuarantineError (missing, unreadable, oversize, empty)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise QuarantineError(
            "unreadable" if path.is_symlink() else "missing",
            "dangling symlink" if path.is_symlink() else "no such file",
        ) from None
    except OSError as e:
        raise QuarantineError("unreadable", f"{type(e).__name__}: {e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise QuarantineError("unreadable", "not a regular file (device, FIFO or socket)")
    if st.st_size > max_bytes:
        raise QuarantineError("oversize", f"{st.st_size} bytes > max_file_bytes {max_bytes}")
    if st.st_size == 0:
        raise QuarantineError("empty", "file has no content")
    if not os.access(path, os.R_OK):
        raise QuarantineError("unreadable", "permission denied")
    return st.st_size


def read_unit(path: str, digest: str, cfg, first: int = 1, last: int | None = None) -> dict:
    """Read one unit. Returns rows, partial-loss entries, counters, and for PDFs the page count.

    For a PDF, pages ``first..last`` are read (``last`` defaults to ``first + pages_per_task - 1``);
    other formats are always one unit.
    """
    p = Path(path)
    try:
        kind = sniff(p)
    except OSError as e:
        raise QuarantineError("unreadable", f"{type(e).__name__}: {e}") from None
    except QuarantineError as e:
        if e.reason == "unsupported_binary" and unsupported_reason(p) == "mislabelled":
            raise QuarantineError(
                "mislabelled", f"extension {p.suffix!r} but the content is not a format we read ({e.detail})"
            ) from None
        raise
    doc = Doc(path, digest, cfg)  # (a wrong extension is noted per path by the engine, not cached with the content)
    out = {"kind": kind, "n_pages": 0}
    if kind == "pdf":
        from flywheel.ingest.pdf import read_pdf_pages

        last = last or first + cfg.pages_per_task - 1
        res = read_pdf_pages(path, first, last, doc, cfg)
        out.update(n_pages=res.pop("n_pages"), rows=res.pop("rows"))
        for n in res.pop("notes"):
            doc.note(n.pop("reason"), n.pop("error"), **n)
        doc.counters.update(res)
    elif kind == "jsonl":  # blocks of lines, like a PDF's pages: big files are read by parallel tasks
        out["n_pages"] = formats.jsonl_blocks(p.stat().st_size)
        try:
            out["rows"] = formats.read_jsonl(doc, first, last or first)
        except UnicodeDecodeError as e:
            raise QuarantineError("not_utf8", str(e)) from None
    else:
        try:
            out["rows"] = READERS[kind](doc)
        except UnicodeDecodeError as e:
            raise QuarantineError("not_utf8", str(e)) from None
    out["quarantine"] = doc.quarantine
    out["counters"] = dict(doc.counters)
    return out


def expand(paths: list[str | Path]) -> list[Path]:
    """Files under the given paths (folders recursively; hidden files and folders such as ``.flywheel``
    or ``.git`` skipped), in a stable order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(
                sorted(
                    x
                    for x in p.rglob("*")
                    if (x.is_file() or x.is_symlink())
                    and not any(part.startswith(".") for part in x.relative_to(p).parts)
                )
            )
        else:
            files.append(p)
    return files
