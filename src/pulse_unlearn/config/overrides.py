"""``key=value`` overrides from the command line, applied to the YAML tree before validation.

Any field is set by its dotted path (``unlearn.lr=1e-4``, ``grid.0.methods=[npo]``); values are
parsed as YAML (numbers, lists, booleans). The shortcuts ``scenario=``, ``method=`` and
``update=`` replace the grid with one block, and ``model=DIR_OR_ID`` selects a checkpoint
(``model.source=path``, ``model.base=DIR_OR_ID``).
"""

from __future__ import annotations

import copy
import re

import yaml

from ..errors import PulseError, first_line

SHORTCUTS = ("scenario", "method", "update")


class ConfigLoader(yaml.SafeLoader):
    """YAML as written by people: ``1e-4`` is a number (YAML 1.1 wants ``1.0e-4``, else text)."""


ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                                   list("-+0123456789"))


def load_yaml(text: str):
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 (a SafeLoader)


def _child(node, part: str, dotted: str, where: str):
    """The section ``part`` of ``node`` (made when missing), or a one-line error."""
    if isinstance(node, dict):
        return node.setdefault(part, {})
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    raise PulseError(f"override {dotted}: {where or 'the config'} is not a section (or has no item {part})")


def _set(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for i, part in enumerate(parents):
        node = _child(node, part, dotted, ".".join(parents[:i]))
    if isinstance(node, list) and leaf.isdigit() and int(leaf) < len(node):
        node[int(leaf)] = value
    elif isinstance(node, dict):
        node[leaf] = value
    else:
        raise PulseError(f"override {dotted}: {'.'.join(parents)} is not a section")


def parse_override(item: str) -> tuple[str, str, object]:
    """``key=value`` -> (key, the value's text, the value parsed as YAML; empty text is null)."""
    key, eq, text = item.partition("=")
    if not eq or not all(key.split(".")):
        raise PulseError(f"override {item!r}: expected key=value (a dotted key such as unlearn.lr)")
    try:
        value = load_yaml(text) if text else None
    except yaml.YAMLError as e:
        raise PulseError(f"override {key}: the value {text!r} is not valid YAML ({first_line(e)})") from None
    return key, text, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """``raw`` (left as it is) with the overrides applied, in order."""
    raw = copy.deepcopy(raw)
    shortcut: dict[str, list] = {}
    for item in overrides:
        key, text, value = parse_override(item)
        if key in SHORTCUTS:
            shortcut[key] = value if isinstance(value, list) else [value]
        elif key == "model":
            if not text:
                raise PulseError("override model=: give a checkpoint folder or hub id")
            _set(raw, "model.source", "path")
            _set(raw, "model.base", text)
        else:
            _set(raw, key, value)
    if shortcut:
        grid = raw.get("grid")
        base = grid[0] if isinstance(grid, list) and grid and isinstance(grid[0], dict) else {}
        raw["grid"] = [{"scenarios": shortcut.get("scenario", base.get("scenarios", ["finetuned"])),
                        "methods": shortcut.get("method", base.get("methods", ["ga"])),
                        "updates": shortcut.get("update", base.get("updates", ["llm"]))}]
    return raw
