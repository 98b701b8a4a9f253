"""A run's folder: every file written atomically (``runs/atomic.py``: temporary name, then rename).

    config.yaml        the resolved config
    summary.csv        tidy: one row per scenario, method, update, step, request, split, category, modality
                       (category: all, and for the general benchmark also each of its categories);
                       forget_test: the forget people's multimodal questions with a Test_Set image;
                       scoring=mllmu adds the splits forget_cloze / retain_cloze (share of hits) and
                       forget_generation / retain_generation (mean ROUGE-L F in the accuracy column;
                       mean ROUGE-1/2/L F and BLEU in rouge1, rouge2, rougeL, bleu, empty elsewhere)
    predictions.csv    one row per question per evaluation; subject and qid as the data names them, the
                       subject's population (fictitious, celebrity; empty for the general benchmark) and
                       the question's category (a person's attribute, a benchmark's skill)
    operations.csv     one row per unlearning operation: steps, first/last loss, divergence, the stopping
                       rule (stop, sees, rule), the step it stopped at and why (reason); a black-box unit's suffix
                       and the questions it asked (queries); one schema for both, empty where it does not apply
    timings.csv        each operation's wall time in seconds (the one file of a resumed run that differs from a
                       whole run's: an operation computed after the restart was timed again)
    trajectory.csv     with unlearn.eval_every: one row per checkpoint of an operation, split and modality
                       (step, forget examples seen, n, chance, the metrics)
    matched.csv        from the trajectories: each unit's retain and general accuracy where its forget
                       accuracy first reached the comparison target (trajectory.compare), and the area
                       under the forget-vs-accuracy curve (``evaluation/matched.py``)
    attacks.csv        with attacks: per unit, operation (0: the starting model, each attack's baseline),
                       attack, setting, split and modality: n, the metric's value, the same model without
                       the attack (unlearned), the starting model under it (start) and the recovery
                       (``evaluation/attacks``)
    search.csv         black-box units: every suffix asked, per operation (questions asked so far, its forget
                       and retain accuracy on the feedback, objective, best so far; ``protocol/suffix_search.py``)
    probe.csv          the pretrained scenario's probe: per celebrity (id, population) accuracy, known or not
    sets.json          who is forgotten and retained, per scenario (and the sequential requests): original
                       IDs and the scenario's population
    environment.json   library versions, device; fingerprints of config, data and models
    resume/            finished steps and operations, so that the same command resumes a killed run
                       (``protocol/checkpoints.py``)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
from pathlib import Path

import yaml

from ..errors import PulseError
from .atomic import atomic_write  # also imported from here by the run's other writers


# The results tables' identifiers and labels, read back as text (a person "000" stays "000", an
# answer "None" stays "None") by the Python API and the report.
TEXT_COLUMNS = ("scenario", "method", "update", "request", "split", "category", "modality", "scoring", "qid", "subject",
                "population", "answer", "predicted", "id", "top_answer", "selected", "target_modality", "stop",
                "sees", "rule", "reason", "attack", "setting", "metric", "suffix", "at", "scenarios", "comparison",
                "verdict")


def csv_text(rows: list[dict], columns) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def file_fingerprint(paths) -> str:
    """sha256 over the files' names and bytes (data files are small enough to read whole)."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def model_fingerprint(path: str | Path) -> str:
    """A quick fingerprint of a model folder: its config, each weight file's size and its first
    and last MiB. (Hashing whole 7B/13B checkpoints would take minutes.)"""
    path = Path(path)
    if not path.is_dir():
        return f"hub:{path}"
    h = hashlib.sha256()
    for p in sorted(path.glob("*.json")) + sorted(path.glob("*.safetensors")):
        h.update(p.name.encode())
        size = p.stat().st_size
        h.update(str(size).encode())
        with open(p, "rb") as f:
            h.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read())
    return h.hexdigest()[:16]


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("pulse-unlearn", "torch", "transformers", "peft", "accelerate", "tokenizers", "pyarrow", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class RunStore:
    """Collects a run's results in memory and rewrites its files atomically as they grow.
    ``columns``: each table's columns (the evaluation's schema, ``evaluation/summary.py``; one
    operation schema for every approach, ``protocol/records.py``)."""

    def __init__(self, folder: Path, config: dict, config_hash: str, write: bool = True,
                 columns: dict[str, tuple[str, ...]] | None = None):
        self.folder, self.write = Path(folder), write  # write=False: a helper process of a multi-process run
        self.columns = dict(columns or {})
        self.summary: list[dict] = []
        self.predictions: list[dict] = []
        self.operations: list[dict] = []
        self.timings: list[dict] = []
        self.trajectory: list[dict] = []
        self.trajectory_predictions: list[dict] = []
        self.matched: list[dict] = []
        self.attacks: list[dict] = []
        self.search: list[dict] = []
        self.extra: dict[str, object] = {}
        if not write:
            return
        marker = self.folder / "config.yaml"
        if marker.exists():
            old = yaml.safe_load(marker.read_text()) or {}
            if old.get("_config_hash") != config_hash:
                raise PulseError(f"{self.folder}: holds a run of another config; choose another --out or remove it")
        elif self.folder.exists() and any(self.folder.iterdir()):
            raise PulseError(f"{self.folder}: exists and is not a pulse run folder")
        atomic_write(marker, yaml.safe_dump({**config, "_config_hash": config_hash}, sort_keys=False))

    def write_json(self, name: str, obj) -> None:
        if self.write:
            atomic_write(self.folder / name, json.dumps(obj, indent=1, sort_keys=True, default=str))

    def write_csv(self, name: str, rows: list[dict], columns) -> None:
        if self.write:
            atomic_write(self.folder / name, csv_text(rows, columns))

    def flush(self) -> None:
        if not self.write:
            return
        self.write_csv("summary.csv", self.summary, self.columns["summary.csv"])
        self.write_csv("predictions.csv", self.predictions, self.columns["predictions.csv"])
        if self.operations:
            self.write_csv("operations.csv", self.operations, self.columns["operations.csv"])
            self.write_csv("timings.csv", self.timings, self.columns["timings.csv"])
        if self.trajectory:
            self.write_trajectory()
            self.write_csv("trajectory_predictions.csv", self.trajectory_predictions,
                           self.columns["trajectory_predictions.csv"])
            self.write_csv("matched.csv", self.matched, self.columns["matched.csv"])
        if self.attacks:
            self.write_csv("attacks.csv", self.attacks, self.columns["attacks.csv"])
        if self.search:
            self.write_csv("search.csv", self.search, self.columns["search.csv"])

    def write_trajectory(self, pending: list[dict] = ()) -> None:
        """``trajectory.csv``: the finished operations' rows and ``pending``, those of the operation
        under way (written at each of its checkpoints, so a long run can be watched)."""
        self.write_csv("trajectory.csv", self.trajectory + list(pending), self.columns["trajectory.csv"])
