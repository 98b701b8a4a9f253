"""The one summary schema: the rows and columns of ``summary.csv``, ``predictions.csv`` and
``trajectory.csv``, derived from the registered splits and metrics.

``summary.csv``: one row per unit (scenario, method, update), step, request, split, category and
modality (``multimodal``, ``text``, ``all``), with ``n`` and the registered metrics: the headline
(``accuracy``, with its bootstrap interval ``ci_low`` .. ``ci_high``: the people resampled
together, ``intervals`` in the config) before ``scoring``, the others after it, each empty where it
does not apply, and
the stopping rule that produced it (``stop``: ``fixed`` or ``target (training facts)`` /
``target (oracle: forget questions)``). ``trajectory.csv`` has the same metric columns per
checkpoint of an operation, with the checkpoint's ``step``, ``examples`` and ``chance``, and
``starting_accuracy``: the scenario's starting model on the same items (what targets are relative to).
Splits declared ``per_request`` are also broken down per sequential request (``1`` .. ``k``) and
into the requests already unlearned (``done``) and not yet (``pending``). ``category`` is ``all``
except in the rows of a split declared ``by_category`` (the general benchmark), which are also
broken down per item category (its skills), so a cost on abilities related to people can be told
from one on unrelated abilities.
"""

from __future__ import annotations

from ..config import IntervalConfig
from ..records import MODALITIES, split_key
from ..stats import Sample, interval
from . import metrics as metric_registry
from .splits import SPLITS

UNIT = ("scenario", "method", "update")
SUMMARY_KEY = (*UNIT, "step", "request", "split", "category", "modality")
ALL = "all"  # the category (and request) of a row over all of its split's items
INTERVAL = ("ci_low", "ci_high")  # the headline's bootstrap interval, people resampled together


def summary_columns() -> tuple[str, ...]:
    return (*SUMMARY_KEY, "n", *(m.name for m in metric_registry.headline()), *INTERVAL, "scoring", "stop",
            *(m.name for m in metric_registry.extra()))


def trajectory_columns() -> tuple[str, ...]:
    return (*UNIT, "operation", "step", "examples", "split", "modality", "n", "chance", "starting_accuracy",
            *(m.name for m in metric_registry.headline()), *INTERVAL, "scoring",
            *(m.name for m in metric_registry.extra()))


def headline_interval(preds: list, intervals: IntervalConfig | None = None) -> dict[str, float]:
    """``ci_low`` and ``ci_high`` of the group's headline metric (6 digits), its items clustered by
    subject (a person's or concept's items move together; a benchmark row is its own subject).
    Empty where the headline does not aggregate by mean or some item has no value."""
    metric, intervals = metric_registry.headline()[0], intervals or IntervalConfig()
    values = [metric.value(p) for p in preds]
    if metric.aggregate != "mean" or not values or any(v is None for v in values):
        return {}
    low, high = interval(Sample(values, [p.subject for p in preds]), intervals.resamples, intervals.seed,
                         intervals.level)
    return {"ci_low": round(low, 6), "ci_high": round(high, 6)}


# trajectory_predictions.csv: each checkpoint's items, what the matched point's intervals resample
TRAJECTORY_PREDICTION_COLUMNS = (*UNIT, "operation", "step", "split", "qid", "subject", "population", "modality",
                                 "correct")


def trajectory_prediction_rows(label: dict, preds: dict[str, list], step: int) -> list[dict]:
    """A checkpoint's items, labelled with the unit and operation (``label``)."""
    keep = TRAJECTORY_PREDICTION_COLUMNS[len(UNIT) + 1:]
    return [{**label, **{k: row[k] for k in keep}} for row in prediction_rows(preds, step)]


def prediction_columns() -> tuple[str, ...]:
    return (*UNIT, "step", "split", "qid", "subject", "population", "modality", "category", "answer", "predicted",
            "correct", *(m.name for m in metric_registry.extra()))


def _groups(preds: dict[str, list], requests, step: int, categories: bool = True):
    """(split, request, category, predictions) of every group a summary reports."""
    for split, ps in preds.items():
        yield split, ALL, ALL, ps
        if categories and SPLITS[split].by_category:
            for category in dict.fromkeys(_category(p) for p in ps):
                yield split, ALL, category, [p for p in ps if _category(p) == category]
        if SPLITS[split].per_request and len(requests) > 1:
            for k, req in enumerate(requests, start=1):
                yield split, str(k), ALL, [p for p in ps if p.subject in req]
            done = {pid for req in requests[:step] for pid in req}
            yield split, "done", ALL, [p for p in ps if p.subject in done]
            yield split, "pending", ALL, [p for p in ps if p.subject not in done]


def _category(p) -> str:
    """An item's category, ``-`` where its data names none (so it never reads as ``all``)."""
    return getattr(p, "category", "") or "-"


def summary_rows(preds: dict[str, list], requests: tuple[tuple[str, ...], ...], step: int,
                 intervals: IntervalConfig | None = None, categories: bool = True) -> list[dict]:
    """split x request x category x modality rows of one evaluation (step ``step``; ``requests``:
    the scenario's forget requests), each with ``n``, every metric of the split's task that all of
    the group's predictions have a value for, and the headline's interval (``intervals``; unset:
    the config's defaults). ``categories=False``: no per-category rows."""
    intervals = intervals or IntervalConfig()
    rows = []
    for split, request, category, ps in _groups(preds, requests, step, categories):
        reported = SPLITS[split].metrics
        for modality in (*MODALITIES, "all"):
            sel = [p for p in ps if modality in ("all", p.modality)]
            if not sel:
                continue
            row = {"step": step, "request": request, "split": split, "category": category, "modality": modality,
                   "n": len(sel)}
            for metric in reported:
                value = metric.of(sel)
                if value is not None:
                    row[metric.name] = value
            row.update(headline_interval(sel, intervals))
            rows.append(row)
    return rows


def point_rows(preds: dict[str, list], intervals: IntervalConfig | None = None) -> list[dict]:
    """A trajectory checkpoint's rows: split x modality with ``n``, ``chance`` (the mean of the
    predictions' blind-guess scores), the metrics and the interval, as ``summary_rows`` gives them."""
    rows = summary_rows(preds, (), 0, intervals, categories=False)
    for row in rows:
        sel = [p for p in preds[row["split"]] if row["modality"] in ("all", p.modality)]
        row["chance"] = round(sum(p.chance for p in sel) / len(sel), 6)
        del row["step"], row["request"], row["category"]
    return rows


def prediction_rows(preds: dict[str, list], step: int) -> list[dict]:
    """One row per item: its qid and subject as the data names them and the subject's population
    (empty for a benchmark row), the answer, the prediction, ``correct`` (the kind's headline
    cell) and each non-headline metric of the split's task that the item has a value for (4 digits)."""
    rows = []
    for split, ps in preds.items():
        per_item = [m for m in SPLITS[split].metrics if not m.headline]
        for p in ps:
            population, subject = split_key(p.subject)
            row = {"step": step, "split": split, "qid": split_key(p.qid)[1], "subject": subject,
                   "population": population, "modality": p.modality, "category": getattr(p, "category", ""),
                   "answer": p.answer, "predicted": p.predicted,
                   "correct": p.correct_cell()}
            for metric in per_item:
                value = metric.value(p)
                if value is not None:
                    row[metric.name] = round(value, 4)
            rows.append(row)
    return rows


def evaluation_rows(unit: dict, preds: dict[str, list], requests, step: int, scoring: str,
                    stop: str = "fixed", intervals: IntervalConfig | None = None) -> dict[str, list[dict]]:
    """An evaluation's summary and prediction rows, labelled with its unit, scoring and stopping
    rule (``stopping.StopRule.label``)."""
    return {"summary": [{**unit, **row, "scoring": scoring, "stop": stop}
                        for row in summary_rows(preds, requests, step, intervals)],
            "predictions": [{**unit, **row} for row in prediction_rows(preds, step)]}
