"""``pulse compare``'s verdicts: each run's comparisons resampled again from its item files, then
pooled over runs (``protocol/verdicts.py``: ``pooled_rows``; worlds, then people).

A run's world is its ``model.world_seed``; runs of one world that differ in their run seed are
averaged before the worlds are resampled. Runs of different variants (``runs.variants``) stay
apart: their methods carry the variant's label, as in the pooled tables. The comparisons at
matched forgetting are pooled again at each ``kept`` level all the runs name
(``trajectory.sensitivity``), Holm over the budget's and that level's: ``sensitivity.csv``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from ..config.schema import ForgetTarget, IntervalConfig, TrajectoryConfig
from ..errors import PulseError
from ..protocol.verdicts import (POOLED_COLUMNS, RunComparisons, decide, key_of, measure, measured_levels,
                                 pooled_rows)
from ..runs.atomic import atomic_write
from ..runs.store import csv_text
from .runs import RunFiles, labelled, variants


def _rows(path: Path, label: str) -> Iterator[dict]:
    """A run's item file, its method relabelled with the run's variant (empty: no such file)."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            r["method"] = labelled(r["method"], label)
            yield r


def _intervals(runs: list[RunFiles]) -> IntervalConfig:
    """The runs' common interval settings: pooling resample b of every run needs one count and seed."""
    found = {(c.get("resamples"), c.get("seed"), c.get("level")): c
             for c in ((r.config.get("intervals") or {}) for r in runs)}
    if len(found) > 1:
        raise PulseError("compare: the runs' intervals (resamples, seed, level) differ; pooled verdicts need one "
                         "setting")
    return IntervalConfig(**next(iter(found.values())))


def _world(run: RunFiles) -> int:
    model = run.config.get("model") or {}
    return int(model.get("world_seed", 0) or 0)


def _files(run: RunFiles, label: str) -> tuple[list, list, list] | None:
    """predictions.csv, trajectory.csv and trajectory_predictions.csv of a run (None without predictions.csv)."""
    if not (run.folder / "predictions.csv").is_file():
        return None
    return tuple(list(_rows(run.folder / name, label))
                 for name in ("predictions.csv", "trajectory.csv", "trajectory_predictions.csv"))


def _compare(run: RunFiles) -> ForgetTarget:
    return ForgetTarget(**((run.config.get("trajectory") or {}).get("compare") or {}))


def _own(run: RunFiles, measured: list) -> RunComparisons:
    """A run's resampled comparisons with the verdicts the run alone gives."""
    own = decide([(labels, m.estimate, m.resampled, {}) for labels, m in measured], _intervals([run]))
    return RunComparisons(_world(run), measured, {key_of(r): r["verdict"] for r in own})


def run_comparisons(run: RunFiles, label: str, intervals: IntervalConfig) -> RunComparisons | None:
    """One run's comparisons, resampled from predictions.csv (and its trajectories), with the
    verdicts the run alone gives; None for a run without predictions.csv."""
    files = _files(run, label)
    return None if files is None else _own(run, measure(*files[:1], intervals, *files[1:], _compare(run)))


def _levels(runs: list[RunFiles]) -> list[float]:
    """The ``kept`` levels every run names (``trajectory.sensitivity``, else its default)."""
    named = [set((r.config.get("trajectory") or {}).get("sensitivity", TrajectoryConfig().sensitivity))
             for r in runs]
    return sorted(set.intersection(*named)) if named else []


def pooled_findings(runs: list[RunFiles], out: Path) -> list[dict] | None:
    """The pooled findings of ``runs``, written to ``out/findings.csv``; None where no run has
    predictions.csv (nothing to resample)."""
    intervals = _intervals(runs)
    measured = [m for r, label in zip(runs, variants(runs)) if (m := run_comparisons(r, label, intervals))]
    if not measured:
        return None
    rows = pooled_rows(measured, intervals)
    atomic_write(Path(out) / "findings.csv", csv_text(rows, POOLED_COLUMNS))
    return rows


SENSITIVITY_COLUMNS = ("kept", *POOLED_COLUMNS)


def pooled_sensitivity(runs: list[RunFiles], out: Path) -> list[dict] | None:
    """The matched comparisons pooled at each ``kept`` level the runs share, written to
    ``out/sensitivity.csv``; None where no run has comparisons at matched forgetting."""
    intervals, levels = _intervals(runs), _levels(runs)
    by_level: dict[float, list[RunComparisons]] = {}
    for run, label in zip(runs, variants(runs)):
        files = _files(run, label)
        if files is None:
            continue
        budget, matched = measured_levels(*files[:1], intervals, *files[1:], _compare(run), levels)
        for kept, found in matched.items():
            by_level.setdefault(kept, []).append(_own(run, budget + found))
    rows = [{"kept": kept, **r} for kept, measured in by_level.items()
            for r in pooled_rows(measured, intervals) if r["at"] == "matched"]
    if not rows:
        return None
    atomic_write(Path(out) / "sensitivity.csv", csv_text(rows, SENSITIVITY_COLUMNS))
    return rows


def agreement_line(rows: list[dict]) -> str:
    """How far the pooled verdicts and the runs' own agree, for the report and the terminal."""
    decided = [r for r in rows if r["verdict"] != "inconclusive"]
    agreed = sum(int(str(r["agree"]).split("/")[0]) for r in rows)
    total = sum(int(str(r["agree"]).split("/")[1]) for r in rows)
    worlds = max((int(r["worlds"]) for r in rows), default=0)
    return (f"Pooled over {worlds} world(s): {len(rows) - len(decided)} of {len(rows)} comparisons inconclusive; "
            f"{agreed} of {total} per-run verdicts agree with the pooled verdict of their comparison.")
