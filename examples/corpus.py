"""Generated documents with known ground truth, for the ingest tests and benchmarks.

- :func:`ruled_table_pdf`: pages with a ruled table each (or text only); returns the cells.
- :func:`scanned_pdf`: image-only pages (no text layer) of known words, as a scanner makes them.
- :func:`figure_pdf`: a text page with an embedded raster figure whose labels only OCR can read.
- :func:`html_doc`, :func:`markdown_doc`, :func:`docx_doc`, :func:`parquet_doc`: one of each format.
- :func:`bad_corpus`: every kind of bad input ingest must quarantine (encrypted, corrupt, truncated,
  empty, zero pages, oversize, mislabelled, unreadable, and a PDF that makes the table parser hang).

    python -m examples.corpus --out /tmp/corpus       # writes all of them
"""

from __future__ import annotations

import argparse
import io
import os
import zlib
from pathlib import Path

WORDS = (
    "ledger audit invoice merchant refund velocity border review analyst policy threshold account "
    "payment settlement dispute chargeback"
).split()


def table_for(page: int, rows: int = 5) -> list[list[str]]:
    head = ["Region", "Q1", "Q2", "Owner"]
    return [head] + [
        [f"R{page}-{r}", f"{page * 100 + r:,}", f"${r * 7.5:.2f}", f"team {r}|{page}"] for r in range(1, rows)
    ]


def ruled_table_pdf(path: Path, pages: list[list[list[str]] | None], text_lines: int = 3) -> Path:
    """pages: a table (rows of cells) or None for a text-only page."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Table, TableStyle

    body = getSampleStyleSheet()["BodyText"]
    story = []
    for i, table in enumerate(pages):
        for k in range(text_lines):
            story.append(
                Paragraph(
                    f"Section {i + 1}.{k}: quarterly figures and notes for the review board; "
                    + " ".join(WORDS[(i + k + j) % len(WORDS)] for j in range(24))
                    + ".",
                    body,
                )
            )
        if table is not None:
            story.append(Table(table, style=TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)])))
        story.append(PageBreak())
    SimpleDocTemplate(str(path), pagesize=A4).build(story)
    return path


def _text_image(lines: list[str], width: int = 1700, font_size: int = 44):
    """A white raster with black text, drawn by reportlab and rasterised by pdfium (a real font, no Pillow fonts)."""
    import pypdfium2 as pdfium
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    h = 40 + len(lines) * (font_size + 16)
    c = canvas.Canvas(buf, pagesize=(width * 0.5, h * 0.5))
    c.setFont("Helvetica", font_size * 0.5)
    for i, line in enumerate(lines):
        c.drawString(20, h * 0.5 - 20 - (i + 1) * (font_size + 16) * 0.5, line)
    c.save()
    pdf = pdfium.PdfDocument(buf.getvalue())
    img = pdf[0].render(scale=2.0).to_pil().convert("L")
    pdf.close()
    return img


def scanned_pdf(path: Path, pages: list[list[str]]) -> Path:
    """Each page is one image of the given lines and has no text layer."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for lines in pages:
        img = _text_image(lines)
        w = A4[0] - 72
        c.drawImage(
            ImageReader(img), 36, A4[1] - 36 - w * img.height / img.width, width=w, height=w * img.height / img.width
        )
        c.showPage()
    c.save()
    return path


def figure_pdf(path: Path, text: str, figure_lines: list[str]) -> Path:
    """A page with a text layer and an embedded figure (a raster with labels) below it."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.setFont("Helvetica", 11)
    c.drawString(50, A4[1] - 60, text)
    img = _text_image(figure_lines)
    c.drawImage(ImageReader(img), 50, 300, width=400, height=400 * img.height / img.width)
    c.showPage()
    c.save()
    return path


def html_doc(path: Path) -> Path:
    path.write_text("""<!DOCTYPE html><html><head><title>Chargeback handbook</title><style>p{color:red}</style>
<script>var tracking = "should not appear";</script></head><body>
<nav><a href="/">Home</a> | <a href="/x">Menu entry</a></nav>
<h1>Chargeback handbook</h1><p>A chargeback reverses a card payment after the holder disputes it.</p>
<h2>Deadlines</h2><ul><li>Respond within 20 days.</li><li>Attach the receipt.</li></ul>
<table><tr><th>Reason code</th><th>Meaning</th></tr><tr><td>10.4</td><td>Fraud, card absent</td></tr>
<tr><td>13.1</td><td>Goods not received</td></tr></table>
<footer>Copyright footer text</footer></body></html>""")
    return path


def markdown_doc(path: Path) -> Path:
    path.write_text("""# Velocity rules

Five or more transactions within an hour raise the velocity flag.

| Rule | Window | Limit |
|------|--------|-------|
| velocity | 1 h | 5 |
| night | 00-04 | 1 |

After the table, the prose continues with the review steps.
""")
    return path


def docx_doc(path: Path, figure_lines: list[str] | None = None) -> Path:
    import docx

    d = docx.Document()
    d.core_properties.title = "Dispute procedure"
    d.add_heading("Dispute procedure", level=1)
    d.add_paragraph("Open a dispute when the cardholder reports an unknown charge.")
    t = d.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("Step", "Owner"), ("Freeze card", "analyst"), ("Refund", "back office")]):
        t.cell(r, 0).text, t.cell(r, 1).text = a, b
    d.add_paragraph("Close the case once the refund settles.")
    if figure_lines:
        buf = io.BytesIO()
        _text_image(figure_lines).save(buf, format="PNG")
        buf.seek(0)
        d.add_picture(buf)
    d.save(str(path))
    return path


def parquet_doc(path: Path) -> Path:
    import pandas as pd

    pd.DataFrame(
        {
            "id": ["p1", "p2", "p3"],
            "text": ["first parquet record", None, "third parquet record"],
            "label": ["LEGIT", "FRAUD", "FRAUD"],
        }
    ).to_parquet(path, index=False)
    return path


# ---------------------------------------------------------------- bad input


def _raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF from object bodies (1-based), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def zero_page_pdf(path: Path) -> Path:
    path.write_bytes(_raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]))
    return path


def hang_pdf(path: Path, rects: int = 400_000) -> Path:
    """One page whose content stream draws ``rects`` tiny rectangles: pdfium counts them in about a second,
    pdfminer (under pdfplumber's table finder) takes minutes — what a parser hang looks like."""
    ops = b"".join(b"%d %d 2 2 re S\n" % (i % 590, (i // 590) % 830) for i in range(rects))
    stream = zlib.compress(ops, 9)
    path.write_bytes(
        _raw_pdf(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << >> >>",
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
            ]
        )
    )
    return path


def encrypted_pdf(path: Path) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4, encrypt="secret-user-password")
    c.drawString(72, 700, "Confidential: this text is behind a password.")
    c.showPage()
    c.save()
    return path


def bad_corpus(out: Path, good: bool = True) -> dict[str, str]:
    """Write the bad-input corpus (and, with ``good``, two good files). Returns file name -> expected reason.

    ``oversize.txt`` is 2 MiB: run with ``max_file_bytes`` below that (the tests use 1 MiB), and a
    ``timeout_s`` well under a minute for ``hang.pdf``."""
    from examples.documents import write_corrupt_pdf

    out.mkdir(parents=True, exist_ok=True)
    whole = ruled_table_pdf(out / ".whole.pdf", [table_for(1), None]).read_bytes()
    (out / ".whole.pdf").unlink()
    writers = {
        "encrypted.pdf": ("encrypted", encrypted_pdf),
        "corrupt.pdf": ("corrupt_pdf", write_corrupt_pdf),
        "truncated.pdf": ("truncated", lambda p: p.write_bytes(whole[: len(whole) // 3])),
        "empty.pdf": ("empty", lambda p: p.write_bytes(b"")),
        "zero-pages.pdf": ("zero_pages", zero_page_pdf),
        "oversize.txt": ("oversize", lambda p: p.write_text("oversize filler line for the size limit\n" * 52_000)),
        "photo.docx": ("mislabelled", lambda p: p.write_bytes(os.urandom(4096).replace(b"PK", b"pk"))),
        "unreadable.pdf": ("unreadable", lambda p: p.symlink_to(out / "no-such-target.pdf")),
        "hang.pdf": ("timeout", hang_pdf),
    }
    for name, (_, write) in writers.items():
        write(out / name)
    if good:
        ruled_table_pdf(out / "good.pdf", [table_for(1), None])
        html_doc(out / "good-page.pdf")  # HTML named .pdf: read as HTML, noted as mislabelled, nothing lost
    return {name: reason for name, (reason, _) in writers.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    out = p.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    ruled_table_pdf(out / "tables-50.pdf", [table_for(i) for i in range(1, 51)])
    scanned_pdf(out / "scanned.pdf", [["Scanned invoice 4711", "Total due 1,250.00 EUR", "Merchant Lakeside Books"]])
    figure_pdf(
        out / "figure.pdf",
        "Monthly chargeback report with a figure below.",
        ["Chargebacks by month", "January 42", "February 37"],
    )
    html_doc(out / "handbook.html")
    markdown_doc(out / "velocity.md")
    docx_doc(out / "dispute.docx")
    parquet_doc(out / "records.parquet")
    print(bad_corpus(out / "bad"))


if __name__ == "__main__":
    main()
