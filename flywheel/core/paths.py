"""Resolve workload input paths against the project home."""

from __future__ import annotations

from pathlib import Path

from flywheel.core.home import Home


def resolve(home: Home, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else home.root / p
