"""Colang actions for NeMo Guardrails (configs/guardrails): the gateway's injection and moderation rails, with
the settings of configs/gateway/default.yaml's ``guard`` (the defaults when that file is not found)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from nemoguardrails.actions import action


@cache
def _guard():
    from flywheel.core.config import load_config
    from flywheel.guard.config import GuardConfig
    from flywheel.guard.injection import InjectionDetector
    from flywheel.guard.moderation import Moderation
    from flywheel.serving.config import GatewaySettings

    path = Path(__file__).resolve().parents[1] / "gateway" / "default.yaml"
    cfg = load_config(path, GatewaySettings).guard if path.exists() else GuardConfig()
    return InjectionDetector(cfg.injection), Moderation(cfg.moderation)


@action(name="flywheel_injection_check")
async def flywheel_injection_check(text: str = "") -> bool:
    """True when the user's message is a prompt injection or jailbreak (it is refused)."""
    return _guard()[0].check(text or "").blocked


@action(name="flywheel_moderation_check")
async def flywheel_moderation_check(text: str = "") -> bool:
    """True when the model's answer carries a blocked term (it is refused)."""
    return bool(_guard()[1].find(text or ""))
