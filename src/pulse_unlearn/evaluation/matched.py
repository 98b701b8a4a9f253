"""Comparison at matched forgetting: what forgetting to the same level cost each unit.

From one operation's trajectory (checkpoints at steps s_0 = 0 < s_1 < ... with forget accuracy
f_i on a modality and any other split's accuracy y_i):

- the *target* is the forget accuracy that counts as forgotten (``trajectory.compare``, a
  ``stopping.threshold`` over the forget split's chance and the starting model's accuracy on the
  same items, ``starting_accuracy``; the operation's step-0 value where the rows lack it);
- the *matched point* is where f first reaches the target: f_0 <= target gives s_0; otherwise
  the first i with f_i <= target, and the point lies between checkpoints i-1 and i at
  t = (f_{i-1} - target) / (f_{i-1} - f_i), linearly interpolated: step = s_{i-1} + t (s_i -
  s_{i-1}), and likewise examples and each y. No such i: "not reached within the budget";
- *cost* = y_0 - y at the matched point (positive: lost);
- *auc* = sum over consecutive checkpoints of (f_{i-1} - f_i)(y_{i-1} + y_i)/2: the area under y
  as a function of f along the path, positive as forget accuracy falls (trapezoids, exact for
  the piecewise-linear path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..records import MODALITIES
from .splits import SPLITS
from .stopping import threshold

COLUMNS = ("scenario", "method", "update", "operation", "target_modality", "target", "reached", "step", "examples",
           "split", "modality", "start", "accuracy", "cost", "auc", "budget_steps")


def crossing(forget: Sequence[float], target: float) -> float | None:
    """The fractional checkpoint index where ``forget`` first reaches ``target`` (None: never)."""
    if forget and forget[0] <= target:
        return 0.0
    for i in range(1, len(forget)):
        if forget[i] <= target:
            return i - 1 + (forget[i - 1] - target) / (forget[i - 1] - forget[i])
    return None


def at(values: Sequence[float], position: float) -> float:
    """``values`` linearly interpolated at a fractional index."""
    i = math.floor(position)
    t = position - i
    return values[i] if t == 0 else values[i] + t * (values[i + 1] - values[i])


def area(forget: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoids of ``values`` over ``forget``, positive where forget accuracy falls."""
    return sum((forget[i - 1] - forget[i]) * (values[i - 1] + values[i]) / 2 for i in range(1, len(forget)))


def _series(rows: list[dict]) -> tuple[list[int], dict[tuple[str, str], list[dict]]]:
    """Checkpoint steps in order, and each (split, modality)'s rows on them (only series that
    every checkpoint has)."""
    steps = sorted({int(r["step"]) for r in rows})
    by: dict[tuple[str, str], dict[int, dict]] = {}
    for r in rows:
        by.setdefault((r["split"], r["modality"]), {})[int(r["step"])] = r
    return steps, {key: [pts[s] for s in steps] for key, pts in by.items() if len(pts) == len(steps)}


def matched_rows(rows: list[dict], compare, forget_split: str = "forget") -> list[dict]:
    """``matched.csv``'s rows of one operation's trajectory ``rows`` (trajectory.csv's rows of one
    unit and operation); ``compare``: the comparison target (``rule``, ``margin``, ``kept``). The
    point is matched on ``forget_split``; every split that is not a forget split gets its rows."""
    if not rows:
        return []
    steps, series = _series(rows)
    label = {k: rows[0][k] for k in ("scenario", "method", "update", "operation")}
    examples = [float(r["examples"]) for r in next(iter(series.values()))]
    out = []
    for target_modality in MODALITIES:
        forget_rows = series.get((forget_split, target_modality))
        if forget_rows is None:
            continue
        f = [float(r["accuracy"]) for r in forget_rows]
        starting = forget_rows[0].get("starting_accuracy", "")
        start = f[0] if starting in ("", None) else float(starting)
        target = threshold(compare.rule, float(forget_rows[0]["chance"]), start, compare.margin, compare.kept)
        pos = crossing(f, target)
        for (split, modality), ys in series.items():
            if split in SPLITS and SPLITS[split].per_request:  # the forget splits: what is matched, not a cost
                continue
            y = [float(r["accuracy"]) for r in ys]
            row = {**label, "target_modality": target_modality, "target": round(target, 6),
                   "reached": int(pos is not None), "step": "", "examples": "", "split": split,
                   "modality": modality, "start": y[0], "accuracy": "", "cost": "", "auc": round(area(f, y), 6),
                   "budget_steps": steps[-1]}
            if pos is not None:
                value = at(y, pos)
                row.update(step=round(at(steps, pos), 2), examples=round(at(examples, pos), 2),
                           accuracy=round(value, 6), cost=round(y[0] - value, 6))
            out.append(row)
    return out
