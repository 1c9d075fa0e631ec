"""Chunks for retrieval and training: token windows with overlap that never cut through a table.

- text-like rows (``text``, ``ocr``, ``image_text``): windows of ``chunk_tokens`` tokens, the next
  window starting ``chunk_tokens - overlap_tokens`` tokens later; a chunk's text is the exact
  character span of its tokens in the source;
- ``table`` rows (Markdown): split only between table rows, each piece repeating the header and its
  rule line, no overlap; a single table row longer than ``chunk_tokens`` stays whole and is counted
  as ``oversize_table_rows``.

Chunks keep their parent's ``source``, ``page`` and ``kind``; ``meta`` adds ``parent_id``,
``chunk``/``of``, ``tokens`` and the character (or table-row) span.

    from flywheel.ingest.chunking import Chunker
    chunks, stats, info = Chunker(ChunkingConfig(), encoder("whitespace")).apply(df)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from flywheel.core.steps import StepStats
from flywheel.ingest.config import ChunkingConfig

Spans = list[tuple[int, int]]  # character (start, end) of each token


def whitespace_encoder(text: str) -> Spans:
    return [m.span() for m in re.finditer(r"\S+", text)]


def encoder(name: str, cache_dir=None) -> Callable[[str], Spans]:
    """'whitespace', or a Hugging Face fast tokenizer by base-model name or folder (offline)."""
    if name == "whitespace":
        return whitespace_encoder
    from tokenizers import Tokenizer

    from flywheel.training.models import resolve_tokenizer

    folder = Path(name).expanduser()
    if not (folder / "tokenizer.json").exists():  # a base-model name (or a model folder) instead
        folder = resolve_tokenizer(name, cache_dir or ".")
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_truncation()

    def encode(text: str) -> Spans:
        return [(a, b) for a, b in tok.encode(text, add_special_tokens=False).offsets if b > a]

    return encode


class Chunker:
    name = "chunk"

    def __init__(self, cfg: ChunkingConfig, encode: Callable[[str], Spans]):
        self.cfg, self.encode = cfg, encode

    def _text_chunks(self, text: str) -> list[tuple[str, dict]]:
        spans = self.encode(text)
        size, step = self.cfg.chunk_tokens, self.cfg.chunk_tokens - self.cfg.overlap_tokens
        if len(spans) <= size:
            return [(text, {"tokens": len(spans), "chars": [0, len(text)]})]
        out = []
        for i in range(0, len(spans), step):
            window = spans[i : i + size]
            a, b = window[0][0], window[-1][1]
            out.append((text[a:b], {"tokens": len(window), "chars": [a, b]}))
            if i + size >= len(spans):
                break
        return out

    def _table_chunks(self, text: str) -> list[tuple[str, dict]]:
        lines = text.split("\n")
        head, body = lines[:2], lines[2:]
        head_tokens = len(self.encode("\n".join(head)))
        if head_tokens + len(self.encode("\n".join(body))) <= self.cfg.chunk_tokens or not body:
            return [(text, {"tokens": head_tokens + len(self.encode("\n".join(body))), "table_rows": [1, len(body)]})]
        out, cur, cur_tokens, first = [], [], head_tokens, 1
        for i, line in enumerate(body, 1):
            t = len(self.encode(line))
            self.oversize_rows += head_tokens + t > self.cfg.chunk_tokens  # stays whole, one chunk of its own
            if cur and cur_tokens + t > self.cfg.chunk_tokens:
                out.append(("\n".join(head + cur), {"tokens": cur_tokens, "table_rows": [first, i - 1]}))
                cur, cur_tokens, first = [], head_tokens, i
            cur.append(line)
            cur_tokens += t
        out.append(("\n".join(head + cur), {"tokens": cur_tokens, "table_rows": [first, len(body)]}))
        return out

    def apply(self, df: pd.DataFrame) -> tuple[pd.DataFrame, StepStats, dict]:
        """(chunks, counts over input rows, {"chunks", "split_rows", "oversize_table_rows"})."""
        stats = StepStats(self.name, total=len(df))
        out, split, self.oversize_rows = [], 0, 0
        for row in df.to_dict("records"):
            text = row["text"] if isinstance(row["text"], str) else ""
            if not text.strip():
                stats.dropped["empty"] += 1
                continue
            pieces = self._table_chunks(text) if row["kind"] == "table" else self._text_chunks(text)
            split += len(pieces) > 1
            parent_meta = json.loads(row["meta"]) if isinstance(row.get("meta"), str) and row["meta"] else {}
            for k, (piece, extra) in enumerate(pieces):
                meta = {**parent_meta, "parent_id": row["id"], "chunk": k, "of": len(pieces), **extra}
                out.append(
                    {
                        **row,
                        "id": f"{row['id']}-{k}" if len(pieces) > 1 else row["id"],
                        "text": piece,
                        "meta": json.dumps(meta, sort_keys=True, ensure_ascii=False),
                    }
                )
        stats.kept = stats.total - sum(stats.dropped.values())
        stats.modified = split
        info = {"chunks": len(out), "split_rows": split, "oversize_table_rows": self.oversize_rows}
        return pd.DataFrame(out, columns=list(df.columns)), stats, info
