"""Registered metrics: what a summary row reports about a group of predictions.

A metric names its column, the task kinds it applies to, how a prediction gives its value,
how the values of a group aggregate, and whether higher is better. ``summary.csv``'s
columns, ``predictions.csv``'s per-item metric columns, the report's tables and ``pulse
compare``'s pooling are all derived from this registry.

The *headline* metric, ``accuracy``, is every row's main number: the share of right answers
(multiple choice, cloze hits), on generation items the mean ROUGE-L F (MLLMU-Bench's headline
generation score), on training facts the mean answer-token accuracy (``facts.py``). A metric
fills a row only when every prediction of the group has a value for it; other rows leave its
column empty."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.registry import Registry

TASKS = ("choice", "cloze", "generation", "facts")
AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": lambda v: sum(v) / len(v),
    "median": statistics.median,
}


@dataclass(frozen=True)
class Metric:
    name: str  # its column in summary.csv (and predictions.csv, unless headline)
    value: Callable[[object], float | None]  # one prediction's value; None: it has none
    tasks: tuple[str, ...] = TASKS  # the task kinds of splits it reports on
    aggregate: str = "mean"  # a key of AGGREGATIONS
    higher_is_better: bool = True
    headline: bool = False  # the row's main number (summary's ``accuracy``; predictions' ``correct``)
    description: str = ""

    def __post_init__(self):
        if self.aggregate not in AGGREGATIONS:
            choices = ", ".join(AGGREGATIONS)
            raise ValueError(f"metric {self.name}: aggregate {self.aggregate!r} is not one of {choices}")

    def of(self, preds: Sequence) -> float | None:
        """The group's value (6 digits), or None when some prediction has no value."""
        values = [self.value(p) for p in preds]
        if not values or any(v is None for v in values):
            return None
        return round(AGGREGATIONS[self.aggregate](values), 6)


METRICS: Registry[Metric] = Registry("metric", "pulse_unlearn.metrics")


def register_metric(metric: Metric) -> Metric:
    return METRICS.register(metric)


register_metric(Metric("accuracy", lambda p: p.value, headline=True,
                       description="share of right answers; generation items: mean ROUGE-L F; "
                                   "training facts: mean answer-token accuracy"))


def _generation(name: str, description: str) -> Metric:
    return Metric(name, lambda p: p.metrics.get(name), tasks=("generation",), description=description)


for _name, _text in (("rouge1", "ROUGE-1 F, stemmed"), ("rouge2", "ROUGE-2 F, stemmed"),
                     ("rougeL", "ROUGE-L F, stemmed"), ("bleu", "sentence BLEU, 1-4-grams, smoothing method1")):
    register_metric(_generation(_name, _text))


def headline() -> list[Metric]:
    return [m for m in METRICS.values() if m.headline]


def extra() -> list[Metric]:
    """The metrics with columns of their own after ``scoring`` (everything but the headline)."""
    return [m for m in METRICS.values() if not m.headline]


def for_task(task: str) -> list[Metric]:
    return [m for m in METRICS.values() if task in m.tasks]
