"""The text of ingest rows read as a manual: its title, its headed sections, a long section cut at sentences,
its markdown tables (as ingest writes them) and the headed passages questions are made from — shared by the KB's
chunker, its graph, its generated questions and the synthetic QA pairs.
"""

from __future__ import annotations

import re

from flywheel.guard.consistency import sentences

HEADING = re.compile(r"^(?:\d+(?:\.\d+)*\.?\s+\S.{0,80}|[A-Z][A-Za-z ]{2,60})$")


def doc_title(text: str) -> str:
    """A row's first non-empty line (at most 120 characters): the manual's title on its first page."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:120]


def split_sentences(text: str, max_chars: int) -> list[str]:
    """``text`` cut at sentence ends into pieces of at most ``max_chars`` (a longer sentence stays whole)."""
    if len(text) <= max_chars:
        return [text]
    out, cur = [], ""
    for s in sentences(text):
        if cur and len(cur) + 1 + len(s) > max_chars:
            out.append(cur)
            cur = ""
        cur = f"{cur} {s}".strip()
    return [*out, cur] if cur else out


def markdown_table(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """A markdown table as ingest writes it: (header cells, [(row line, its cells)]) — the rows whose cell count
    matches the header's and whose first cell is set; the separator line is skipped."""
    lines = [line for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")]
    if not lines:
        return [], []

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip("|").split("|")]

    header = cells(lines[0])
    return header, [(line, row) for line in lines[1:] if len(row := cells(line)) == len(header) and row[0]]


def headed_passages(text: str, title: str) -> list[tuple[str, str, str]]:
    """(heading, topic — the heading without its number, first sentence) of each headed section of a text row
    whose first sentence is longer than 30 characters: what generated questions and QA pairs are made of."""
    out = []
    for head, body in sections(text, title):
        first = sentences(body)[0]
        if head and len(first) > 30:
            out.append((head, re.sub(r"^\d+(?:\.\d+)*\.?\s+", "", head), first))
    return out


def sections(text: str, title: str) -> list[tuple[str, str]]:
    """(heading, body) of each section of a text row: a heading is a short numbered or capitalised line without a
    final period; text before the first heading has the heading ""."""
    out, head, body = [], "", []
    for line in text.splitlines():
        s = line.strip()
        if s and HEADING.match(s) and s != title and len(s) < 90 and not s.endswith("."):
            if body:
                out.append((head, " ".join(body)))
            head, body = s, []
        elif s and s != title:
            body.append(s)
    if body:
        out.append((head, " ".join(body)))
    return out
