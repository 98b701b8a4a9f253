"""Components with declared parameters (methods, attacks): a pydantic ``Params`` model whose
fields carry their types and ranges, validated when the component is made or its config entry is
checked, each problem one line naming the key. No torch here."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AfterValidator, BaseModel, ValidationError

from .messages import describe_params, one_error


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


def method_classes() -> dict[str, type]:
    """Every method a grid may name: the registered losses and the black-box searches."""
    from ..blackbox import SEARCHES
    from ..methods.registry import METHODS  # the registry imports torch: only when a config is validated

    return {**METHODS, **SEARCHES}


def resolved_params(cfg) -> dict[str, dict]:
    """Every parameter of each method the grid names, defaults included: what its results were
    made with, for environment.json and the resume key (a changed default then starts over
    instead of resuming old results)."""
    classes = method_classes()
    names = dict.fromkeys(m for _, m, _ in cfg.units())
    return {name: classes[name](**cfg.method_params.get(name, {})).params.model_dump(mode="json") for name in names}


class ParamsError(ValueError):
    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


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
