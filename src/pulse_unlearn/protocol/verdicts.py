"""The comparisons behind the paper's findings, at the run's budget (``findings.csv``).

Each comparison is a statistic of accuracies, oriented so that a positive value is the paper's
direction, computed from ``predictions.csv``'s items:

1. pre-trained vs fine-tuned knowledge, per method and update: the general benchmark's drop
   (start minus end accuracy) in the pre-trained scenario minus that in the fine-tuned one;
2. one-shot vs sequential, per method and update: general accuracy at the one-shot end minus
   that after the last sequential operation;
3. text-only vs multimodal, per one-shot unit: the share of the forget split's starting accuracy
   above chance (``CHANCE``) that text-only questions keep, minus the share multimodal ones keep.

With trajectories they are also compared at matched forgetting (``matched_comparisons``), each
resample locating the crossings of its own monotone fits again: 1. the general cost where each
scenario's forget accuracy reached its target; 2. the general cost where all of the sequence's
people together (``forget_sequence``, the operations joined into one path) reached the target
the one-shot unit reached, sequential minus one-shot; 3. the forget examples each modality
needed, text-only minus multimodal.

The decision rule, fixed before any run (README, "How a verdict is reached"): the sides are
resampled together over the people (or benchmark items) they share, ``intervals.resamples``
times from ``intervals.seed`` (stats/bootstrap.py: ``paired``); each comparison's two-sided
bootstrap p-value is corrected by Holm's method over every comparison of the run (family-wise
error 1 - ``intervals.level``), and its interval is the percentile interval at its Holm level
(stats/holm.py). "reproduced" when that interval lies above 0, "the opposite" when below it,
otherwise "inconclusive".
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from ..evaluation.matched import OperationCurves, cost_at_match, examples_at_match, joined, operation_curves
from ..evaluation.splits import SEQUENCE
from ..records import ORACLE
from ..stats import Paired, Sample, holm, holm_levels, monotone_crossing, p_value, paired, percentile_interval
from .scenarios.declared import is_sequential, one_shot_of, with_knowledge

CHANCE = 0.25  # MLLMU-Bench's (and the world's) questions have four options
COLUMNS = ("finding", "at", "method", "update", "scenarios", "target_modality", "comparison", "estimate", "ci_low",
           "ci_high", "level", "p", "p_holm", "clusters", "shared", "resamples", "verdict")
VERDICTS = ("reproduced", "the opposite", "inconclusive")


def kept(start, end):
    """The share of the knowledge above chance that is left: 1 = nothing forgotten, 0 = at (or
    below) chance, however the model got there; undefined (nan) where the start is not above
    chance, e.g. in a resample that drew only people the model did not know (numpy-vectorised)."""
    start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.maximum(0.0, (end - CHANCE) / (start - CHANCE))
    return np.where(start > CHANCE, share, np.nan)


class Items:
    """predictions.csv's rows by (scenario, method, update, step, split): each item's headline
    value (``correct``), modality and cluster (its subject, with its population)."""

    def __init__(self, rows: Iterable[dict]):
        self.by: dict[tuple, list[tuple[float, str, tuple]]] = defaultdict(list)
        self.last: dict[tuple[str, str, str], int] = {}
        for r in rows:
            unit, step = (r["scenario"], r["method"], r["update"]), int(r["step"])
            if r["correct"] in ("", None):
                continue
            self.by[(*unit, step, r["split"])].append(
                (float(r["correct"]), r["modality"], (r["population"], str(r["subject"]))))
            self.last[unit] = max(self.last.get(unit, 0), step)

    def sample(self, unit, step: int, split: str, modality: str = "all") -> Sample:
        items = [i for i in self.by.get((*unit, step, split), []) if modality in ("all", i[1])]
        return Sample([i[0] for i in items], [i[2] for i in items])

    def has(self, unit, split: str) -> bool:
        return unit in self.last and (*unit, 0, split) in self.by and (*unit, self.last[unit], split) in self.by

    def units(self) -> list[tuple[str, str, str]]:
        """The units the findings judge: every one but the retrain oracle, which is their reference
        (summary.csv), not a method under test."""
        return [u for u in self.last if u[1] != ORACLE]


def _drop_difference(ft0, ftE, pt0, ptE):
    return (pt0 - ptE) - (ft0 - ftE)


def _difference(a, b):
    return a - b


def _kept_difference(mm0, mmE, txt0, txtE):
    return kept(txt0, txtE) - kept(mm0, mmE)


def _label(finding: int, at: str, method: str, update: str, scenarios: str, comparison: str,
           target_modality: str = "") -> dict:
    return {"finding": finding, "at": at, "method": method, "update": update, "scenarios": scenarios,
            "target_modality": target_modality, "comparison": comparison}


def comparisons(items: Items) -> list[tuple[dict, list[Sample], Callable]]:
    """(labels, sides, statistic) of every comparison at the budget the run's units allow."""
    out = []
    ft_name, pt_name = with_knowledge("fine-tuned"), with_knowledge("pre-trained")
    for unit in items.units():
        scenario, method, update = unit
        if scenario == ft_name and items.has(unit, "general") and items.has((pt_name, method, update), "general"):
            pt = (pt_name, method, update)
            sides = [items.sample(u, s, "general") for u in (unit, pt) for s in (0, items.last[u])]
            out.append((_label(1, "budget", method, update, f"{pt_name} vs {ft_name}",
                               "general drop: pre-trained minus fine-tuned"), sides, _drop_difference))
        one = (one_shot_of(scenario), method, update)
        if is_sequential(scenario) and items.has(unit, "general") and items.has(one, "general"):
            sides = [items.sample(u, items.last[u], "general") for u in (one, unit)]
            out.append((_label(2, "budget", method, update, f"{one[0]} vs {scenario}",
                               "general accuracy: one-shot minus sequential"), sides, _difference))
    for unit in items.units():
        if is_sequential(unit[0]) or not items.has(unit, "forget"):
            continue
        sides = [items.sample(unit, s, "forget", m) for m in ("multimodal", "text") for s in (0, items.last[unit])]
        if not all(side.values for side in sides) or min(sides[0].mean(), sides[2].mean()) <= CHANCE:
            continue  # a modality missing, or nothing above chance to forget
        out.append((_label(3, "budget", unit[1], unit[2], unit[0],
                           "forget, share kept above chance: text-only minus multimodal"), sides, _kept_difference))
    return out


def _by_operation(trajectory: Iterable[dict], items: Iterable[dict]) -> tuple[dict, dict]:
    """trajectory.csv's and trajectory_predictions.csv's rows by (scenario, method, update, operation)."""
    rows, its = defaultdict(list), defaultdict(list)
    for r in trajectory:
        rows[(r["scenario"], r["method"], r["update"], int(r["operation"]))].append(r)
    for r in items:
        its[(r["scenario"], r["method"], r["update"], int(r["operation"]))].append(r)
    return rows, its


def _last_operations(rows: dict, its: dict, compare) -> dict[tuple, OperationCurves]:
    """Each unit's last operation with a trajectory, as ``OperationCurves``."""
    last = {}
    for key in rows:
        if key[:3] not in last or key[3] > last[key[:3]]:
            last[key[:3]] = key[3]
    return {unit: operation_curves(rows[(*unit, op)], its[(*unit, op)], compare) for unit, op in last.items()}


def _sequences(rows: dict, its: dict, compare) -> dict[tuple, OperationCurves]:
    """Each sequential unit's operations joined into one path (``joined``) whose forget curves
    are those of all the sequence's people (``SEQUENCE``), for units that scored them throughout."""
    ops = defaultdict(dict)
    for (*unit, op), r in rows.items():
        if is_sequential(unit[0]) and any(x["split"] == SEQUENCE for x in r):
            ops[tuple(unit)][op] = operation_curves(r, its[(*unit, op)], compare, forget_split=SEQUENCE)
    out = {}
    for unit, by_op in ops.items():
        path = joined([by_op[k] for k in sorted(by_op)])
        curves = {k: c for k, c in path.curves.items() if k[0] != "forget"}
        curves.update({("forget", m): c for (split, m), c in path.curves.items() if split == SEQUENCE})
        if len(by_op) == max(by_op) and all(("forget", tm) in curves for tm in path.targets):
            out[unit] = replace(path, curves=curves)
    return out


def _reached(op: OperationCurves, tm: str) -> bool:
    key = ("forget", tm)
    if tm not in op.targets or key not in op.curves:
        return False
    return monotone_crossing(op.curves[key].means(), op.targets[tm]) is not None


def _cost_difference(a: OperationCurves, b: OperationCurves, tm: str, split: str = "general"):
    """b's cost at its matched point minus a's, as a statistic of (forget, split) curves of a, then b."""
    return lambda fa, ya, fb, yb: (cost_at_match(fb, yb, b.targets[tm]) - cost_at_match(fa, ya, a.targets[tm]))


def _examples_difference(op: OperationCurves):
    """Examples text-only questions needed to reach their target minus multimodal ones'."""
    return lambda mm, txt: (examples_at_match(txt, op.examples, op.targets["text"])
                            - examples_at_match(mm, op.examples, op.targets["multimodal"]))


def _costs(a: OperationCurves, b: OperationCurves, labels) -> list[tuple[dict, list, Callable]]:
    """The general cost at matched forgetting, b's minus a's, per target modality both reached."""
    out, general = [], ("general", "all")
    for tm in (m for m in ("multimodal", "text") if _reached(a, m) and _reached(b, m)):
        if general in a.curves and general in b.curves:
            sides = [a.curves[("forget", tm)], a.curves[general], b.curves[("forget", tm)], b.curves[general]]
            out.append(({**labels, "target_modality": tm}, sides, _cost_difference(a, b, tm)))
    return out


def matched_comparisons(ops: dict[tuple, OperationCurves],
                        sequences: dict[tuple, OperationCurves] | None = None) -> list[tuple[dict, list, Callable]]:
    """(labels, sides, statistic) of the comparisons at matched forgetting: finding 1 (the general
    benchmark's cost, pretrained minus finetuned), finding 2 (the cost where all of a sequence's
    people are forgotten as far as the one-shot unit's, sequential minus one-shot) and finding 3
    (forget examples to the target, text-only minus multimodal), where the units' own points
    reached their targets."""
    out = []
    ft_name, pt_name = with_knowledge("fine-tuned"), with_knowledge("pre-trained")
    for unit, a in ops.items():
        b = ops.get((pt_name, *unit[1:]))
        if unit[0] == ft_name and b is not None:
            out += _costs(a, b, _label(1, "matched", unit[1], unit[2], f"{pt_name} vs {ft_name}",
                                       "general cost at matched forgetting: pre-trained minus fine-tuned"))
    for unit, b in (sequences or {}).items():
        one = (one_shot_of(unit[0]), *unit[1:])
        if one in ops:
            out += _costs(ops[one], b, _label(2, "matched", unit[1], unit[2], f"{one[0]} vs {unit[0]}",
                                              "general cost at matched forgetting of all the sequence's people: "
                                              "sequential minus one-shot"))
    for unit, op in ops.items():
        if is_sequential(unit[0]) or not (_reached(op, "multimodal") and _reached(op, "text")):
            continue
        sides = [op.curves[("forget", "multimodal")], op.curves[("forget", "text")]]
        out.append((_label(3, "matched", unit[1], unit[2], unit[0],
                           "forget examples to the target: text-only minus multimodal"), sides,
                    _examples_difference(op)))
    return out


def verdict(low: float, high: float) -> str:
    """The decision rule: an interval that excludes 0 decides; one that holds it does not."""
    return "reproduced" if low > 0 else "the opposite" if high < 0 else "inconclusive"


def _resampled(found: list[tuple[dict, list, Callable]], intervals) -> list[tuple[dict, Paired]]:
    return [(labels, paired(sides, statistic, intervals.resamples, intervals.seed))
            for labels, sides, statistic in found]


@dataclass(frozen=True)
class Paths:
    """What the matched comparisons read: each unit's last operation, each sequence joined."""

    ops: dict[tuple, OperationCurves]
    sequences: dict[tuple, OperationCurves]

    @classmethod
    def of(cls, trajectory: Iterable[dict], trajectory_predictions: Iterable[dict], compare) -> Paths:
        rows, its = _by_operation(trajectory, trajectory_predictions)
        return cls(_last_operations(rows, its, compare), _sequences(rows, its, compare))

    def retargeted(self, compare) -> Paths:
        """The same curves, every target set again from ``compare``."""
        return Paths({u: op.retargeted(compare) for u, op in self.ops.items()},
                     {u: op.retargeted(compare) for u, op in self.sequences.items()})

    def comparisons(self) -> list[tuple[dict, list, Callable]]:
        return matched_comparisons(self.ops, self.sequences)


def _matched(trajectory: Iterable[dict], trajectory_predictions: Iterable[dict], compare) -> list:
    return Paths.of(trajectory, trajectory_predictions, compare).comparisons()


@dataclass(frozen=True)
class Measured:
    """A run's comparisons, resampled: at the budget, at matched forgetting under the run's own
    target, and at matched forgetting again per ``kept`` level (``sensitivity.csv``)."""

    budget: list[tuple[dict, Paired]]
    matched: list[tuple[dict, Paired]]
    levels: dict[float, list[tuple[dict, Paired]]]

    @property
    def own(self) -> list[tuple[dict, Paired]]:
        return self.budget + self.matched


def measured(predictions: Iterable[dict], intervals, trajectory: Iterable[dict] = (),
             trajectory_predictions: Iterable[dict] = (), compare=None, levels=()) -> Measured:
    """Every comparison of a run, each resampled once: the budget's, and (with the trajectories,
    their items and ``compare``, the comparison target) the matched ones, from curves built once
    and retargeted per ``kept`` of ``levels`` (rule ``kept`` only; the run's own level reused)."""
    budget = _resampled(comparisons(Items(predictions)), intervals)
    trajectory = list(trajectory)
    if compare is None or not trajectory:
        return Measured(budget, [], {})
    paths = Paths.of(trajectory, trajectory_predictions, compare)
    matched = _resampled(paths.comparisons(), intervals)
    by_level = {}
    for kept in (levels if compare.rule == "kept" else ()):
        by_level[kept] = matched if kept == compare.kept else _resampled(
            paths.retargeted(compare.model_copy(update={"kept": kept})).comparisons(), intervals)
    return Measured(budget, matched, by_level)


def measure(predictions: Iterable[dict], intervals, trajectory: Iterable[dict] = (),
            trajectory_predictions: Iterable[dict] = (), compare=None) -> list[tuple[dict, Paired]]:
    """Every comparison of a run, resampled: at the budget and (with the trajectories, their items
    and ``compare``, the comparison target) at matched forgetting."""
    return measured(predictions, intervals, trajectory, trajectory_predictions, compare).own


def decide(measured: list[tuple[dict, float, np.ndarray, dict]], intervals) -> list[dict]:
    """Rows of (labels, estimate, resampled statistics, more columns), Holm-corrected over them
    all, each with its Holm-level interval and verdict."""
    ps = [p_value(stats) for _, _, stats, _ in measured]
    rows = []
    for (labels, estimate, stats, more), p, adjusted, level in zip(measured, ps, holm(ps),
                                                                   holm_levels(ps, 1 - intervals.level)):
        low, high = (round(x, 6) for x in percentile_interval(stats, level))
        rows.append({**labels, "estimate": round(estimate, 6), "ci_low": low, "ci_high": high,
                     "level": round(level, 6), "p": round(p, 6), "p_holm": round(adjusted, 6), **more,
                     "resamples": intervals.resamples, "verdict": verdict(low, high)})
    return rows


def findings_rows(predictions: Iterable[dict], intervals, trajectory: Iterable[dict] = (),
                  trajectory_predictions: Iterable[dict] = (), compare=None) -> list[dict]:
    """``findings.csv``: one row per comparison (``measure``), Holm-corrected over them all
    (``intervals``: the config's ``resamples``, ``seed`` and ``level``)."""
    return decided(measure(predictions, intervals, trajectory, trajectory_predictions, compare), intervals)


def decided(found: list[tuple[dict, Paired]], intervals) -> list[dict]:
    """findings.csv's rows of resampled comparisons (``decide``, with their clusters)."""
    return decide([(labels, m.estimate, m.resampled, {"clusters": m.clusters, "shared": m.shared})
                   for labels, m in found], intervals)


SENSITIVITY_COLUMNS = ("kept", *COLUMNS)


def level_rows(m: Measured, intervals) -> list[dict]:
    """``sensitivity.csv``: each ``kept`` level of ``m`` decided as findings.csv is, Holm over the
    budget's comparisons and that level's matched ones, so the level equal to the run's own
    ``kept`` repeats findings.csv's matched rows (none: rule ``margin``, or no trajectories)."""
    return [{"kept": kept, **r} for kept, matched in m.levels.items()
            for r in decided(m.budget + matched, intervals)[len(m.budget):]]


KEY = ("finding", "at", "method", "update", "scenarios", "target_modality", "comparison")
POOLED_COLUMNS = (*KEY, "estimate", "ci_low", "ci_high", "level", "p", "p_holm", "worlds", "runs", "resamples",
                  "verdict", "agree", "per_run")


def key_of(row: dict) -> tuple[str, ...]:
    """What a comparison compares, as text (a findings.csv row's or a comparison's labels)."""
    return tuple(str(row[k]) for k in KEY)


@dataclass(frozen=True)
class RunComparisons:
    """One run's resampled comparisons (``measure``), its world seed and its own verdicts."""

    world: int
    measured: list[tuple[dict, Paired]]
    verdicts: dict[tuple[str, ...], str]  # key_of -> the run's own verdict


def two_level(per_world: list[np.ndarray], seed: int) -> np.ndarray:
    """Worlds, then people: each resample draws the worlds with replacement and averages the
    drawn worlds' own people-level resamples (the b-th of each)."""
    stats = np.stack(per_world)
    worlds, b = stats.shape
    pick = np.random.default_rng([seed, 1]).integers(0, worlds, size=(b, worlds))
    return _nanmean(stats[pick, np.arange(b)[:, None]], axis=1)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """The mean over ``axis`` leaving out nan; nan, without a warning, where all are nan."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def pooled_rows(runs: list[RunComparisons], intervals) -> list[dict]:
    """``pulse compare``'s findings.csv: each comparison pooled over the runs that have it (a
    world's runs, differing in their run seed, averaged; then the worlds resampled, ``two_level``),
    Holm-corrected over the pooled comparisons, with how many per-run verdicts agree."""
    grouped: dict[tuple, dict] = {}
    for run in runs:
        for labels, m in run.measured:
            key = key_of(labels)
            cell = grouped.setdefault(key, {"labels": labels, "worlds": defaultdict(list), "verdicts": []})
            cell["worlds"][run.world].append(m)
            cell["verdicts"].append(run.verdicts.get(key, "inconclusive"))
    measured = []
    for cell in grouped.values():
        worlds = list(cell["worlds"].values())
        per_world = [_nanmean(np.stack([m.resampled for m in ms]), axis=0) for ms in worlds]
        estimate = float(np.mean([np.mean([m.estimate for m in ms]) for ms in worlds]))
        measured.append((cell["labels"], estimate, two_level(per_world, intervals.seed),
                         {"worlds": len(worlds), "runs": len(cell["verdicts"]), "_verdicts": cell["verdicts"]}))
    rows = decide(measured, intervals)
    for row in rows:
        said = row.pop("_verdicts")
        counts = {v: said.count(v) for v in VERDICTS if v in said}
        row["agree"] = f"{said.count(row['verdict'])}/{len(said)}"
        row["per_run"] = "; ".join(f"{v} {n}" for v, n in counts.items())
    return rows
