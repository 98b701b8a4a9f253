"""Comparison at matched forgetting: what forgetting to the same level cost each unit.

From one operation's trajectory (checkpoints at steps s_0 = 0 < s_1 < ... with forget accuracy
f_i on a modality and any other split's accuracy y_i):

- the *target* is the forget accuracy that counts as forgotten (``trajectory.compare``, a
  ``stopping.threshold`` over the forget split's chance and the starting model's accuracy on the
  same items, ``starting_accuracy``; the operation's step-0 value where the rows lack it);
- the *matched point* is where the forget curve's monotone fit first reaches the target
  (``stats.monotone_crossing``: the non-increasing least-squares fit of f, weighted by each
  checkpoint's items, so that a noisy dip checked often does not cross early by chance). With
  fitted values g: g_0 <= target gives s_0; otherwise the first i with g_i <= target, and the
  point lies between checkpoints i-1 and i at t = (g_{i-1} - target) / (g_{i-1} - g_i), linearly
  interpolated: step = s_{i-1} + t (s_i - s_{i-1}), and likewise examples and each y (y read raw).
  ``step_low`` / ``step_high`` (and ``examples_low`` / ``examples_high``) are the checkpoints
  around it: the resolution the point is known to. No such i: "not reached within the budget";
- *cost* = y_0 - y at the matched point (positive: lost);
- *auc* = the mean of y over the same span of forgetting for every unit: from the fit's start
  g_0 down to the target, the area under y as a function of g along the path (trapezoids
  (g_{i-1} - g_i)(y_{i-1} + y_i)/2 up to the matched point, the last one cut there) divided by
  g_0 - target. Empty where the target is not reached, or is met at step 0 (no span). Under
  ``rule: kept`` the span is the same share of every unit's above-chance knowledge.

Intervals (from the checkpoints' items, ``trajectory_predictions.csv``): the forget people and
the cost split's people (or benchmark items) are drawn from their union, once for every
checkpoint (``stats.paired`` on ``Curve``s); in each resample the crossing is located again on
that resample's monotone fit, with the target held at its value, and the cost and the examples
read there. A resample whose curve never reaches the target has no matched point and is left
out of ``cost_ci_low`` .. ``cost_ci_high``, ``examples_ci_low`` .. ``examples_ci_high`` and
``auc_ci_low`` .. ``auc_ci_high`` (the auc of that resample's fit and curve; also left out where it
reaches the target at step 0); ``reached_share`` is the share of resamples that reached it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..records import MODALITIES
from ..stats import Curve, Sample, crossing, monotone_crossing, monotone_fit, paired, percentile_interval
from .splits import SPLITS
from .stopping import threshold

COLUMNS = ("scenario", "method", "update", "operation", "target_modality", "target", "reached", "step", "examples",
           "step_low", "step_high", "examples_low", "examples_high", "split", "modality", "start", "accuracy", "cost",
           "cost_ci_low", "cost_ci_high", "examples_ci_low", "examples_ci_high", "reached_share", "auc",
           "auc_ci_low", "auc_ci_high", "budget_steps")
INTERVAL_COLUMNS = ("cost_ci_low", "cost_ci_high", "examples_ci_low", "examples_ci_high", "reached_share",
                    "auc_ci_low", "auc_ci_high")


def crossings(forget: np.ndarray, target: float) -> np.ndarray:
    """Each row's ``monotone_crossing`` (resampled forget curves, one per row; nan: never)."""
    out = np.full(len(forget), np.nan)
    for b, curve in enumerate(forget):
        if np.isnan(curve).any():
            continue
        pos = monotone_crossing(curve, target)
        if pos is not None:
            out[b] = pos
    return out


def at_positions(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Each row of ``values`` (or one shared row) linearly interpolated at its fractional index."""
    values = np.broadcast_to(values, (len(positions), values.shape[-1]))
    ok = ~np.isnan(positions)
    low = np.where(ok, np.floor(np.nan_to_num(positions)), 0).astype(int)
    high = np.minimum(low + 1, values.shape[1] - 1)
    t = np.where(ok, np.nan_to_num(positions) - low, 0.0)
    rows = np.arange(len(positions))
    out = values[rows, low] + t * (values[rows, high] - values[rows, low])
    return np.where(ok, out, np.nan)


def cost_at_match(forget: np.ndarray, values: np.ndarray, target: float) -> np.ndarray:
    """y_0 - y at the matched point, per resample (nan where the target is not reached)."""
    return values[:, 0] - at_positions(values, crossings(forget, target))


def _cost_and_auc(forget: np.ndarray, values: np.ndarray, target: float) -> np.ndarray:
    """(cost_at_match, auc_at_match) per resample, each resample's monotone fit made once."""
    out = np.full((len(forget), 2), np.nan)
    for b, (f, y) in enumerate(zip(forget, values)):
        if np.isnan(f).any():
            continue
        fit = monotone_fit(f)
        pos = crossing(fit, target)
        if pos is None:
            continue
        out[b, 0] = y[0] - at(y, pos)
        value = None if np.isnan(y).any() else mean_to_target(fit, list(y), pos)
        if value is not None:
            out[b, 1] = value
    return out


def auc_at_match(forget: np.ndarray, values: np.ndarray, target: float) -> np.ndarray:
    """``mean_to_target`` per resample, on that resample's monotone fit (nan where not defined)."""
    return _cost_and_auc(forget, values, target)[:, 1]


def examples_at_match(forget: np.ndarray, examples: Sequence[float], target: float) -> np.ndarray:
    """The forget examples at the matched point, per resample (nan where not reached)."""
    return at_positions(np.asarray(examples, dtype=float)[None, :], crossings(forget, target))


def item_curves(items: list[dict], steps: Sequence[int]) -> dict[tuple[str, str], Curve]:
    """Each (split, modality)'s items (``trajectory_predictions.csv`` rows of one operation;
    modality ``all``: both) as a ``Curve`` over ``steps``, clustered by subject."""
    by: dict[tuple[str, str], dict[int, list]] = {}
    for r in items:
        for modality in (r["modality"], "all"):
            by.setdefault((r["split"], modality), {}).setdefault(int(r["step"]), []).append(
                (float(r["correct"]), (r["population"], str(r["subject"]))))
    return {key: Curve([Sample([v for v, _ in pts[s]], [c for _, c in pts[s]]) for s in steps])
            for key, pts in by.items() if all(s in pts for s in steps)}


def _examples_resampled(curves: dict, forget_key, target: float, examples, intervals) -> np.ndarray | None:
    """The matched point's resampled examples (one target modality: the same for every cost split)."""
    if forget_key not in curves:
        return None
    return paired([curves[forget_key]], lambda f: examples_at_match(f, examples, target),
                  intervals.resamples, intervals.seed).resampled


def _intervals(curves: dict, forget_key, key, target: float, where: np.ndarray | None, intervals) -> dict:
    """The matched point's resampled cost and examples (``where``), as matched.csv's interval columns."""
    if where is None or key not in curves:
        return {}
    both = paired([curves[forget_key], curves[key]], lambda f, y: _cost_and_auc(f, y, target),
                  intervals.resamples, intervals.seed).resampled.reshape(-1, 2)  # one draw, one fit per resample
    cost, auc = both[:, 0], both[:, 1]
    reached = float(np.mean(~np.isnan(cost)))
    out = {"reached_share": round(reached, 4)}
    if reached > 0:
        (cl, ch), (el, eh) = percentile_interval(cost, intervals.level), percentile_interval(where, intervals.level)
        out.update(cost_ci_low=round(cl, 6), cost_ci_high=round(ch, 6), examples_ci_low=round(el, 2),
                   examples_ci_high=round(eh, 2))
    if not np.isnan(auc).all():
        al, ah = percentile_interval(auc, intervals.level)
        out.update(auc_ci_low=round(al, 6), auc_ci_high=round(ah, 6))
    return out


def at(values: Sequence[float], position: float) -> float:
    """``values`` linearly interpolated at a fractional index."""
    i = math.floor(position)
    t = position - i
    return values[i] if t == 0 else values[i] + t * (values[i + 1] - values[i])


def area(forget: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoids of ``values`` over ``forget``, positive where forget accuracy falls."""
    return sum((forget[i - 1] - forget[i]) * (values[i - 1] + values[i]) / 2 for i in range(1, len(forget)))


def mean_to_target(fit: Sequence[float], values: Sequence[float], pos: float | None) -> float | None:
    """The mean of ``values`` over forget accuracy from ``fit[0]`` to the point at fractional index
    ``pos`` (the crossing on the monotone ``fit``): the area up to there over its span; None
    without a span (not reached, or reached at step 0)."""
    if pos is None or pos <= 0:
        return None
    whole = math.floor(pos)
    xs, ys = list(fit[:whole + 1]), list(values[:whole + 1])
    if pos > whole:
        xs.append(at(fit, pos))
        ys.append(at(values, pos))
    span = xs[0] - xs[-1]
    return area(xs, ys) / span if span > 0 else None


def _series(rows: list[dict]) -> tuple[list[int], dict[tuple[str, str], list[dict]]]:
    """Checkpoint steps in order, and each (split, modality)'s rows on them (only series that
    every checkpoint has)."""
    steps = sorted({int(r["step"]) for r in rows})
    by: dict[tuple[str, str], dict[int, dict]] = {}
    for r in rows:
        by.setdefault((r["split"], r["modality"]), {})[int(r["step"])] = r
    return steps, {key: [pts[s] for s in steps] for key, pts in by.items() if len(pts) == len(steps)}


def _base(forget_rows: list[dict]) -> tuple[float, float]:
    """What a target is set over: the forget split's chance and its starting accuracy."""
    starting = forget_rows[0].get("starting_accuracy", "")
    start = float(forget_rows[0]["accuracy"]) if starting in ("", None) else float(starting)
    return float(forget_rows[0]["chance"]), start


def _target(base: tuple[float, float], compare) -> float:
    """The comparison target (``rule``, ``margin``, ``kept``) over ``base`` (``_base``)."""
    return threshold(compare.rule, *base, compare.margin, compare.kept)


@dataclass(frozen=True)
class OperationCurves:
    """One operation's checkpoints for the matched comparisons: each target modality's target
    (None: no forget rows of it) and what it was set over (``bases``: chance, start), the steps
    and examples, and every (split, modality)'s items."""

    targets: dict[str, float]
    steps: list[int]
    examples: list[float]
    curves: dict[tuple[str, str], Curve]
    bases: dict[str, tuple[float, float]]

    def retargeted(self, compare) -> OperationCurves:
        """The same curves with targets from another comparison target (e.g. another ``kept``)."""
        return replace(self, targets={tm: _target(b, compare) for tm, b in self.bases.items()})


def operation_curves(rows: list[dict], items: list[dict], compare, forget_split: str = "forget") -> OperationCurves:
    steps, series = _series(rows)
    examples = [float(r["examples"]) for r in next(iter(series.values()))]
    bases = {tm: _base(series[(forget_split, tm)]) for tm in MODALITIES if (forget_split, tm) in series}
    return OperationCurves({tm: _target(b, compare) for tm, b in bases.items()}, steps, examples,
                           item_curves(items, steps), bases)


def joined(ops: list[OperationCurves]) -> OperationCurves:
    """Operations one after another as one path (a sequence): steps and examples run on, each
    later operation's step 0 (the model the previous one ended with) is left out, and the targets
    are the first operation's (all of them relative to the scenario's starting model)."""
    first, steps, examples = ops[0], list(ops[0].steps), list(ops[0].examples)
    keys = [k for k in first.curves if all(k in op.curves for op in ops)]
    points = {k: list(first.curves[k].points) for k in keys}
    for op in ops[1:]:
        steps += [steps[-1] + s for s in op.steps[1:]]
        examples += [examples[-1] + e for e in op.examples[1:]]
        for k in keys:
            points[k] += op.curves[k].points[1:]
    return OperationCurves(first.targets, steps, examples, {k: Curve(p) for k, p in points.items()}, first.bases)


def _rounded(x: float | None):
    return "" if x is None else round(x, 6)


def matched_rows(rows: list[dict], compare, forget_split: str = "forget", items: list[dict] = (),
                 intervals=None) -> list[dict]:
    """``matched.csv``'s rows of one operation's trajectory ``rows`` (trajectory.csv's rows of one
    unit and operation); ``compare``: the comparison target (``rule``, ``margin``, ``kept``). The
    point is matched on ``forget_split``; every split that is not a forget split gets its rows.
    With the checkpoints' ``items`` and the config's ``intervals``, each row gets its interval
    columns (the module docstring)."""
    if not rows:
        return []
    steps, series = _series(rows)
    curves = item_curves(list(items), steps) if items and intervals is not None else {}
    label = {k: rows[0][k] for k in ("scenario", "method", "update", "operation")}
    examples = [float(r["examples"]) for r in next(iter(series.values()))]
    out = []
    for target_modality in MODALITIES:
        forget_rows = series.get((forget_split, target_modality))
        if forget_rows is None:
            continue
        f = [float(r["accuracy"]) for r in forget_rows]
        target = _target(_base(forget_rows), compare)
        weights = [float(r["n"]) for r in forget_rows]
        fit = monotone_fit(f, weights)
        pos = crossing(fit, target)
        where = None if pos is None or not curves else _examples_resampled(
            curves, (forget_split, target_modality), target, examples, intervals)
        for (split, modality), ys in series.items():
            if split in SPLITS and SPLITS[split].forgotten:  # forgetting, not a cost
                continue
            y = [float(r["accuracy"]) for r in ys]
            row = {**label, "target_modality": target_modality, "target": round(target, 6),
                   "reached": int(pos is not None), "step": "", "examples": "", "step_low": "", "step_high": "",
                   "examples_low": "", "examples_high": "", "split": split, **dict.fromkeys(INTERVAL_COLUMNS, ""),
                   "modality": modality, "start": y[0], "accuracy": "", "cost": "",
                   "auc": _rounded(mean_to_target(fit, y, pos)), "budget_steps": steps[-1]}
            if pos is not None:
                value = at(y, pos)
                low, high = math.floor(pos), math.ceil(pos)
                row.update(step=round(at(steps, pos), 2), examples=round(at(examples, pos), 2),
                           step_low=steps[low], step_high=steps[high], examples_low=examples[low],
                           examples_high=examples[high], accuracy=round(value, 6), cost=round(y[0] - value, 6))
                row.update(_intervals(curves, (forget_split, target_modality), (split, modality), target, where,
                                      intervals))
            out.append(row)
    return out
