"""Tables from PDF pages, as Markdown rows of ``kind=table``.

Only pages that can hold a ruled table are parsed: pypdfium2 counts the page's path objects (the
ruling lines) for free, and pdfplumber — whose layout analysis is the slow part — opens just those
pages. A text-only page costs one object count.

    from flywheel.ingest.tables import table_rows
    rows = table_rows("manual.pdf", candidate_pages=[2, 5])
"""

from __future__ import annotations

import json

MIN_RULINGS = 4  # a ruled table needs at least two horizontal and two vertical lines


def ruling_count(page) -> int:
    """Path objects (lines, rectangles) on a pypdfium2 page."""
    import pypdfium2.raw as pdfium_c

    return sum(1 for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH]))


def to_markdown(cells: list[list[str | None]]) -> str:
    """First row as the header; pipes escaped and line breaks folded so every cell stays one cell."""
    def cell(v):
        return ("" if v is None else str(v)).replace("|", "\\|").replace("\n", " ").strip()

    width = max(len(r) for r in cells)
    rows = [[cell(v) for v in r] + [""] * (width - len(r)) for r in cells]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def table_rows(path: str, candidate_pages: list[int], n_pages: int, doc_id) -> list[dict]:
    """Markdown table rows for the given 1-based pages; ``doc_id(*parts)`` makes stable ids."""
    if not candidate_pages:
        return []
    import pdfplumber

    out = []
    with pdfplumber.open(path, pages=candidate_pages) as doc:
        for page in doc.pages:
            for k, table in enumerate(page.find_tables()):
                cells = table.extract()
                if not cells or not any(any(c for c in r) for r in cells):
                    continue
                out.append({
                    "id": doc_id(path, page.page_number, "table", k),
                    "text": to_markdown(cells),
                    "source": path,
                    "page": page.page_number,
                    "kind": "table",
                    "meta": json.dumps({"pages": n_pages, "bbox": [round(v, 2) for v in table.bbox],
                                        "rows": len(cells), "cols": max(len(r) for r in cells)}),
                })
    return out
