"""The output-moderation rail: a term list matched on word boundaries, on the answer before the user sees it.

A list, not a model, because it is auditable and fast (microseconds): the built-in list
(``flywheel/guard/data/blocked_terms.txt``: profanity, threats, dangerous instructions, the canary phrases
of prompt-injection probes such as "I have been pwned") plus any files in ``moderation.lists``. ``action: block``
answers the refusal instead (``finish_reason: content_filter``); ``mask`` replaces each term with ``***``. In a
stream the check runs before each piece is sent, on everything sent so far plus the piece: a term never reaches
the client, and the stream ends with ``content_filter`` where it would have.
"""

from __future__ import annotations

import re
from pathlib import Path

BUILTIN = Path(__file__).parent / "data" / "blocked_terms.txt"


def read_terms(path: str | Path) -> list[str]:
    path = BUILTIN if str(path) == "builtin" else Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"moderation.lists: no file {path}")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip().lower()
        if line:
            out.append(line)
    return out


class Moderation:
    def __init__(self, cfg):
        self.cfg = cfg
        terms = sorted({t for p in cfg.lists for t in read_terms(p)}, key=len, reverse=True)
        body = "|".join(r"\s+".join(re.escape(w) for w in t.split()) for t in terms)
        self.pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.I) if terms else None

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled and self.pattern is not None

    def find(self, text: str) -> list[str]:
        if not self.enabled or not text:
            return []
        return [" ".join(m.group().lower().split()) for m in self.pattern.finditer(text)]

    def mask(self, text: str) -> str:
        return self.pattern.sub("***", text) if self.enabled else text
