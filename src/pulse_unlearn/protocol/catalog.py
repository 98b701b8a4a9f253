"""One catalog of everything a config may name: scenarios, methods (weight unlearning) and
black-box searches, attacks, splits. ``validate`` checks a config against the schema
(``config/``, which knows no registry) and then every name and every component's parameters
against their registries, each problem one line naming the key, before anything is written.

A method and a search share the grid's ``method`` names, so a name registered as both is
refused rather than one silently shadowing the other.
"""

from __future__ import annotations

from pathlib import Path

from ..config import RunConfig, apply_overrides, parse, read_yaml
from ..core.messages import unknown_key
from ..core.names import ConfigProblem, unknown_name
from ..core.params import checked_params
from ..errors import PulseError
from ..records import ORACLE, ORACLE_UPDATE, Unit
from .scenarios import SCENARIOS, check_config


def approaches() -> dict[str, type]:
    """Every name a grid's ``methods`` may give: the registered methods and black-box searches."""
    from ..blackbox import SEARCHES
    from ..methods.registry import METHODS

    both = sorted(set(METHODS) & set(SEARCHES))
    if both:
        raise PulseError(f"{', '.join(both)}: registered both as a method and as a black-box search; rename one")
    if ORACLE in METHODS or ORACLE in SEARCHES:
        raise PulseError(f"{ORACLE}: the retrain oracle's name (oracle: retrain) is registered as a method or "
                         "search; rename it")
    return {**METHODS, **SEARCHES}


def is_search(name: str) -> bool:
    from ..blackbox import SEARCHES

    return name in SEARCHES


def units(cfg: RunConfig) -> list[Unit]:
    """Each (scenario, method, update) once, in the scenarios' registration order, then grid
    order; a scenario's companion (sequential: the finetuned scenario on the same forget set)
    comes along with the same method and update. With ``oracle: retrain`` every scenario's last
    unit is its retrain oracle (method ``retrain``, update ``none``)."""
    out: list[Unit] = []
    for block in cfg.grid:
        for s in block.scenarios:
            companion = SCENARIOS[s].companion
            for m in block.methods:
                for u in block.updates:
                    for unit in ([Unit(companion, m, u)] if companion else []) + [Unit(s, m, u)]:
                        if unit not in out:
                            out.append(unit)
    if cfg.oracle == "retrain":
        out += [Unit(s, ORACLE, ORACLE_UPDATE) for s in dict.fromkeys(u.scenario for u in out)]
    order = {name: i for i, name in enumerate(SCENARIOS)}
    return sorted(out, key=lambda unit: order[unit.scenario])


def resolved_params(cfg: RunConfig) -> dict[str, dict]:
    """Every parameter of each method the grid names, defaults included: what its results were
    made with, for environment.json and the resume key (a changed default then starts over
    instead of resuming old results)."""
    classes = approaches()
    names = dict.fromkeys(u.method for u in units(cfg) if not u.is_oracle)
    return {name: classes[name](**cfg.method_params.get(name, {})).params.model_dump(mode="json") for name in names}


def validate(raw: dict, origin: str = "config") -> RunConfig:
    """``raw`` checked against the schema, then against the catalog: a ``PulseError`` line each."""
    return checked(parse(raw, origin), origin)


def checked(cfg: RunConfig, origin: str = "config") -> RunConfig:
    """``cfg`` (already past the schema) checked against the catalog; checking twice changes nothing."""
    try:
        check(cfg)
    except ConfigProblem as e:
        raise PulseError(f"{origin}: {e.key}: {e.message}") from None
    return cfg


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """The validated config of ``path`` (a file, or a shipped config's name) with ``overrides``."""
    raw = read_yaml(path) if path is not None else {}
    return validate(apply_overrides(raw, list(overrides)), str(path) if path is not None else "config")


def check(cfg: RunConfig) -> None:
    """Every name in ``cfg`` against its registry, and the parameters of what it names; a group
    name in a grid (``concepts``) is replaced by its scenarios."""
    for i, block in enumerate(cfg.grid):
        block.scenarios = _scenario_names(block.scenarios, f"grid.{i}.scenarios")
        _known(block.methods, sorted(approaches()), "method", f"grid.{i}.methods")
    _known(cfg.trajectory.splits, _splits(), "split", "trajectory.splits")
    cfg.method_params = _method_params(cfg.method_params)
    cfg.attacks = _attacks(cfg.attacks)
    check_config(cfg, list(dict.fromkeys(u.scenario for u in units(cfg))))


def _known(values, choices, kind: str, key: str) -> None:
    for v in values:
        if v not in choices:
            raise ConfigProblem(key, unknown_name(kind, v, choices))


def _splits() -> list[str]:
    from ..evaluation.splits import SPLITS

    return list(SPLITS)


def _scenario_names(values: list[str], key: str) -> list[str]:
    groups: dict[str, list[str]] = {}
    for name in SCENARIOS:
        if SCENARIOS[name].group:
            groups.setdefault(SCENARIOS[name].group, []).append(name)
    expanded = list(dict.fromkeys(n for v in values for n in groups.get(v, [v])))
    _known(expanded, list(SCENARIOS), "scenario", key)
    return expanded


def _method_params(value: dict[str, dict]) -> dict[str, dict]:
    """Each method's parameters against the schema its class declares (``Params``)."""
    classes = approaches()
    checked = {}
    for name, params in value.items():
        if name not in classes:
            raise ConfigProblem(f"method_params.{name}", unknown_key(f"method_params.{name}", [
                f"method_params.{m}" for m in sorted(classes)]).replace("unknown key", "unknown method", 1))
        checked[name] = checked_params(classes[name].Params, params, f"method_params.{name}", name)
    return checked


def _attacks(value: list) -> list[dict]:
    """Each attack entry: a mapping with a registered ``name`` and that attack's declared
    parameters (``Attack.Params``), each attack listed once (several settings go in its
    parameters); the splits and scenarios it names registered."""
    from ..evaluation.attacks import ATTACKS

    checked, seen = [], set()
    for i, spec in enumerate(value):
        if not isinstance(spec, dict):
            raise ConfigProblem(f"attacks.{i}", "must be a mapping with the attack's name and parameters")
        name = spec.get("name")
        if name not in ATTACKS:
            raise ConfigProblem(f"attacks.{i}.name", unknown_name("attack", name, sorted(ATTACKS)))
        if name in seen:
            raise ConfigProblem(f"attacks.{i}.name", f"{name} is listed twice; give it several settings in one entry")
        seen.add(name)
        if ATTACKS[name].fixed_splits and "splits" in spec:
            raise ConfigProblem(f"attacks.{i}.splits", f"{name} scores {', '.join(ATTACKS[name].splits)} only")
        params = checked_params(ATTACKS[name].Params, {k: v for k, v in spec.items() if k != "name"},
                                f"attacks.{i}", name)
        _known(params.get("splits") or (), _splits(), "split", f"attacks.{i}.splits")
        _known(params.get("scenarios") or (), list(SCENARIOS), "scenario", f"attacks.{i}.scenarios")
        checked.append({"name": name, **params})
    return checked


__all__ = ["approaches", "check", "checked", "is_search", "load_config", "resolved_params", "units", "validate"]
