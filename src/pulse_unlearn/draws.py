"""Seeded draws: every choice a run makes (sets, requests, the few-shot demo person, subsets of
items, feedback questions, the world models' replay).

A draw of people is over the sorted IDs, so it is the same on any machine for the same seed, and
each kind of draw has its own salt (``SALTS``, all distinct; ``rng`` is the one way to a seeded
generator), so that changing one size does not reshuffle the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import PulseError

SALTS = {
    "finetune": 1, "forget": 2, "requests": 3, "pretrained": 4, "trajectory": 6, "relearn": 7, "relearn_retain": 8,
    "blackbox": 11,  # the feedback questions of a black-box operation (protocol/suffix_search.py)
    "concept_people": 12, "concept_events": 13, "demo": 14,
    "world_replay": 5,  # the world models' replay of pre-training text while fine-tuning (models/world_models.py)
    "general_subset": 9, "general_replay": 10,  # the general benchmark's subset and replay items (data/sources.py)
    "fact_questions": 17,  # the wrong options of a training fact asked as a question (blackbox/feedback.py)
    "mia_samples": 101,  # the membership-inference attack's samples (evaluation/attacks/mia.py)
}
assert len(set(SALTS.values())) == len(SALTS), "every kind of draw has a salt of its own"


def rng(seed: int, salt: str, *more: int) -> np.random.Generator:
    """The generator of one kind of draw: the seed, the kind's salt and ``more`` seed parts."""
    return np.random.default_rng([seed, SALTS[salt], *more])


def choose(ids: Sequence[str], n: int, seed: int, salt: str, *more: int) -> list[str]:
    """``n`` of ``ids`` drawn without replacement, in draw order; ``more``: further seed parts
    (an attack's own seed), none for the run's draws."""
    pool = sorted(ids)
    if n > len(pool):
        raise PulseError(f"asked for {n} people but only {len(pool)} are available")
    return [pool[i] for i in rng(seed, salt, *more).permutation(len(pool))[:n]]


def finetune_people(fictitious: Sequence[str], n: int, seed: int) -> list[str]:
    """The fictitious people the fine-tuned model learns (sorted)."""
    return sorted(choose(fictitious, n, seed, "finetune"))


def demo_person(candidates: Sequence[str], evaluated, seed: int) -> str | None:
    """The few-shot demonstration person of a split (``scoring=mllmu``): a seeded one of the
    candidates that the split does not evaluate, so the demonstration never shows an answer the
    split asks for. None when every candidate is evaluated."""
    pool = sorted(set(candidates) - set(evaluated))
    return choose(pool, 1, seed, "demo")[0] if pool else None
