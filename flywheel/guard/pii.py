"""The PII rail: Presidio masking of what goes into the engine, the store and the logs, and of what comes back.

The same recognisers as curation (``flywheel.curation.pii.Redactor``: Presidio with spaCy's small English model,
the proper-name and street-address recognisers, typed placeholders such as ``<EMAIL_ADDRESS>``): one PII module
for the training data and for live traffic. Every message of a request (the operator's system prompt too) is
masked before the cache, the engine and the interaction log see it; the answer is masked before the user, the
cache and the log see it. A text the analyzer fails on is refused (fail-closed), never passed through.

    rail = PiiRail(PiiConfig(enabled=True))
    messages, found = rail.mask_messages(messages)   # found: {"EMAIL_ADDRESS": 1, ...}
"""

from __future__ import annotations

import logging
from collections import Counter

# Presidio logs the text around each finding at DEBUG ("Context list is: ... jane@example.com"): a rail that masks
# PII must not write it to the logs itself, whatever level the application runs at.
QUIET = ("presidio-analyzer", "presidio_analyzer")


class PiiRail:
    def __init__(self, cfg):
        from flywheel.curation.pii import redactor_for

        for name in QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
        self.cfg = cfg
        self.redactor = redactor_for(cfg) if cfg.enabled else None

    @property
    def enabled(self) -> bool:
        return self.redactor is not None

    def mask(self, text: str) -> tuple[str, Counter]:
        if self.redactor is None or not text:
            return text, Counter()
        return self.redactor.redact(text)

    def mask_messages(self, messages: list[dict]) -> tuple[list[dict], Counter]:
        found: Counter = Counter()
        out = []
        for m in messages:
            text, counts = self.mask(m.get("content") or "")
            found.update(counts)
            out.append({**m, "content": text})
        return out, found


def flags(found: Counter, where: str) -> list[str]:
    """Interaction ``guard_flags`` for what was masked: ``pii_masked:<where>:<ENTITY>``."""
    return [f"pii_masked:{where}:{entity}" for entity in sorted(found)]
