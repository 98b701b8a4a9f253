"""Registered splits: what is evaluated after every operation.

A split names its items (drawn from the data and a scenario's sets), the task kind its scorer
needs (``choice``: multiple choice under the run's scoring; ``cloze``, ``generation``: free
answers, ``scoring=mllmu``; ``facts``: the people's training facts, answer-token accuracy),
whether its rows are broken down per sequential request (the forget splits: per request, and
done / pending after each operation) or per item category (the general benchmark's skills), and
whether its questions are about people (then MLLMU-Bench's few-shot demonstration may precede
them) or a benchmark (then MMBench's circular evaluation may apply). The metrics it reports follow
from its task (``metrics.for_task``). A split whose items are empty for a scenario (no Test_Set
images, no cloze items) is left out of that scenario.

Splits are evaluated in registration order, which is also the order of ``summary.csv``'s rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.registry import Registry
from .facts import fact_items
from .metrics import TASKS, Metric, for_task
from .unseen_images import with_test_images


@dataclass(frozen=True)
class SplitContext:
    """What a split draws its items from: the run config, the data (``Sources``) and a scenario's sets."""

    cfg: object
    src: object
    sets: object


@dataclass(frozen=True)
class Split:
    name: str
    items: Callable[[SplitContext], list]
    task: str = "choice"  # one of metrics.TASKS
    per_request: bool = False  # rows per sequential request, and done / pending
    forgotten: bool = False  # its people are asked to be forgotten: it measures forgetting, never a cost
    in_sequences: bool = False  # scored in a sequence's trajectories wherever forget is, whatever enables it
    pending: bool = False  # in a sequence's trajectory, only the people of the requests after the operation's own
    about_people: bool = True  # False: a benchmark (few-shot demo never; circular evaluation may apply)
    by_category: bool = False  # summary rows also per item category (a benchmark's skills)
    enabled: Callable[[object], bool] = lambda cfg: True  # under this run config
    description: str = ""

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"split {self.name}: task {self.task!r} is not one of {', '.join(TASKS)}")

    @property
    def metrics(self) -> list[Metric]:
        return for_task(self.task)


SPLITS: Registry[Split] = Registry("split", "pulse_unlearn.splits")


def register_split(split: Split) -> Split:
    return SPLITS.register(split)


def split_items(cfg, src, sets) -> dict[str, list]:
    """Every enabled split's items for a scenario, in registration order; empty splits left out."""
    ctx = SplitContext(cfg, src, sets)
    out = {}
    for split in SPLITS.values():
        if split.enabled(cfg):
            items = split.items(ctx)
            if items:
                out[split.name] = items
    return out


def _open_tasks(cfg) -> bool:
    return cfg.scoring == "mllmu" and cfg.parity.open_tasks


register_split(Split("forget", lambda c: c.src.questions_of(c.sets.forget), per_request=True, forgotten=True,
                     description="the forget people's multiple-choice questions"))
# A sequence's trajectories also score all of its requests' people at every checkpoint, so that
# the whole sequence can be matched at one level of forgetting (finding 2 at matched forgetting);
# the summary's forget split already holds them at each operation's end, hence never enabled there.
SEQUENCE = "forget_sequence"
register_split(Split(SEQUENCE, lambda c: c.src.questions_of(c.sets.forget), enabled=lambda cfg: False,
                     forgotten=True, in_sequences=True,
                     description="every forget request's people together, in a sequence's trajectories only"))
# ... and the people of the requests still to come: what forgetting one request takes from those
# nobody has asked to forget yet (selectivity), a cost at matched forgetting like retain's.
register_split(Split("forget_pending", lambda c: c.src.questions_of(c.sets.forget), enabled=lambda cfg: False,
                     in_sequences=True, pending=True,
                     description="the people of a sequence's later requests, in its trajectories only"))
register_split(Split("forget_test",
                     lambda c: with_test_images(c.src.questions_of(c.sets.forget), c.src),
                     per_request=True, forgotten=True,
                     description="the forget people's multimodal questions with a Test_Set image"))
register_split(Split("retain", lambda c: c.src.away_from(c.src.questions_of(c.sets.retain), c.sets.forget),
                     description="the retain people's multiple-choice questions (in a concepts scenario, "
                                 "the retained people's and events' on images that show no forget concept)"))
register_split(Split("scope", lambda c: c.src.scope_of(c.sets.forget),
                     description="concepts scenarios: the questions about the other concept of the images that "
                                 "show a forget concept (cross-concept interference)"))
register_split(Split("general", lambda c: c.src.general, about_people=False, by_category=True,
                     description="the general benchmark (MMBench layout), also per category"))
for _who in ("forget", "retain"):
    for _task in ("cloze", "generation"):
        register_split(Split(f"{_who}_{_task}",
                             lambda c, who=_who, task=_task: c.src.open_of(getattr(c.sets, who), task),
                             task=_task, per_request=_who == "forget", forgotten=_who == "forget",
                             enabled=_open_tasks,
                             description=f"the {_who} people's {_task} items (scoring=mllmu)"))


def _facts_named(cfg, who: str) -> bool:
    """The training facts join the end-of-operation evaluation only when ``trajectory.splits`` names
    them: a stopping rule on them reads them at its checkpoints (``protocol/trajectory.py``), and
    a request's facts outnumber its questions (36 per person in the default embedded world)."""
    return f"{who}_facts" in cfg.trajectory.splits


def _facts_of(c: SplitContext, who: str) -> list:
    items = fact_items(c.src, getattr(c.sets, who))
    return items if who == "forget" else c.src.away_from(items, c.sets.forget)


for _who in ("forget", "retain"):
    register_split(Split(f"{_who}_facts", lambda c, who=_who: _facts_of(c, who), task="facts",
                         per_request=_who == "forget", forgotten=_who == "forget",
                         enabled=lambda cfg, who=_who: _facts_named(cfg, who),
                         description=f"the {_who} people's training facts (answer-token accuracy)"))
