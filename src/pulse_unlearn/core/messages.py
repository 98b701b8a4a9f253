"""A validation problem as one line: the dotted key, what it must be, and the value it got.

Unknown keys are matched against the schema's own dotted keys (``difflib``), so a misspelled or
moved key (``unlearn.lora_rank``) names the key meant (``unlearn.lora.rank``).
"""

from __future__ import annotations

import difflib
import inspect
from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

# pydantic error type -> what the value must be ({name}: the error's context)
RULES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "string_pattern_mismatch": "must match {pattern}",
    "literal_error": "must be {expected}",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "too_short": "must hold at least {min_length} item(s)",
    "path_type": "must be a path",
    "missing": "is required",
}
BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))  # attributes of pydantic's range metadata


def shown(value) -> str:
    """A value as the user would write it in YAML, cut short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def schema_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of ``model``: sections and leaves; a list's items are ``*``."""
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + name
        keys.append(key)
        inner, is_list = _nested_model(field.annotation)
        if inner is not None:
            keys += schema_keys(inner, f"{key}.*." if is_list else f"{key}.")
    return keys


def _nested_model(annotation) -> tuple[type[BaseModel] | None, bool]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is list:
        inner = get_args(annotation)[0]
        if inspect.isclass(inner) and issubclass(inner, BaseModel):
            return inner, True
    return None, False


def describe_field(field) -> str:
    """``float > 0``, ``int >= 1``, ``one of 'a', 'b'``: a field's type and range."""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(annotation))
    bounds = [f"{sign} {_number(getattr(m, attr))}" for m in field.metadata for attr, sign in BOUNDS
              if getattr(m, attr, None) is not None]
    return " ".join([getattr(annotation, "__name__", str(annotation)), ", ".join(bounds)]).strip()


def describe_params(schema: type[BaseModel]) -> str:
    fields = schema.model_fields
    return ", ".join(f"{name} ({describe_field(f)})" for name, f in fields.items()) or "no parameters"


def _pattern(key: str) -> str:
    return ".".join("*" if part.isdigit() else part for part in key.split("."))


def closest(key: str, candidates: list[str]) -> str | None:
    """The candidate meant by ``key``: a near-identical dotted key anywhere (a moved key), else a
    close name beside it; list indices in ``key`` fill the candidates' ``*``."""
    pattern = _pattern(key)
    parent, _, leaf = pattern.rpartition(".")
    match = difflib.get_close_matches(pattern, candidates, n=1, cutoff=0.85)
    if not match:
        siblings = {c.rpartition(".")[2]: c for c in candidates if c.rpartition(".")[0] == parent}
        match = [siblings[m] for m in difflib.get_close_matches(leaf, list(siblings), n=1, cutoff=0.6)]
    if not match:
        return None
    indices = iter(part for part in key.split(".") if part.isdigit())
    return ".".join(next(indices, "0") if part == "*" else part for part in match[0].split("."))


def beside(key: str, candidates: list[str]) -> str:
    """``"unlearn takes lr, epochs, ..."``: the keys valid where ``key`` stands."""
    parent = _pattern(key).rpartition(".")[0]
    names = [c.rpartition(".")[2] for c in candidates if c.rpartition(".")[0] == parent]
    return f"{parent or 'the config'} takes {', '.join(names)}" if names else ""


def unknown_key(key: str, candidates: list[str], takes: str = "") -> str:
    """``unknown key (did you mean X?)``, then ``takes`` (by default, the keys valid there when none is close)."""
    meant = closest(key, candidates)
    hint = f" (did you mean {meant}?)" if meant else ""
    takes = takes or ("" if meant else beside(key, candidates))
    return f"unknown key{hint}" + (f"; {takes}" if takes else "")


def one_error(e: ValidationError, prefix: str = "", candidates: list[str] = (), takes: str = "") -> tuple[str, str]:
    """(dotted key, message) of the first problem in ``e``; unknown keys are matched against
    ``candidates`` (dotted keys, as ``schema_keys`` gives them), else told what ``takes`` says."""
    err = e.errors()[0]
    ctx = err.get("ctx") or {}
    if err["type"] == "pulse_key":
        return ctx["key"], ctx["message"]
    key = ".".join(str(part) for part in ([prefix] if prefix else []) + list(err["loc"]))
    if err["type"] == "extra_forbidden":
        return key, unknown_key(key, list(candidates), takes)
    rule = RULES.get(err["type"])
    if rule is None:  # a validator's own message, which names the value
        return key, err["msg"].removeprefix("Value error, ")
    message = rule.format(**{k: _number(v) for k, v in ctx.items()})
    return key, message if err["type"] == "missing" else f"{message} (got {shown(err['input'])})"
