"""Components with declared parameters (methods, searches, attacks): a pydantic ``Params`` model
whose fields carry their types and ranges, validated when the component is made or its config
entry is checked, each problem one line naming the key. No torch here."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from .messages import describe_params, one_error
from .names import ConfigProblem


# Every config section and every component's parameters: no unknown key, no bool for a number, no
# text for a number, finite numbers.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class StrictParams(BaseModel):
    """The base of a component's ``Params``: strict, and frozen (a made component's parameters
    do not change)."""

    model_config = ConfigDict(**STRICT, frozen=True)


def _distinct(value: list) -> list:
    if len(set(value)) != len(value):
        raise ValueError("lists a value more than once")
    return value


# ``Annotated[list[...], Distinct]``: a list parameter whose values may not repeat.
Distinct = AfterValidator(_distinct)


def checked_params(schema: type[BaseModel], params: dict, prefix: str, name: str) -> dict[str, Any]:
    """``params`` validated against ``schema`` (the ones given, as the schema reads them), or
    ``(dotted key, message)`` raised as ``ParamsError`` for the first problem."""
    try:
        return schema.model_validate(params).model_dump(exclude_unset=True)
    except ValidationError as e:
        key, message = one_error(e, prefix, [f"{prefix}.{p}" if prefix else p for p in schema.model_fields],
                                 takes=f"{name} takes {describe_params(schema)}")
        raise ParamsError(key, message.replace("unknown key", "unknown parameter", 1)) from None


class ParamsError(ConfigProblem):
    """A component's parameters that do not fit its ``Params``."""


class Parametrized:
    """A component whose parameters (``Params``) are validated when it is made and read as
    attributes (``self.beta``); ``kind`` names it in errors (``method ga: ...``)."""

    kind: ClassVar[str]
    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def __init__(self, **params):
        try:
            self.params = self.Params(**checked_params(self.Params, params, "", "it"))
        except ParamsError as e:
            raise ValueError(f"{self.kind} {self.name}: {e}") from None

    def __getattr__(self, key: str):
        params = self.__dict__.get("params")
        if params is not None and key in type(params).model_fields:
            return getattr(params, key)
        raise AttributeError(key)
