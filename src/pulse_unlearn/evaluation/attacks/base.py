"""What an attack is (``Attack``, ``InputAttack``, their parameters and outcomes), the registry,
and how outcomes become ``attacks.csv``'s rows; the package's docstring tells the whole story."""


from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ...core.params import Distinct, Parametrized, StrictParams  # noqa: F401  (Distinct: for the attacks' list parameters)
from ...core.names import unknown_name
from ...core.registry import Registry
from ...config import IntervalConfig
from ...records import MODALITIES
from ...stats import Sample, paired, percentile_interval
from ..splits import SPLITS, SplitContext
from ..summary import headline_interval

ATTACKS: Registry[type] = Registry("attack", "pulse_unlearn.attacks")
COLUMNS = ("scenario", "method", "update", "operation", "attack", "setting", "split", "modality", "n", "metric",
           "value", "ci_low", "ci_high", "unlearned", "start", "recovery", "recovery_ci_low", "recovery_ci_high")
MIN_GAP = 1e-6  # start - unlearned at or below this: recovery is not defined
WEIGHTS_FIXED = ("a black-box suffix leaves the weights as they were: there is nothing in them to recover "
                 "(a guardrail, not removal)")


class AttackParams(StrictParams):
    """An attack's parameters, each declared with its type and range. Every attack also takes
    ``splits`` (the scored splits; unset: the attack's own ``Attack.splits``) and ``scenarios``
    (the scenarios it runs in; unset: all)."""

    splits: list[str] | None = None
    scenarios: list[str] | None = None


@dataclass(frozen=True)
class Outcome:
    """One setting of an attack on one split: the predictions it gave (``preds``), or metric rows
    it computed itself (``rows``: modality, n, metric, value; no recovery)."""

    setting: str
    split: str
    preds: list | None = None
    rows: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class AttackContext:
    """What an attack sees besides the model: the scenario's evaluator (its encoder, config, data
    and sets; ``Evaluator.scorer`` encodes a set of items once per run) and the model's plain
    predictions on every split."""

    evaluator: object
    plain: dict[str, list]

    @property
    def split_context(self) -> SplitContext:
        e = self.evaluator
        return SplitContext(e.cfg, e.src, e.sets)


class Attack(Parametrized):
    kind: ClassVar[str] = "attack"
    name: ClassVar[str]
    Params: ClassVar[type[AttackParams]] = AttackParams
    splits: ClassVar[tuple[str, ...]] = ("forget",)  # the scored splits, unless the config names others
    fixed_splits: ClassVar[bool] = False  # True: it scores its own splits only (the config may not name others)
    reads_weights: ClassVar[bool] = False  # True: it changes the weights or reads losses (not for black-box units)

    @property
    def scored(self) -> tuple[str, ...]:
        """The splits this attack scores: the config's ``splits``, else the attack's own."""
        return tuple(self.params.splits) if self.params.splits else type(self).splits

    def does_not_apply(self, ctx: AttackContext) -> str | None:
        """Why the attack cannot run on this scenario's data (None: it can)."""
        return None

    def inputs(self, src) -> list[Path]:
        """The attack's own input files (none by default), each checked against the data (``Sources``):
        a problem is a ``PulseError``. Called once when the run starts, before anything is written;
        the files join the data's fingerprint, so a changed file is never read back from a resumed run."""
        return []

    def __call__(self, model, ctx: AttackContext) -> list[Outcome]:
        raise NotImplementedError


class InputAttack(Attack):
    """Each declared split's items rewritten per setting (``change``), scored on the model."""

    def settings(self) -> list[str]:
        raise NotImplementedError

    def change(self, items: list, setting: str, ctx: AttackContext) -> list:
        """The items to score instead (``qid`` made unique per setting); items without a changed
        form may be left out."""
        raise NotImplementedError

    def __call__(self, model, ctx: AttackContext) -> list[Outcome]:
        out = []
        for setting in self.settings():
            for split in self.scored:
                items = self.change(SPLITS[split].items(ctx.split_context), setting, ctx)
                if items:
                    out.append(Outcome(setting, split, ctx.evaluator.scorer(split, items)(model)))
        return out


def make_attack(spec: dict) -> Attack:
    """An attack from its config entry: ``{name: ..., <its parameters>}``."""
    params = dict(spec)
    name = params.pop("name", None)
    if name not in ATTACKS:
        raise ValueError(unknown_name("attack", name, sorted(ATTACKS)))
    return ATTACKS[name](**params)


def attack_inputs(specs: list[dict], src) -> list[Path]:
    """Every configured attack's own input files, checked against the data (``Attack.inputs``)."""
    return [path for spec in specs for path in make_attack(spec).inputs(src)]


def recovery(value: float, unlearned: float, start: float) -> float | None:
    """(value - unlearned) / (start - unlearned); None unless the starting model (under the same
    attack) is above the unlearned one: there is nothing forgotten to recover."""
    gap = start - unlearned
    return None if gap <= MIN_GAP else (value - unlearned) / gap


def _items(preds: list) -> dict[str, list]:
    """A row's items as the recovery's interval resamples them (kept with the row, not written)."""
    return {"values": [float(p.value) for p in preds], "subjects": [p.subject for p in preds]}


def _sample(items: dict) -> Sample:
    return Sample(items["values"], items["subjects"])


def recovery_interval(attacked: Sample, unlearned: Sample, start: Sample,
                      intervals: IntervalConfig | None = None) -> tuple[float, float] | None:
    """The recovery's interval: one draw of people for the attacked model, the unlearned model and
    the starting model under the attack (the same people on all three), the ratio in each
    resample, those where the starting model is not above the unlearned one left out. None where
    no resample defines it."""
    intervals = intervals or IntervalConfig()

    def ratio(value, plain, begin):
        gap = begin - plain
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(gap > MIN_GAP, (value - plain) / gap, np.nan)

    stats = paired([attacked, unlearned, start], ratio, intervals.resamples, intervals.seed).resampled
    return None if np.isnan(stats).all() else percentile_interval(stats, intervals.level)


def public(rows: list[dict]) -> list[dict]:
    """``rows`` without what they carry for the recovery's interval (keys starting ``_``)."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]


def _accuracy(preds: list) -> float:
    return sum(p.value for p in preds) / len(preds)


def _by_modality(preds: list) -> dict[str, list]:
    """Per modality present, and ``all`` where there are both."""
    out = {m: ps for m in MODALITIES if (ps := [p for p in preds if p.modality == m])}
    return {**out, "all": list(preds)} if len(out) > 1 else out


def outcome_rows(attack: str, outcomes: list[Outcome], plain: dict[str, list], intervals=None) -> list[dict]:
    """``attacks.csv``'s rows of one attacked model, without ``start`` and ``recovery``: per
    outcome and modality, n, the accuracy with its interval (people resampled together;
    ``intervals``: the config's settings, unset: their defaults) and the plain accuracy on the
    same people and modality. An attack's own statistics (``Outcome.rows``) have no interval.
    Each accuracy row also carries its items and the plain ones (``_items``, ``_plain``) for
    the recovery's interval (``with_recovery``); ``public`` drops them."""
    rows = []
    for o in outcomes:
        if o.preds is None:
            rows += [{"attack": attack, "setting": o.setting, "split": o.split, "unlearned": "", **r}
                     for r in o.rows]
            continue
        for modality, ps in _by_modality(o.preds).items():
            people, modalities = {p.subject for p in ps}, {p.modality for p in ps}
            same = [p for p in plain.get(o.split, ()) if p.subject in people and p.modality in modalities]
            rows.append({"attack": attack, "setting": o.setting, "split": o.split, "modality": modality,
                         "n": len(ps), "metric": "accuracy", "value": round(_accuracy(ps), 6),
                         **headline_interval(ps, intervals), "unlearned": round(_accuracy(same), 6) if same else "",
                         "_items": _items(ps), "_plain": _items(same)})
    return rows


ROW_KEY = ("attack", "setting", "split", "modality", "metric")


def with_recovery(rows: list[dict], baseline: list[dict], intervals: IntervalConfig | None = None) -> list[dict]:
    """``rows`` (public) with ``start`` (the baseline row of the same attack, setting, split,
    modality and metric) and ``recovery`` where both are defined, with its interval
    (``recovery_interval``) where the rows carry their items."""
    start = {tuple(r[k] for k in ROW_KEY): r for r in baseline}
    out = []
    for r in rows:
        base = start.get(tuple(r[k] for k in ROW_KEY))
        s = "" if base is None else base["value"]
        rec = None if "" in (s, r["unlearned"]) else recovery(r["value"], r["unlearned"], s)
        ci = None
        if rec is not None and "_items" in r and "_items" in (base or {}):
            ci = recovery_interval(_sample(r["_items"]), _sample(r["_plain"]), _sample(base["_items"]), intervals)
        out.append({**r, "start": s, "recovery": "" if rec is None else round(rec, 6),
                    "recovery_ci_low": "" if ci is None else round(ci[0], 6),
                    "recovery_ci_high": "" if ci is None else round(ci[1], 6)})
    return public(out)


def attacked(specs: list[dict], model, evaluator, plain: dict[str, list], scenario: str, log=print,
             said: set | None = None, weights_fixed: bool = False) -> list[dict]:
    """Every configured attack of ``scenario`` on ``model`` (left as it is), given its plain
    predictions: the rows of ``outcome_rows``. An attack that does not apply to the data gives
    none and says why, once per (attack, reason) in ``said`` (the runner keeps one per run: the
    reason does not change from one operation to the next). ``weights_fixed``: a black-box unit,
    whose weights never changed: the attacks that change or read the weights do not apply."""
    rows, said = [], set() if said is None else said
    for spec in specs:
        attack, ctx = make_attack(spec), AttackContext(evaluator, plain)
        if attack.params.scenarios is not None and scenario not in attack.params.scenarios:
            continue
        why = WEIGHTS_FIXED if weights_fixed and attack.reads_weights else attack.does_not_apply(ctx)
        if why:
            if (attack.name, why) not in said:
                said.add((attack.name, why))
                log(f"attack {attack.name} does not apply: {why}")
            continue
        rows += outcome_rows(attack.name, attack(model, ctx), plain, evaluator.cfg.intervals)
    return rows


def baseline_rows(rows: list[dict]) -> list[dict]:
    """The starting model's rows: it is its own ``start``; recovery is not defined. They keep
    their items (``_items``) for the recoveries later operations are read against."""
    return [{**{k: v for k, v in r.items() if k != "_plain"}, "start": r["value"], "recovery": "",
             "recovery_ci_low": "", "recovery_ci_high": ""} for r in rows]

