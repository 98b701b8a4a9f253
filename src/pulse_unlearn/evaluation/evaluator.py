"""Splits encoded once, scored on any model: the evaluation a run performs after every operation.

A scorer is made per split by its task (``SCORERS``): multiple choice under the run's scoring
(forward-pass ``logits`` / ``likelihood``, or MLLMU-Bench's generate-and-parse ``mllmu``, with
MMBench's circular evaluation on a benchmark split when asked), cloze and generation items by
generation, training facts by teacher-forced answer-token accuracy. Under several processes each
process scores its share of the people and the predictions are gathered
(``distributed.ShardedScorer``)."""

from __future__ import annotations

import hashlib

from .. import distributed
from ..data.batches import Encoder
from ..records import Person, Question
from ..core.registry import Registry
from ..draws import demo_person
from .suffixed import suffixed_items
from .facts import FactScorer
from .generation import GenerateScorer, OpenScorer
from .scorers import CircularScorer, Scorer
from .splits import SPLITS, split_items


def choice_scorer(encoder: Encoder, questions: list, cfg, circular: bool = False, demo: Person | None = None):
    """Multiple choice under ``cfg.scoring``; ``circular`` asks every rotation of the options."""
    if circular:
        return CircularScorer(questions, lambda qs: choice_scorer(encoder, qs, cfg))
    if cfg.scoring == "mllmu":
        return GenerateScorer(encoder, questions, max_new_tokens=cfg.parity.mc_max_new_tokens, seed=cfg.seed,
                              demo=demo)
    return Scorer(encoder, questions, cfg.scoring, cfg.eval_batch_size, cfg.eval_share_prefix)


def open_scorer(encoder: Encoder, items: list, cfg, circular: bool = False, demo: Person | None = None):
    return OpenScorer(encoder, items, cfg.parity.open_max_new_tokens, cfg.seed)


def facts_scorer(encoder: Encoder, items: list, cfg, circular: bool = False, demo: Person | None = None):
    return FactScorer(encoder, items, cfg.eval_batch_size)


# Task kind -> scorer factory (encoder, items, cfg, circular, demo); a split's task picks one.
SCORERS: Registry = Registry("scorer", "pulse_unlearn.scorers", name_of=lambda f: f.task)
SCORERS.register(choice_scorer, "choice")
SCORERS.register(open_scorer, "cloze")
SCORERS.register(open_scorer, "generation")
SCORERS.register(facts_scorer, "facts")


def make_scorer(task: str, encoder: Encoder, items: list, cfg, circular: bool = False, demo: Person | None = None):
    make = lambda qs: SCORERS[task](encoder, qs, cfg, circular, demo)  # noqa: E731
    if distributed.world_size() > 1:  # each process scores its share of the people; gathered
        return distributed.ShardedScorer(items, make)
    return make(items)


def demo_for(cfg, src, questions: list) -> Person | None:
    """MLLMU-Bench's few-shot demonstration person for multiple-choice questions about people
    under ``scoring=mllmu`` with ``parity.few_shot``; else None. Drawn (seeded) from the other
    population: questions about fictitious people get a celebrity, questions about celebrities a
    fictitious person. So no split ever shows an answer it asks for, and every split about one
    population gets the same demo person: the pretrained scenario's step 0, read from the probe
    of all celebrities, was asked with the demo that its later evaluations use."""
    if cfg.scoring != "mllmu" or not cfg.parity.few_shot or not questions or not isinstance(questions[0], Question):
        return None
    subjects = {q.subject for q in questions}
    candidates = [pid for group in (src.fictitious, src.celebrities) if not subjects & set(group) for pid in group]
    pid = demo_person(candidates, subjects, cfg.seed)
    return None if pid is None else src.people[pid]


def processor_signature(processor) -> str:
    """Identical for processors that turn the same inputs into the same tensors."""
    parts = [str(processor.chat_template), processor.tokenizer.backend_tokenizer.to_str()
             if hasattr(processor.tokenizer, "backend_tokenizer") else str(len(processor.tokenizer)),
             processor.image_processor.to_json_string()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class Evaluator:
    """A scenario's splits, each encoded once, then scored on every model handed in. ``shared``
    keeps the scorers across scenarios, keyed by processor, task and items, so a split that
    several scenarios evaluate (the general benchmark; finetuned and sequential share forget
    and retain) is encoded once per run."""

    def __init__(self, encoder: Encoder, cfg, src, sets, shared: dict | None = None, suffix: tuple[str, ...] = ()):
        self.encoder, self.cfg, self.src, self.sets = encoder, cfg, src, sets
        self.shared = {} if shared is None else shared
        self.suffix = tuple(suffix)  # a black-box unit's suffix, appended to every prompt
        self.signature = processor_signature(encoder.processor)
        self.scorers = {name: self.scorer(name, items) for name, items in split_items(cfg, src, sets).items()}

    def scorer(self, split: str, items: list):
        """The split's scorer for ``items`` (made once per processor, task, demo, items and suffix)."""
        spec, cfg = SPLITS[split], self.cfg
        items = suffixed_items(items, self.suffix)
        circular = not spec.about_people and cfg.data.mmbench_circular
        demo = demo_for(cfg, self.src, items) if spec.about_people else None
        key = (self.signature, spec.task, cfg.scoring, circular, demo and demo.key,
               hashlib.sha256("|".join(q.qid for q in items).encode()).hexdigest(), self.suffix)
        if key not in self.shared:
            self.shared[key] = make_scorer(spec.task, self.encoder, items, cfg, circular, demo)
        return self.shared[key]

    def with_suffix(self, words) -> Evaluator:
        """The same splits with ``words`` appended to every prompt (encoded anew, then shared)."""
        return Evaluator(self.encoder, self.cfg, self.src, self.sets, self.shared, tuple(words))

    def __call__(self, model) -> dict[str, list]:
        return {name: scorer(model) for name, scorer in self.scorers.items()}
