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
from ..protocol.verdicts import POOLED_COLUMNS, RunComparisons, decide, key_of, measured, pooled_rows
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


def _own(run: RunFiles, found: list, intervals: IntervalConfig) -> RunComparisons:
    """A run's resampled comparisons with the verdicts the run alone gives."""
    own = decide([(labels, m.estimate, m.resampled, {}) for labels, m in found], intervals)
    return RunComparisons(_world(run), found, {key_of(r): r["verdict"] for r in own})


def _levels(runs: list[RunFiles]) -> list[float]:
    """The ``kept`` levels every run names (``trajectory.sensitivity``, else its default)."""
    named = [set((r.config.get("trajectory") or {}).get("sensitivity", TrajectoryConfig().sensitivity))
             for r in runs]
    return sorted(set.intersection(*named)) if named else []


SENSITIVITY_COLUMNS = ("kept", *POOLED_COLUMNS)


def pooled_verdicts(runs: list[RunFiles], out: Path) -> tuple[list[dict] | None, list[dict] | None]:
    """The pooled findings of ``runs`` (``out/findings.csv``; None where no run has
    predictions.csv: nothing to resample) and the matched comparisons pooled at each ``kept``
    level the runs share (``out/sensitivity.csv``; None without any), each run read and
    resampled once (``verdicts.measured``)."""
    intervals, levels = _intervals(runs), _levels(runs)
    own: list[RunComparisons] = []
    by_level: dict[float, list[RunComparisons]] = {}
    for run, label in zip(runs, variants(runs)):
        files = _files(run, label)
        if files is None:
            continue
        m = measured(*files[:1], intervals, *files[1:], _compare(run), levels)
        own.append(_own(run, m.own, intervals))
        for kept, found in m.levels.items():
            by_level.setdefault(kept, []).append(_own(run, m.budget + found, intervals))
    if not own:
        return None, None
    rows = pooled_rows(own, intervals)
    atomic_write(Path(out) / "findings.csv", csv_text(rows, POOLED_COLUMNS))
    sensitivity = [{"kept": kept, **r} for kept, found in by_level.items()
                   for r in pooled_rows(found, intervals) if r["at"] == "matched"]
    if sensitivity:
        atomic_write(Path(out) / "sensitivity.csv", csv_text(sensitivity, SENSITIVITY_COLUMNS))
    return rows, sensitivity or None


def agreement_line(rows: list[dict]) -> str:
    """How far the pooled verdicts and the runs' own agree, for the report and the terminal."""
    decided = [r for r in rows if r["verdict"] != "inconclusive"]
    agreed = sum(int(str(r["agree"]).split("/")[0]) for r in rows)
    total = sum(int(str(r["agree"]).split("/")[1]) for r in rows)
    worlds = max((int(r["worlds"]) for r in rows), default=0)
    return (f"Pooled over {worlds} world(s): {len(rows) - len(decided)} of {len(rows)} comparisons inconclusive; "
            f"{agreed} of {total} per-run verdicts agree with the pooled verdict of their comparison.")
