"""Questions that reach a person through a colleague, never naming them: the data of the
``neighbours`` probe (``evaluation/attacks/neighbours.py``).

Colleagues are the people of one population who share an employer. For celebrities these are
the world's own ``Profile.colleagues`` (pre-training states them); for fictitious people they
are computed here, for this probe only, and never trained on. For a person P and each colleague
Q, one text-only multiple-choice question names Q, P's employer and P's occupation, and asks
P's city:

    "In which city does the colleague of <Q> at <employer> who works as a <occupation> live?"

It is written only when that description fits P alone: nobody else in the world (either
population), Q excepted, works at P's employer as P's occupation. The options are P's city and
three other cities of the evaluation's city pool, shuffled, as the evaluation draws them
(``people.pool_options``), from an rng of their own, so no other world file changes.

Rows (one JSON object a line in ``MLLMU-Bench/neighbours.jsonl``): ``id``, ``subject`` (P's
subject key, ``records.subject_key``), ``via`` (the subject keys of the people named: Q),
``question``, ``options`` (letter -> city), ``answer`` (a letter).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..records import subject_key
from .people import POOLS, Profile, pool_options

FILE = "neighbours.jsonl"  # in the MLLMU-Bench folder, next to Full_Set/ and Retain_Set/
TEMPLATE = "In which city does the colleague of {via} at {employer} who works as {occupation} live?"


def _article(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def neighbour_rows(celebrities: list[Profile], fictitious: list[Profile], rng: np.random.Generator) -> list[dict]:
    """Every (person, colleague) question whose description names the person alone, people in
    order (celebrities, then fictitious), each person's colleagues in order."""
    population = {id(p): "celebrity" for p in celebrities} | {id(p): "fictitious" for p in fictitious}
    everyone = celebrities + fictitious
    cell: dict[tuple[str, str], list[Profile]] = {}
    for p in everyone:
        cell.setdefault((p.attributes["employer"], p.attributes["occupation"]), []).append(p)
    rows = []
    for p in everyone:
        a, key = p.attributes, subject_key(population[id(p)], p.id)
        colleagues = [q for q in everyone if q is not p and population[id(q)] == population[id(p)]
                      and q.attributes["employer"] == a["employer"]]
        for q in colleagues:
            if any(o is not p and o is not q for o in cell[a["employer"], a["occupation"]]):
                continue  # someone else fits the description too
            options, answer = pool_options(a["city"], POOLS["city"], rng)
            via = subject_key(population[id(q)], q.id)
            rows.append({"id": f"{key}/via/{via}", "subject": key, "via": [via],
                         "question": TEMPLATE.format(via=q.name, employer=a["employer"],
                                                     occupation=_article(a["occupation"])),
                         "options": options, "answer": answer})
    return rows


def write_rows(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
