"""The rails of one workload, in the order the gateway runs them (``flywheel.serving.service``):

    request -> PII masking -> injection -> topic -> cache -> engine -> moderation -> fact check -> PII masking -> user

Input rails see the user's messages only (the operator's system prompt is trusted). A rail that blocks returns
a :class:`~flywheel.guard.injection.Verdict`; the gateway answers the refusal (``finish_reason:
content_filter``, or HTTP 400 ``content_filter`` with ``on_block: error``), logs the interaction with
``guard_flags: ["blocked:<rail>:<reason>"]`` and counts it in ``flywheel_guard_blocks{rail}``. Each rail's time
is observed in ``flywheel_guard_seconds{rail}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flywheel.guard.config import GuardConfig
from flywheel.guard.consistency import unsupported
from flywheel.guard.injection import InjectionDetector, Verdict
from flywheel.guard.moderation import Moderation
from flywheel.guard.topic import TopicRail


class Rails:
    def __init__(self, cfg: GuardConfig, observe: Callable[[str, float], None] | None = None):
        self.cfg = cfg
        self.observe = observe or (lambda rail, seconds: None)
        self.injection = InjectionDetector(cfg.injection) if cfg.injection.enabled else None
        self.topic = TopicRail(cfg.topic) if cfg.topic.enabled else None
        self.moderation = Moderation(cfg.moderation) if cfg.moderation.enabled else None

    @property
    def whole_answer(self) -> bool:
        """Rails that need the whole answer before any of it is sent (masking, fact checking)."""
        mask = self.moderation is not None and self.cfg.moderation.action == "mask"
        return mask or self.cfg.fact_check.mode != "off"

    def warm_up(self) -> None:
        if self.injection is not None:
            self.injection.check("hello")
        if self.topic is not None:
            self.topic.similarity("hello")

    def check_input(self, messages: list[dict]) -> Verdict | None:
        """The first blocking verdict on the user's messages, or None."""
        users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
        if not users:
            return None
        if self.injection is not None:
            t0 = time.perf_counter()
            try:
                for text in users:
                    v = self.injection.check(text)
                    if v.blocked:
                        return v
            finally:
                self.observe("injection", time.perf_counter() - t0)
        if self.topic is not None:
            t0 = time.perf_counter()
            ok, sim = self.topic.on_topic(users[-1])
            self.observe("topic", time.perf_counter() - t0)
            if not ok:
                return Verdict(True, "topic", f"similarity:{sim:.2f}", sim)
        return None

    def refusal(self, verdict: Verdict) -> str:
        return self.cfg.topic.refusal if verdict.rail == "topic" else self.cfg.refusal

    def check_output(self, text: str, contexts: list[str] | None = None) -> tuple[str, Verdict | None, list[str]]:
        """(the answer to send, a blocking verdict or None, guard flags)."""
        flags: list[str] = []
        if self.moderation is not None:
            t0 = time.perf_counter()
            found = self.moderation.find(text)
            self.observe("moderation", time.perf_counter() - t0)
            if found:
                if self.cfg.moderation.action == "block":
                    return text, Verdict(True, "moderation", f"term:{found[0]}"), flags
                text = self.moderation.mask(text)
                flags.append(f"moderation_masked:{len(found)}")
        fc = self.cfg.fact_check
        if fc.mode != "off" and contexts:
            t0 = time.perf_counter()
            bad = unsupported(text, contexts, fc.min_support)
            self.observe("fact_check", time.perf_counter() - t0)
            if bad:
                if fc.mode == "refuse":
                    return text, Verdict(True, "fact_check", f"unsupported:{len(bad)}", bad[0][1]), flags
                flags.append(f"unsupported:{len(bad)}")
        return text, None, flags

    def check_piece(self, sent: str, piece: str) -> Verdict | None:
        """Streaming moderation: the verdict on ``piece`` following ``sent`` — a block when it would complete a
        blocked term (block mode; mask mode streams as one piece), else None."""
        if self.moderation is None:
            return None
        t0 = time.perf_counter()
        found = self.moderation.find(sent[-200:] + piece)
        self.observe("moderation", time.perf_counter() - t0)
        return Verdict(True, "moderation", f"term:{found[0]}") if found else None


def block_flag(v: Verdict) -> str:
    return f"blocked:{v.rail}:{v.reason}"
