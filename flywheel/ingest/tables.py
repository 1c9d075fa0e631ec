"""Tables from PDF pages, as Markdown rows of ``kind=table``.

Only pages that can hold a ruled table are parsed: pypdfium2 counts the page's path objects (the
ruling lines; see ``pdf._page_objects``), and pdfplumber — whose layout analysis is the slow part — opens just those
pages. A text-only page costs one object count.

    from flywheel.ingest.tables import table_rows
    tables = table_rows("manual.pdf", candidate_pages=[2, 5])
"""

from __future__ import annotations


def to_markdown(cells: list[list[str | None]]) -> str:
    """First row as the header; pipes escaped and line breaks folded so every cell stays one cell."""

    def cell(v):
        return ("" if v is None else str(v)).replace("|", "\\|").replace("\n", " ").strip()

    width = max(len(r) for r in cells)
    rows = [[cell(v) for v in r] + [""] * (width - len(r)) for r in cells]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def table_rows(path: str, candidate_pages: list[int]) -> list[dict]:
    """Tables on the given 1-based pages: ``{"page", "k", "text" (Markdown), "bbox", "rows", "cols"}``."""
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
                # pdfplumber's bbox is (x0, top, x1, bottom) from the top; report PDF space like pdfium.
                x0, top, x1, bottom = table.bbox
                out.append(
                    {
                        "page": page.page_number,
                        "k": k,
                        "text": to_markdown(cells),
                        "bbox": [round(v, 2) for v in (x0, page.height - bottom, x1, page.height - top)],
                        "rows": len(cells),
                        "cols": max(len(r) for r in cells),
                    }
                )
    return out
