"""The checkable facts of a request — numbers and amounts, times of day, capitalised names — that the response
cache's near-miss guard and its trained similarity model compare (``flywheel.serving.cache``,
``flywheel.serving.similarity``)."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"(?<![\w.])[$€£]?\s?\d[\d,]*(?:\.\d+)?%?")
_TIME = re.compile(r"\b([01]?\d|2[0-3])[:h.]([0-5]\d)\b")
_NAME = re.compile(r"\b[A-Z][a-zA-Z&'-]+(?:\s+[A-Z][a-zA-Z&'-]+)*\b")
_STOP_NAMES = {"The", "A", "An", "I", "Is", "Are", "Was", "What", "How", "Why", "When", "Which", "Who", "Can", "Do",
               "Does", "Please", "Online", "Card", "Answer", "Transaction", "Purchase"}  # fmt: skip


def facts(text: str) -> frozenset[str]:
    """The checkable facts of a text: times (``14:15``), numbers (``$1,240.50`` -> ``1240.50``), names."""
    out = set()
    for h, m in _TIME.findall(text):
        out.add(f"t{int(h):02d}:{m}")
    stripped = _TIME.sub(" ", text)
    for n in _NUMBER.findall(stripped):
        v = n.replace("$", "").replace("€", "").replace("£", "").replace(",", "").strip()
        out.add("n" + (v.rstrip("0").rstrip(".") if "." in v else v))
    for m in _NAME.finditer(stripped):
        words = m.group().split()
        if not stripped[: m.start()].strip() or stripped[: m.start()].rstrip()[-1] in ".!?":
            words = words[1:]  # the first word of a sentence is capitalised by position ("My", "At TechHaven")
        words = [w for w in words if w not in _STOP_NAMES]
        if words:
            out.add("e" + " ".join(words).lower())
    return frozenset(out)


def same_facts(a: str, b: str) -> bool:
    return facts(a) == facts(b)
