"""The base of every configuration model, and the YAML loader. Each stage keeps its own models beside its
logic (``flywheel/<stage>/config.py``); :mod:`flywheel.core.workload` composes them into a workload.

Every model forbids unknown keys and bounds every field, so a typo fails fast with the field's name
(``flywheel ... --config x.yaml`` exits 2). The models are also the Prefect flow parameters, so the
Prefect UI renders them as forms.

    from flywheel.core.config import load_config
    from flywheel.curation.config import CurationConfig
    cfg = load_config("configs/curation/default.yaml", CurationConfig)
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from flywheel.core.errors import ConfigError


class ConfigModel(BaseModel):
    """Unknown keys are errors; assignments are validated too (``cfg.port = 0`` fails like the YAML would)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


M = TypeVar("M", bound=ConfigModel)


def _format(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


def validate(model: type[M], data: dict, source: str = "config") -> M:
    try:
        return model.model_validate(data or {})
    except ValidationError as err:
        raise ConfigError(_format(err, source)) from None


def load_config(path: str | Path, model: type[M]) -> M:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return validate(model, data, str(path))
