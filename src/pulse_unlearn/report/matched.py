"""The comparison at matched forgetting, read from ``matched.csv``: per unit, operation and
target modality, retain and general accuracy where forget accuracy first reached the comparison
target, pooled over runs, and the report's table of them.

A unit that reached the target in only some runs is pooled over those runs alone (and says so);
the target and the starting accuracies are defined whether or not it was reached and are pooled
over all runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .runs import RunFiles, labelled, mean_std, variants
from .tables import Cell, Table

KEY = ("scenario", "method", "update", "operation", "target_modality", "split", "modality")
AT_MATCH = ("step", "examples", "accuracy", "cost", "auc")  # empty in matched.csv where the target was not reached
# the checkpoints around the point, and its resampled intervals (one run's; pooled runs: their means)
RESOLUTION = ("step_low", "step_high", "examples_low", "examples_high", "cost_ci_low", "cost_ci_high",
              "examples_ci_low", "examples_ci_high", "reached_share", "auc_ci_low", "auc_ci_high")
ALWAYS = ("target", "start")
TARGET_MODALITIES = {"multimodal": "multimodal", "text": "text-only"}


@dataclass
class Point:
    """One (unit, operation, target modality, split, modality) over the runs that hold it."""

    runs: int
    reached: int  # in how many of them forget accuracy reached the target
    mean: dict[str, float | None] = field(default_factory=dict)
    std: dict[str, float | None] = field(default_factory=dict)  # None unless two runs or more gave a value
    budgets: list[int] = field(default_factory=list)  # the steps tried by the runs that did not reach it

    def value(self, column: str) -> float | None:
        return self.mean.get(column)

    def where(self) -> str:
        """Where the target was reached, at the checkpoints' resolution ("between steps 26 and 39
        (416-624 examples)"; one run's point on a checkpoint: "step 26, 416 examples"; pooled runs:
        the interpolated mean ± std), or that it was not, with the budget tried."""
        if not self.reached:
            return f"not reached within {_budget(self.budgets)} steps" + (
                f" in any of {self.runs} runs" if self.runs > 1 else "")
        low, high = self.mean.get("step_low"), self.mean.get("step_high")
        if self.runs == 1 and low is not None and high is not None and low != high:
            out = (f"between steps {_num(low)} and {_num(high)} ({_num(self.mean['examples_low'])}-"
                   f"{_num(self.mean['examples_high'])} examples)")
        elif self.runs == 1 and low is not None:
            out = f"step {_num(low)}, {_num(self.mean['examples_low'])} examples"
        else:
            out = f"step {_num(self.mean['step'], self.std['step'])}, " \
                  f"{_num(self.mean['examples'], self.std['examples'])} examples"
        if self.reached < self.runs:
            out += f"; reached in {self.reached} of {self.runs} runs (the others not within {_budget(self.budgets)} " \
                   "steps)"
        return out


def _budget(budgets: list[int]) -> str:
    return "/".join(str(b) for b in budgets) or "?"


def _num(x: float, std: float | None = None) -> str:
    """Steps and examples with at most two decimals, as matched.csv holds them: 15, 12.5, 14.14."""
    def short(v: float) -> str:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return short(x) if std is None else f"{short(x)} ± {short(std)}"


class Matched:
    """Lookup of pooled ``Point``s by unit (scenario, method, update), operation, target modality,
    split and modality, in the order of the run's rows."""

    def __init__(self, points: dict[tuple, Point], pooled: bool):
        self.points = points
        self.pooled = pooled  # averaged over several runs: the table shows how many

    def units(self) -> list[tuple[str, str, str]]:
        return list(dict.fromkeys(k[:3] for k in self.points))

    def operations(self, unit) -> list[int]:
        return sorted({k[3] for k in self.points if k[:3] == tuple(unit)})

    def target_modalities(self, unit) -> list[str]:
        found = {k[4] for k in self.points if k[:3] == tuple(unit)}
        return [m for m in TARGET_MODALITIES if m in found] + sorted(found - set(TARGET_MODALITIES))

    def columns(self, units) -> set[tuple[str, str]]:
        """The (split, modality) pairs held for any of ``units``."""
        return {k[5:] for k in self.points if k[:3] in set(map(tuple, units))}

    def get(self, unit, operation, target_modality, split, modality) -> Point | None:
        return self.points.get((*unit, operation, target_modality, split, modality))

    def point(self, unit, operation, target_modality) -> Point | None:
        """Any split's point: where the target was reached is the same for all of them."""
        return next((p for k, p in self.points.items() if k[:5] == (*unit, operation, target_modality)), None)


def _clean(values) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def _pooled(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    m, s = mean_std(values)
    return m, s if len(values) > 1 else None


def pool_matched(runs: list[RunFiles]) -> Matched | None:
    """The matched rows of ``runs`` pooled like ``runs.pool`` pools summary rows (a variant's label
    appended to the method); None when no run has a ``matched.csv``."""
    grouped: dict[tuple, list[dict]] = {}
    for run, variant in zip(runs, variants(runs)):
        if run.matched is None:
            continue
        for r in run.matched.to_dict("records"):
            key = tuple(r[k] for k in KEY)
            key = (key[0], labelled(str(key[1]), variant), *key[2:3], int(key[3]), *key[4:])
            grouped.setdefault(key, []).append(r)
    if not grouped:
        return None
    points = {}
    for key, rows in grouped.items():
        hit = [r for r in rows if int(r["reached"]) == 1]
        p = Point(len(rows), len(hit), budgets=sorted({int(r["budget_steps"]) for r in rows
                                                       if int(r["reached"]) != 1}))
        for column in ALWAYS:
            p.mean[column], p.std[column] = _pooled(_clean(r[column] for r in rows))
        for column in AT_MATCH + RESOLUTION:
            p.mean[column], p.std[column] = _pooled(_clean(r.get(column) for r in hit))
        # the start of the runs that reached it, so that start -> accuracy (change) adds up
        p.mean["start_reached"], p.std["start_reached"] = _pooled(_clean(r["start"] for r in hit))
        points[key] = p
    return Matched(points, pooled=sum(r.matched is not None for r in runs) > 1)


@dataclass
class CostCell(Cell):
    """Accuracy at the matched point with the operation's starting accuracy before it: "80.0 -> 67.5 (-12.5)"."""

    start: float | None = None

    def text(self, pm: str = "±", minus: str = "-") -> str:
        if self.value is None or self.start is None:
            return "-"
        return f"{100 * self.start:.1f} -> {super().text(pm, minus)}"


# (split, modality, column title) of the costs; splits beyond these are shown with modality "all"
COST_COLUMNS = (("retain", "multimodal", "retain mm"), ("retain", "text", "retain text"), ("general", "all", "general"))
AUC_SPLITS = ("retain", "general")

NOTE = ("Forgotten: the first point where forget accuracy on the named modality reaches the target (trajectory.compare"
        "), linearly interpolated between the two checkpoints around it. Accuracy (%) at the operation's step 0 -> at "
        "that point; in brackets the change (points; a loss is the cost of forgetting). AUC (x 100): that split's mean "
        "accuracy while forget accuracy (its monotone fit) fell from its step-0 value to the target: the same span "
        "of forgetting for every unit [its interval, one run's: each resample's own fit and crossing].")


def _columns(m: Matched, units) -> tuple[list, list]:
    held = m.columns(units)
    costs = [c for c in COST_COLUMNS if c[:2] in held]
    extra = sorted({sp for sp, _ in held} - {c[0] for c in COST_COLUMNS})
    costs += [(sp, "all", sp) for sp in extra if (sp, "all") in held]
    aucs = [(sp, f"AUC {sp}") for sp in (*AUC_SPLITS, *extra) if (sp, "all") in held]
    return costs, aucs


def _row(m: Matched, unit, op, tm, costs, aucs) -> list:
    where = m.point(unit, op, tm)
    cells = [TARGET_MODALITIES.get(tm, tm), Cell(where.value("target"), where.std["target"]), where.where()]
    for sp, mod, _ in costs:
        p = m.get(unit, op, tm, sp, mod)
        acc = None if p is None else p.value("accuracy")
        cost = None if p is None else p.value("cost")
        cells.append(CostCell(acc, None if p is None else p.std["accuracy"], None if cost is None else 0.0 - cost,
                              start=None if p is None else p.value("start_reached")))
    for sp, _ in aucs:
        p = m.get(unit, op, tm, sp, "all")
        low, high = (None, None) if p is None or p.runs > 1 else (p.value("auc_ci_low"), p.value("auc_ci_high"))
        cells.append(Cell(None if p is None else p.value("auc"), None if p is None else p.std["auc"],
                          interval=None if low is None or high is None else (low, high)))
    return cells


def matched_tables(m: Matched, stops: dict[tuple, str] | None = None) -> list[Table]:
    """Per scenario, one row per method x update (x operation, in the sequential scenario) x target
    modality: where the target was reached and what retain and general cost up to there."""
    stops = stops or {}
    tables = []
    for scenario in dict.fromkeys(u[0] for u in m.units()):
        units = [u for u in m.units() if u[0] == scenario]
        per_op = any(len(m.operations(u)) > 1 for u in units)
        with_stop = any(u in stops for u in units)
        costs, aucs = _columns(m, units)
        header = (["method", "update"] + (["op"] if per_op else []) + (["runs"] if m.pooled else [])
                  + (["stop"] if with_stop else []) + ["forgotten on", "target", "reached at"]
                  + [c[2] for c in costs] + [a[1] for a in aucs])
        note = NOTE + (" Mean ± std over the runs that reached the target." if m.pooled else "")
        t = Table(f"{scenario}: at matched forgetting", note, header)
        for u in units:
            for op in m.operations(u):
                for tm in m.target_modalities(u):
                    runs = m.point(u, op, tm).runs
                    t.rows.append([u[1], u[2]] + ([str(op)] if per_op else []) + ([str(runs)] if m.pooled else [])
                                  + ([stops.get(u, "")] if with_stop else []) + _row(m, u, op, tm, costs, aucs))
        tables.append(t)
    return tables


def combined(runs: list[RunFiles], attr: str):
    """The runs' ``trajectory``, ``matched`` or ``attacks`` frames (``attr``) as one, with a ``run`` column (the
    run's index) and each method labelled with its variant as in ``pool``; None when none has one."""
    import pandas as pd

    frames = []
    for i, (run, variant) in enumerate(zip(runs, variants(runs))):
        frame = getattr(run, attr)
        if frame is not None:
            frames.append(frame.assign(run=i, method=[labelled(str(m), variant) for m in frame.method]))
    return pd.concat(frames, ignore_index=True) if frames else None
