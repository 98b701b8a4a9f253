"""Seeded draws: every choice of people a run makes (sets, requests, the few-shot demo person).

A draw is over the sorted IDs, so it is the same on any machine for the same seed, and each
kind of draw has its own salt, so that changing one size does not reshuffle the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import PulseError

SALTS = {"finetune": 1, "forget": 2, "requests": 3, "pretrained": 4, "demo": 5, "trajectory": 6, "relearn": 7,
         "relearn_retain": 8, "concept_people": 9, "concept_events": 10, "blackbox": 11}


def choose(ids: Sequence[str], n: int, seed: int, salt: str, *more: int) -> list[str]:
    """``n`` of ``ids`` drawn without replacement, in draw order; ``more``: further seed parts
    (an attack's own seed), none for the run's draws."""
    pool = sorted(ids)
    if n > len(pool):
        raise PulseError(f"asked for {n} people but only {len(pool)} are available")
    rng = np.random.default_rng([seed, SALTS[salt], *more])
    return [pool[i] for i in rng.permutation(len(pool))[:n]]


def finetune_people(fictitious: Sequence[str], n: int, seed: int) -> list[str]:
    """The fictitious people the fine-tuned model learns (sorted)."""
    return sorted(choose(fictitious, n, seed, "finetune"))


def demo_person(candidates: Sequence[str], evaluated, seed: int) -> str | None:
    """The few-shot demonstration person of a split (``scoring=mllmu``): a seeded one of the
    candidates that the split does not evaluate, so the demonstration never shows an answer the
    split asks for. None when every candidate is evaluated."""
    pool = sorted(set(candidates) - set(evaluated))
    return choose(pool, 1, seed, "demo")[0] if pool else None
