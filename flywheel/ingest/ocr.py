"""Tesseract OCR (Debian ``tesseract-ocr``, called through pytesseract).

    from flywheel.ingest.ocr import ocr_image
    text, boxes = ocr_image(pil_image, lang="eng", min_confidence=30)

Words are regrouped into Tesseract's own lines; each line's box is in image pixels.
"""

from __future__ import annotations

import shutil

from flywheel.core.errors import OcrUnavailable


def available() -> bool:
    return shutil.which("tesseract") is not None


def ocr_image(image, lang: str = "eng", min_confidence: float = 30.0) -> tuple[str, list[list[int]]]:
    """Text of a PIL image (lines joined by newlines) and the pixel boxes of its lines."""
    if not available():
        raise OcrUnavailable("tesseract is not installed (apt-get install tesseract-ocr; `make venv` does it)")
    import pytesseract

    data = pytesseract.image_to_data(image.convert("L"), lang=lang, output_type=pytesseract.Output.DICT)
    lines: dict[tuple, list] = {}
    for i, word in enumerate(data["text"]):
        if not word or not word.strip() or float(data["conf"][i]) < min_confidence:
            continue
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        box = (data["left"][i], data["top"][i], data["left"][i] + data["width"][i], data["top"][i] + data["height"][i])
        lines.setdefault(key, []).append((word.strip(), box))
    texts, boxes = [], []
    for key in sorted(lines):
        words = lines[key]
        texts.append(" ".join(w for w, _ in words))
        xs0, ys0, xs1, ys1 = zip(*(b for _, b in words))
        boxes.append([min(xs0), min(ys0), max(xs1), max(ys1)])
    return "\n".join(texts), boxes
