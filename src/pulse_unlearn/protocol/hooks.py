"""What follows every operation, whatever its approach: the configured attacks on its model, its
log line, and its scalars to the experiment trackers. An approach hands in what it made
(``after_operation``); the attacks' rows go into the operation's record, so a resumed run reads
them back instead of attacking again."""

from __future__ import annotations

from ..evaluation.attacks import attacked, with_recovery
from ..evaluation.evaluator import Evaluator
from ..records import Unit
from .context import RunContext
from .records import Result


def accuracies(preds: dict) -> dict[str, float]:
    return {split: sum(p.correct for p in ps) / len(ps) for split, ps in preds.items() if ps}


def attack_rows(r: RunContext, unit: Unit, k: int, last: bool, model, evaluate: Evaluator, preds: dict,
                baseline: list[dict], weights_fixed: bool) -> list[dict]:
    """The configured attacks after operation k (the last, or every one when asked), with their
    recovery against the starting model's rows (``baseline``)."""
    if not last and not r.cfg.attacks_every_operation:
        return []
    rows = attacked(r.cfg.attacks, model, evaluate, preds, unit.scenario, r.log, r.attacks_said, weights_fixed)
    return [{**unit.fields, "operation": k, **row} for row in with_recovery(rows, baseline, r.cfg.intervals)]


def log_operation(r: RunContext, unit: Unit, what: str, preds: dict, how: str = "") -> None:
    """``[scenario] what: forget .. retain .. general ..how``: one line per operation."""
    acc = accuracies(preds)
    r.log(f"[{unit.scenario}] {what}: forget {acc['forget']:.1%} retain {acc['retain']:.1%} "
          f"general {acc['general']:.1%}{how}")


def track_point(r: RunContext, unit: Unit, pending: list[dict], rows: list[dict]) -> None:
    """A checkpoint's rows: to trajectory.csv (the operation so far) and to the trackers."""
    r.store.write_trajectory(pending)
    r.trackers.log({_tag(unit, f"op{row['operation']}", row["split"], row["modality"], "accuracy"):
                    row["accuracy"] for row in rows}, rows[0]["step"])


def track_operation(r: RunContext, unit: Unit, result: Result, losses=()) -> None:
    """An operation's losses (x: its steps) and end-of-operation metrics (x: the operation) to the trackers."""
    k = result.operation["operation"]
    for step, loss in enumerate(losses):
        r.trackers.log({_tag(unit, f"op{k}", "loss"): loss}, step)
    r.trackers.log({_tag(unit, "end", row["split"], row["request"], *_category(row), row["modality"], "accuracy"):
                    row["accuracy"] for row in result.summary}, k)


def _category(row: dict) -> tuple[str, ...]:
    """A per-category row's category in its tag; none for a row over the whole split."""
    return () if row.get("category", "all") == "all" else (row["category"],)


def _tag(unit: Unit, *parts) -> str:
    return "/".join(str(p) for p in (*unit, *parts))
