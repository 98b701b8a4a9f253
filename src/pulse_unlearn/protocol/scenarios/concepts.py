"""``concepts-person``, ``concepts-event``, ``concepts-both`` (PEBench: people and events shown
in one image; ``concepts`` in a grid stands for the three): start from the fine-tuned model;
forget ``splits.concept_people`` people (their events kept), ``splits.concept_events`` events
(their people kept) or both, in one operation; the other concept of the forget images is the
``scope`` split (cross-concept interference)."""

from __future__ import annotations

from typing import ClassVar

from ...config.schema import MAX_EVENTS
from ...core.names import ConfigProblem
from ...draws import finetune_people
from ...errors import PulseError
from ...records import split_key
from ..sets import concept_sets
from .base import SCENARIOS, Scenario, finetune_count


class Concepts(Scenario):
    """The three concept scenarios differ only in what their request forgets (``kind``)."""

    kind: ClassVar[str]
    group = "concepts"
    subjects = "concepts"

    def check_config(self, cfg) -> None:
        if cfg.data.pebench is None and not (cfg.model.source == "world" and cfg.model.events):
            raise ConfigProblem("model.events", "the concepts scenarios need people and events: set model.events "
                                f"(1..{MAX_EVENTS}) for the world's, or data.pebench to a PEBench-style folder")

    def check_data(self, cfg, src, where) -> None:
        """The fine-tuned model must know every person and event of the PEBench-style data, and the
        request must forget fewer of each than there are."""
        c, s = src.concepts, cfg.splits
        folder = c.files[0].parent
        people, events = c.keys("person"), c.keys("event")
        if cfg.model.source == "world":
            learnt = {split_key(k)[1] for k in finetune_people(list(src.fictitious), finetune_count(cfg, src),
                                                                cfg.seed)}
            if not {k.removeprefix("person:") for k in people} <= learnt:
                raise PulseError(f"splits.finetune_people={s.finetune_people}: the concepts scenarios start from a "
                                 f"model fine-tuned on every person of {folder} ({len(people)}); raise it to "
                                 f"{len(people)}")
        elif not cfg.model.finetuned:
            raise PulseError(f"the concepts scenarios start from a model that knows the people and events of "
                             f"{folder}: set model.finetuned")
        if self.kind in ("person", "both") and not s.concept_people < len(people):
            raise PulseError(f"{folder}: {len(people)} people; splits.concept_people={s.concept_people} must leave 1 "
                             "or more to retain")
        if self.kind in ("event", "both") and not s.concept_events < len(events):
            raise PulseError(f"{folder}: {len(events)} events; splits.concept_events={s.concept_events} must leave 1 "
                             "or more to retain")

    def draw(self, cfg, src, people):
        c, s = src.concepts, cfg.splits
        return concept_sets(self.kind, c.keys("person"), c.keys("event"), s.concept_people, s.concept_events,
                            cfg.seed)


@SCENARIOS.register
class ConceptsPerson(Concepts):
    name, kind = "concepts-person", "person"


@SCENARIOS.register
class ConceptsEvent(Concepts):
    name, kind = "concepts-event", "event"


@SCENARIOS.register
class ConceptsBoth(Concepts):
    name, kind = "concepts-both", "both"
