"""The one message for a name that is not registered, wherever a name is looked up."""

from __future__ import annotations

from collections.abc import Iterable


def unknown_name(kind: str, name, choices: Iterable[str]) -> str:
    """``unknown split 'x'; choose from forget, retain``."""
    return f"unknown {kind} {name!r}; choose from {', '.join(choices)}"


class ConfigProblem(ValueError):
    """A config problem found after the schema's own checks: the dotted key and what is wrong,
    shown as one line (``config: splits.forget: must be < ...``)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message
