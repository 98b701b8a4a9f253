"""Reading run folders for a report, and averaging several runs for ``pulse compare``.

A report needs only ``summary.csv``; ``config.yaml``, ``environment.json`` and
``operations.csv`` add the config, versions, hashes, divergence and stopping rules when they are
there, ``findings.csv`` the verdicts with their intervals, ``trajectory.csv`` and ``matched.csv``
the comparison at matched forgetting, ``attacks.csv`` the residual-knowledge section.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..errors import PulseError
from ..runs.store import TEXT_COLUMNS
from ..evaluation.metrics import METRICS
from .findings import read_summary

if TYPE_CHECKING:
    import pandas as pd

KEY = ("scenario", "method", "update", "step", "request", "split", "category", "modality")
# Config keys that say which units a run holds or which seeds (world, run) it drew, not how it
# unlearns: runs that differ only in these are pooled by ``pulse compare``.
POOLED_KEYS = ("name", "seed", "model.world_seed", "grid", "_config_hash", "unlearn.seed")


@dataclass
class RunFiles:
    """A run folder's files as the report reads them (summary rows as dicts); the Python API's
    ``pulse_unlearn.load_run`` gives the same files as DataFrames."""

    folder: Path
    rows: list[dict]
    config: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    operations: list[dict] = field(default_factory=list)
    summary_sha256: str = ""
    trajectory: pd.DataFrame | None = None  # trajectory.csv, where the run evaluated checkpoints
    matched: pd.DataFrame | None = None  # matched.csv: the costs at matched forgetting
    attacks: pd.DataFrame | None = None  # attacks.csv: the recovery attacks
    search: pd.DataFrame | None = None  # search.csv: every suffix a black-box unit asked
    findings: pd.DataFrame | None = None  # findings.csv: each finding's comparisons, intervals and verdicts
    sensitivity: pd.DataFrame | None = None  # sensitivity.csv: the matched ones at other targets (kept)

    @property
    def name(self) -> str:
        return self.config.get("name") or self.folder.name

    @property
    def seed(self):
        return self.config.get("seed")

    def diverged(self) -> list[dict]:
        """Operations whose loss went NaN/inf (``diverged_at`` is the step where it did)."""
        return [op for op in self.operations if str(op.get("diverged_at", "")).strip() not in ("", "nan", "None")]

    def collapsed(self) -> list[dict]:
        """Operations after which the model's answers collapsed onto one letter (``evaluation/collapse.py``)."""
        return [op for op in self.operations if str(op.get("collapsed", "")).strip() in ("1", "True")]

    def troubled(self) -> list[tuple[dict, str]]:
        """Diverged or collapsed operations, each with what happened (step and value)."""
        out = []
        for op in self.operations:
            what = []
            if op in self.diverged():
                what.append(f"loss {op.get('last_loss')} at step {op.get('diverged_at')}")
            if op in self.collapsed():
                share = float(op.get("top_share") or 0)
                what.append(f"answers collapsed: {share:.0%} {op.get('top_answer')!r}")
            if what:
                out.append((op, "; ".join(what)))
        return out


def read_run(folder: Path) -> RunFiles:
    folder = Path(folder)
    if not folder.is_dir():
        raise PulseError(f"{folder}: no such run folder")
    summary = folder / "summary.csv"
    if not summary.is_file():
        raise PulseError(f"{folder}: no summary.csv (not a pulse run folder?)")
    run = RunFiles(folder, read_summary(summary), summary_sha256=hashlib.sha256(summary.read_bytes()).hexdigest())
    try:
        if (folder / "config.yaml").is_file():
            run.config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
        if (folder / "environment.json").is_file():
            run.environment = json.loads((folder / "environment.json").read_text())
        if (folder / "operations.csv").is_file():
            with open(folder / "operations.csv", newline="") as f:
                run.operations = list(csv.DictReader(f))
    except (yaml.YAMLError, json.JSONDecodeError, csv.Error, UnicodeDecodeError) as e:
        raise PulseError(f"{folder}: unreadable run file ({e})") from None
    if not isinstance(run.config, dict) or not isinstance(run.environment, dict):
        raise PulseError(f"{folder}: config.yaml or environment.json is not a mapping")
    run.trajectory = read_table(folder / "trajectory.csv", TRAJECTORY_COLUMNS)
    run.matched = read_table(folder / "matched.csv", MATCHED_COLUMNS)
    if run.matched is not None:
        _check_matched(folder / "matched.csv", run.matched)
    run.attacks = read_table(folder / "attacks.csv", ATTACK_COLUMNS)
    run.search = read_table(folder / "search.csv", SEARCH_COLUMNS)
    run.findings = read_table(folder / "findings.csv", FINDINGS_COLUMNS)
    run.sensitivity = read_table(folder / "sensitivity.csv", ("kept", *FINDINGS_COLUMNS))
    return run


def _check_matched(path: Path, frame: pd.DataFrame) -> None:
    """``reached`` is 0 or 1, and a reached row says where (a report must not print a cost it was not given)."""
    if not frame.reached.isin([0, 1]).all():
        raise PulseError(f"{path}: column reached must be 0 or 1")
    hit = frame[frame.reached == 1]
    if hit[["step", "examples", "accuracy", "cost"]].isna().any(axis=None):
        raise PulseError(f"{path}: a row with reached=1 needs step, examples, accuracy and cost")


TRAJECTORY_COLUMNS = ("scenario", "method", "update", "operation", "step", "examples", "split", "modality",
                      "accuracy")
ATTACK_COLUMNS = ("scenario", "method", "update", "operation", "attack", "setting", "split", "modality", "n",
                  "metric", "value")
SEARCH_COLUMNS = ("scenario", "method", "update", "operation", "asked", "queries", "suffix", "forget", "retain",
                  "objective", "best_objective")
FINDINGS_COLUMNS = ("finding", "at", "method", "update", "scenarios", "comparison", "estimate", "ci_low", "ci_high",
                    "level", "verdict")
MATCHED_COLUMNS = ("scenario", "method", "update", "operation", "target_modality", "target", "reached", "step",
                   "examples", "split", "modality", "start", "accuracy", "cost", "auc", "budget_steps")


def read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame | None:
    """``trajectory.csv``, ``matched.csv`` or ``attacks.csv`` as a DataFrame (identifiers as text, empty cells
    missing, the other required columns numbers), or None when the run has none."""
    import pandas as pd

    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise PulseError(f"{path}: cannot read ({str(e).splitlines()[0]})") from None
    if frame.empty:  # a run that has not reached its first checkpoint yet
        return None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise PulseError(f"{path}: missing column(s) {', '.join(missing)}")
    for c in required:
        if c not in TEXT_COLUMNS:
            try:
                frame[c] = pd.to_numeric(frame[c])
            except ValueError:
                raise PulseError(f"{path}: column {c} must hold numbers") from None
    return frame


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def variants(runs: list[RunFiles]) -> list[str]:
    """A label per run naming the settings that set its variant apart (empty when all runs
    share one), so that e.g. two learning rates stay separate rows instead of being averaged."""
    flats = [{k: v for k, v in _flat(r.config).items() if k not in POOLED_KEYS} for r in runs]
    differing = sorted({k for f in flats for k in f if any(g.get(k) != f.get(k) for g in flats)})
    return [", ".join(f"{k}={f.get(k)}" for k in differing) for f in flats]


def labelled(method: str, variant: str) -> str:
    """A method's name with its variant's label, as ``pool`` shows it."""
    return f"{method} [{variant}]" if variant else method


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def pool(runs: list[RunFiles]) -> list[dict]:
    """Summary rows averaged over runs: one row per key (a variant's label is appended to the
    method), with ``std`` and ``runs``. Runs with the same unit and variant are taken as seeds.
    Every other registered metric (ROUGE, BLEU, ...) is averaged alike, its spread in ``<metric>_std``;
    the stopping rule's label (``stop``) is kept."""
    values: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    stops: dict[tuple, set[str]] = defaultdict(set)
    for run, variant in zip(runs, variants(runs)):
        for r in run.rows:
            key = tuple(str(r.get(k, "all")) if k == "category" else str(r[k]) for k in KEY)
            if variant:
                key = (key[0], labelled(key[1], variant), *key[2:])
            if r.get("stop"):
                stops[key].add(r["stop"])
            for metric in METRICS:
                if r.get(metric) not in (None, ""):
                    values[key][metric].append(float(r[metric]))
    rows = []
    for key, by_metric in values.items():
        row = {**dict(zip(KEY, key)), "runs": len(by_metric["accuracy"]), "stop": " / ".join(sorted(stops[key]))}
        for metric, vals in by_metric.items():
            m, s = mean_std(vals)
            row[metric], row["std" if metric == "accuracy" else f"{metric}_std"] = m, s
        rows.append(row)
    return rows
