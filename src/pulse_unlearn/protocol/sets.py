"""The PULSE sets: who is fine-tuned on, forgotten, retained; sequential requests; probing.

Every choice is a seeded draw over sorted subject keys (``draws.choose``), so the same seed
gives the same sets on any machine, and each draw has its own salt so changing one size does
not reshuffle the others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core.names import unknown_name
from ..draws import choose, finetune_people  # noqa: F401  (the first draw of the sets)
from ..errors import PulseError


@dataclass(frozen=True)
class Sets:
    """Forget people (as requests: one list per operation) and retain people."""

    requests: tuple[tuple[str, ...], ...]
    retain: tuple[str, ...]

    @property
    def forget(self) -> tuple[str, ...]:
        return tuple(pid for r in self.requests for pid in r)

    def __post_init__(self):
        forget = self.forget
        if len(set(forget)) != len(forget):
            raise PulseError("forget requests overlap")
        if set(forget) & set(self.retain):
            raise PulseError("forget and retain sets overlap")
        if not forget or not self.retain:
            raise PulseError("empty forget or retain set")


def finetuned_sets(finetuned: Sequence[str], n_forget: int, seed: int) -> Sets:
    """Scenario 1: ``n_forget`` of the fine-tuned people forgotten at once, the rest retained."""
    forget = choose(finetuned, n_forget, seed, "forget")
    retain = sorted(set(finetuned) - set(forget))
    return Sets(requests=(tuple(sorted(forget)),), retain=tuple(retain))


def sequential_sets(finetuned: Sequence[str], n_forget: int, n_requests: int, seed: int) -> Sets:
    """Scenario 3: the same forget set as scenario 1, split into disjoint requests (seeded order)."""
    one_shot = finetuned_sets(finetuned, n_forget, seed)
    if n_forget % n_requests:
        raise PulseError(f"{n_forget} forget people do not split into {n_requests} equal requests")
    order = choose(one_shot.forget, n_forget, seed, "requests")
    size = n_forget // n_requests
    requests = tuple(tuple(sorted(order[k * size:(k + 1) * size])) for k in range(n_requests))
    return Sets(requests=requests, retain=one_shot.retain)


@dataclass(frozen=True)
class ProbeResult:
    """Per person: multimodal and text-only accuracy of the base model, and whether it is known."""

    accuracy: dict[str, dict[str, float]]
    known: tuple[str, ...]
    threshold: float


def probe(predictions, threshold: float) -> ProbeResult:
    """A person is *known* when the model's accuracy reaches ``threshold`` on both modalities."""
    hits: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for p in predictions:
        hits[p.subject][p.modality].append(p.correct)
    acc = {pid: {m: float(np.mean(v)) for m, v in by_mod.items()} for pid, by_mod in hits.items()}
    known = tuple(sorted(pid for pid, a in acc.items()
                         if a.get("multimodal", 0) >= threshold and a.get("text", 0) >= threshold))
    return ProbeResult(acc, known, threshold)


def pretrained_sets(known: Sequence[str], n_forget: int, n_retain: int, seed: int) -> tuple[Sets, str | None]:
    """Scenario 2: forget/retain among the people the base model knows. With fewer known
    people than asked for, both sizes shrink in proportion; the note says so."""
    note = None
    if len(known) < n_forget + n_retain:
        total = len(known)
        new_forget = max(1, round(total * n_forget / (n_forget + n_retain)))
        if total < 2:
            raise PulseError(f"the probe found {total} known people; the pretrained scenario needs at least 2")
        note = (f"the probe found {total} known people, fewer than {n_forget} + {n_retain}: "
                f"scaled to forget {new_forget} / retain {total - new_forget}")
        n_forget, n_retain = new_forget, total - new_forget
    drawn = choose(known, n_forget + n_retain, seed, "pretrained")
    return Sets(requests=(tuple(sorted(drawn[:n_forget])),), retain=tuple(sorted(drawn[n_forget:]))), note


CONCEPT_KINDS = ("person", "event", "both")


def concept_sets(kind: str, people: Sequence[str], events: Sequence[str], n_people: int, n_events: int,
                 seed: int) -> Sets:
    """The concepts scenario (PEBench): one request of ``n_people`` people (``kind`` person: their
    events kept), ``n_events`` events (event: their people kept) or both; every other person and
    event retained. The two draws have salts of their own, so ``both`` forgets exactly the
    union of the other two kinds' requests."""
    if kind not in CONCEPT_KINDS:
        raise ValueError(unknown_name("concept request kind", kind, CONCEPT_KINDS))
    forget = []
    if kind in ("person", "both"):
        forget += choose(people, n_people, seed, "concept_people")
    if kind in ("event", "both"):
        forget += choose(events, n_events, seed, "concept_events")
    retain = sorted((set(people) | set(events)) - set(forget))
    return Sets(requests=(tuple(sorted(forget)),), retain=tuple(retain))
