"""PDF pages -> rows: text (pypdfium2), ruled tables (pdfplumber), scanned pages and images (Tesseract).

One pass over each page's objects through pdfium's C API decides what else the page needs:

- text layer            -> a ``kind=text`` row (always, when the page has characters);
- >= ``min_rulings`` path objects -> pdfplumber opens the page for ``kind=table`` rows;
- no text at all        -> the page is rendered at ``ocr.dpi`` and OCR'd into a ``kind=ocr`` row;
- an image of at least ``ocr.min_image_px`` on a page with text -> that image is OCR'd into a
  ``kind=image_text`` row with its bounding box (charts, figures, stamped scans).

Text-only pages therefore cost one text extraction and one object count.

    from flywheel.ingest.pdf import open_pdf, read_pdf_pages
"""

from __future__ import annotations

from flywheel.core.errors import QuarantineError
from flywheel.ingest.sniff import has_eof


def open_pdf(path: str):
    """A pypdfium2 document, or QuarantineError naming why not (encrypted, truncated, corrupt, zero_pages)."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as e:
        msg = str(e)
        if "password" in msg.lower():
            raise QuarantineError("encrypted", msg) from None
        if not has_eof(path):
            raise QuarantineError("truncated", f"no %%EOF at the end: {msg}") from None
        if _declares_no_pages(path):
            raise QuarantineError("zero_pages", f"page tree is empty (/Count 0): {msg}") from None
        raise QuarantineError("corrupt_pdf", msg) from None
    if len(pdf) == 0:
        pdf.close()
        raise QuarantineError("zero_pages", "PDF has no pages")
    return pdf


def _declares_no_pages(path: str) -> bool:
    """pdfium refuses a PDF whose page tree is empty; tell that apart from other corruption."""
    import re

    with open(path, "rb") as f:
        head = f.read(1 << 20)
    counts = re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", head)
    return bool(counts) and all(int(a or b) == 0 for a, b in counts)


def _page_objects(page) -> tuple[int, list[int]]:
    """(path objects, indexes of image objects) via the raw API: no Python object per item."""
    import pypdfium2.raw as c

    raw = page.raw
    paths, images = 0, []
    for i in range(c.FPDFPage_CountObjects(raw)):
        t = c.FPDFPageObj_GetType(c.FPDFPage_GetObject(raw, i))
        if t == c.FPDF_PAGEOBJ_PATH:
            paths += 1
        elif t == c.FPDF_PAGEOBJ_IMAGE:
            images.append(i)
    return paths, images


def read_pdf_pages(path: str, first: int, last: int, doc, cfg) -> dict:
    """Rows of 1-based pages ``first..last``; ``doc`` makes ids/meta (see readers.Doc); ``cfg`` is IngestConfig.

    Returns ``{"rows", "n_pages", "pages", "table_pages", "ocr_pages", "images_ocrd", "notes"}``; a failing
    table parser or OCR on one page is a note (``partial``) and never loses the page's text.
    """
    import pypdfium2 as pdfium

    from flywheel.ingest import ocr as ocr_mod
    from flywheel.ingest.tables import table_rows

    pdf = open_pdf(path)
    n_pages = len(pdf)
    out = {"rows": [], "n_pages": n_pages, "pages": 0, "table_pages": 0, "ocr_pages": 0, "images_ocrd": 0, "notes": []}
    want_ocr = doc.ocr_ready()  # notes ocr_unavailable once when tesseract is missing
    table_pages = []
    try:
        for pno in range(first, min(last, n_pages) + 1):
            page = pdf[pno - 1]
            out["pages"] += 1
            width, height = page.get_size()
            page_box = [0.0, 0.0, round(width, 2), round(height, 2)]
            text = page.get_textpage().get_text_range().replace("\r\n", "\n").strip()
            n_paths, images = _page_objects(page)
            if text:
                out["rows"].append(doc.row(text, "text", page=pno, bbox=page_box, pages=n_pages))
            if cfg.tables and n_paths >= cfg.min_rulings:
                table_pages.append(pno)
            if not want_ocr:
                continue
            try:
                if not text:  # no text layer: a scanned page
                    image = page.render(scale=cfg.ocr.dpi / 72).to_pil()
                    words, _ = ocr_mod.ocr_image(image, cfg.ocr.lang, cfg.ocr.min_confidence)
                    out["ocr_pages"] += 1
                    if words:
                        out["rows"].append(
                            doc.row(
                                words,
                                "ocr",
                                page=pno,
                                bbox=page_box,
                                pages=n_pages,
                                ocr={"engine": "tesseract", "lang": cfg.ocr.lang, "dpi": cfg.ocr.dpi},
                            )
                        )
                    continue
                for k, idx in enumerate(images):
                    obj = pdfium.PdfImage(pdfium.raw.FPDFPage_GetObject(page.raw, idx), page=page, pdf=pdf)
                    w_px, h_px = obj.get_px_size()
                    if min(w_px, h_px) < cfg.ocr.min_image_px:
                        continue
                    left, bottom, right, top = obj.get_bounds()
                    words, _ = ocr_mod.ocr_image(
                        obj.get_bitmap(render=True).to_pil(), cfg.ocr.lang, cfg.ocr.min_confidence
                    )
                    out["images_ocrd"] += 1
                    if words:
                        out["rows"].append(
                            doc.row(
                                words,
                                "image_text",
                                page=pno,
                                k=k,
                                pages=n_pages,
                                bbox=[round(v, 2) for v in (left, bottom, right, top)],
                                image={"px": [w_px, h_px]},
                                ocr={"engine": "tesseract", "lang": cfg.ocr.lang},
                            )
                        )
            except Exception as e:  # noqa: BLE001 - OCR of one page must not lose the rest
                out["notes"].append({"page": pno, "reason": "ocr_failed", "error": f"{type(e).__name__}: {e}"})
    finally:
        pdf.close()
    out["table_pages"] = len(table_pages)
    if table_pages:
        try:
            for t in table_rows(path, table_pages):
                out["rows"].append(
                    doc.row(
                        t["text"],
                        "table",
                        page=t["page"],
                        k=t["k"],
                        bbox=t["bbox"],
                        pages=n_pages,
                        rows=t["rows"],
                        cols=t["cols"],
                    )
                )
        except Exception as e:  # noqa: BLE001 - a table parser failure must not lose the page text
            out["notes"].append(
                {
                    "reason": "table_extraction_failed",
                    "error": f"{type(e).__name__}: {e}",
                    "pages": [table_pages[0], table_pages[-1]],
                }
            )
    return out
