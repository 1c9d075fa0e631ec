"""The fact-consistency rail's hook: are the answer's sentences supported by the knowledge it was given?

A request that carries retrieved context (the knowledge base of issue 16 fills ``contexts``) has each answer
sentence scored against it; a sentence whose support is below ``fact_check.min_support`` is *unsupported*:
logged in ``guard_flags`` (``mode: flag``) or the answer is refused (``mode: refuse``). The default scorer is
lexical — the share of a sentence's content words (numbers included) found in the best-matching context — so
it needs no model; :func:`set_scorer` installs a better one (an NLI cross-encoder, an embedding scorer) for
every gateway in the process.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SENT = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9][a-z0-9.,%$-]*", re.I)
_STOP = set(
    "a an the and or but if of to in on at by for with from as is are was were be been it its this that these those "
    "you your we our they their he she his her i my me not no yes do does did can could will would should may might "
    "there here what which who whom how when where why so than then".split()
)

Scorer = Callable[[str, list[str]], float]


def _words(text: str) -> set[str]:
    return {w.strip(".,").lower() for w in _WORD.findall(text)} - _STOP - {""}


def sentences(text: str) -> list[str]:
    """The text's sentences (split after . ! ?), stripped, empty ones dropped."""
    return [s.strip() for s in _SENT.split(text) if s.strip()]


def lexical_support(sentence: str, contexts: list[str]) -> float:
    """Share of the sentence's content words that the best-matching context contains (1.0: no content words)."""
    words = _words(sentence)
    if not words:
        return 1.0
    return max((len(words & _words(c)) / len(words) for c in contexts), default=0.0)


_SCORER: list[Scorer] = [lexical_support]


def set_scorer(scorer: Scorer) -> None:
    _SCORER[0] = scorer


def unsupported(answer: str, contexts: list[str], min_support: float) -> list[tuple[str, float]]:
    """The answer's sentences whose support is below ``min_support``, with their scores."""
    if not contexts:
        return []
    out = []
    for sentence in sentences(answer):
        score = _SCORER[0](sentence, contexts)
        if score < min_support:
            out.append((sentence, score))
    return out
