"""Read a config file (or a shipped config's name) and check it against the schema: every problem
becomes one PulseError line naming the file or ``config``, the dotted key and the allowed values.
The names it gives are checked next, by the catalog (``protocol/catalog.py: load_config``)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ..errors import PulseError, first_line
from ..core.messages import schema_keys, one_error
from .overrides import load_yaml
from .schema import RunConfig
from .shipped import resolve_config


def read_yaml(path: str | Path) -> dict:
    """The mapping at the top of a config file (or of the shipped config of that name)."""
    path = resolve_config(path)
    try:
        raw = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise PulseError(f"{path}: not valid YAML ({first_line(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PulseError(f"{path}: cannot read the config ({first_line(e)})") from None
    if not isinstance(raw, dict):
        raise PulseError(f"{path}: the top level must be a mapping")
    return raw


def parse(raw: dict, origin: str = "config") -> RunConfig:
    """``raw`` against the schema only (``protocol/catalog.py: validate`` checks its names too)."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        key, message = one_error(e, candidates=schema_keys(RunConfig))
        raise PulseError(f"{origin}: {key or 'config'}: {message}") from None
