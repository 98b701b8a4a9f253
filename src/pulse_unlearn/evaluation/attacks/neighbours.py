"""``neighbours``: a forgotten person reached through related people who are not forgotten.

A concept erased from a model can often be rebuilt from its neighbouring concepts (a
concept-restoring attack); this is its language-model form. Each question names only related
people (the ``via`` people) and their shared context, never the person nor their image: in the
world, "In which city does the colleague of <Q> at <employer> who works as a <occupation> live?"
(``world/neighbours.py``: asked only where the description fits the person alone). If
unlearning removed the person, no route reaches them; if it only cut the cue (their name, their
face), the neighbours still lead there.

Rows come from a JSON-lines file: ``file``, else the world's ``neighbours.jsonl`` in the
MLLMU-Bench folder; real MLLMU-Bench has no relations, and there the attack says it does not
apply. A row is ``{"id", "subject", "via": [subject keys], "question", "options": {letter:
text}, "answer": letter}``; a user file is checked when the run starts, before anything is
written. Per scored person (split ``forget`` unless ``splits`` says otherwise), the rows whose
``via`` people are all outside the scenario's forget set (every request of it, so the baseline
and every operation ask the same questions: stricter than "forgotten so far", which the attack
cannot see), at most ``per_person`` of them (a seeded choice per person), asked as text-only
multiple choice about that person: ``unlearned`` in attacks.csv is then the plain text-only
accuracy on the same people.

In the world these are multi-hop questions the model never trained on, so the starting model's
accuracy on them (the baseline row) says whether the route exists at all: near chance (1/4),
there is nothing to restore. ``recovery`` is defined only where the starting model is above the
unlearned one. Via people the starting model never learnt (fictitious people outside the
fine-tuned ones) are kept: the description still names the person without them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from ...errors import PulseError
from ...records import LETTERS, Question
from ...world.neighbours import FILE
from .base import ATTACKS, Attack, AttackContext, AttackParams, Outcome
from .files import json_lines, side_file

KEYS = ("id", "subject", "via", "question", "options", "answer")


class NeighboursParams(AttackParams):
    splits: list[Literal["forget", "retain"]] | None = None
    # JSON lines; None: the world's neighbours.jsonl next to the data, if present
    file: str | None = Field(None, min_length=1)
    per_person: int = Field(3, ge=1, le=1000)  # questions per scored person at most


def _row_problem(row, people) -> str | None:
    """What is wrong with one parsed row, or None."""
    if not isinstance(row, dict):
        return "must be a JSON object"
    missing = [k for k in KEYS if k not in row]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    if not all(isinstance(row[k], str) and row[k] for k in ("id", "subject", "question", "answer")):
        return "id, subject, question and answer must be non-empty strings"
    options, via = row["options"], row["via"]
    if not isinstance(options, dict) or not 2 <= len(options) <= 4 or \
            not all(k in LETTERS and isinstance(v, str) and v for k, v in options.items()):
        return "options must map 2 to 4 of the letters A-D to non-empty texts"
    if row["answer"] not in options:
        return f"answer {row['answer']!r} is not among the options"
    if not isinstance(via, list) or not via or not all(isinstance(v, str) for v in via):
        return "via must be a non-empty list of subject keys"
    for key in [row["subject"], *via]:
        if key not in people:
            return f"unknown subject {key!r} (not a person of the data; keys read e.g. fictitious:000)"
    if row["subject"] in via:
        return f"via names the subject {row['subject']!r} itself"
    return None


def read_rows(path: Path, people) -> list[dict]:
    """The file's rows, each checked against ``people`` (subject keys); any problem is one
    ``PulseError`` line naming the file and line."""
    rows, ids = [], set()
    for where, row in json_lines(path, "neighbours", "neighbours"):
        problem = _row_problem(row, people) or (f"id {row['id']!r} repeats" if row["id"] in ids else None)
        if problem:
            raise PulseError(f"{where}: {problem}")
        ids.add(row["id"])
        rows.append(row)
    return rows


def usable(rows: list[dict], forgotten) -> dict[str, list[dict]]:
    """Per subject, its rows that name no ``forgotten`` person, in id order."""
    out: dict[str, list[dict]] = {}
    gone = set(forgotten)
    for row in sorted(rows, key=lambda r: r["id"]):
        if not gone & set(row["via"]):
            out.setdefault(row["subject"], []).append(row)
    return out


def pick(rows: list[dict], k: int, seed: int, subject: str) -> list[dict]:
    """At most ``k`` of one person's rows, a seeded choice (run seed and the person), in id order."""
    if len(rows) <= k:
        return list(rows)
    salt = int.from_bytes(hashlib.sha256(f"neighbours|{subject}".encode()).digest()[:8], "little")
    keep = np.random.default_rng([seed, salt]).choice(len(rows), k, replace=False)
    return [rows[i] for i in sorted(keep)]


def question(row: dict) -> Question:
    return Question(qid=row["id"], subject=row["subject"], modality="text", question=row["question"],
                    options=dict(row["options"]), answer=row["answer"], category="neighbours")


@ATTACKS.register
class Neighbours(Attack):
    name = "neighbours"
    Params = NeighboursParams
    splits: ClassVar[tuple[str, ...]] = ("forget",)

    def path(self, src) -> Path | None:
        """The rows' file: ``file``, else the world's next to the data (None where there is none)."""
        return side_file(self.file, src, FILE)

    def inputs(self, src) -> list[Path]:
        path = self.path(src)
        if path is None:
            return []
        read_rows(path, src.people)
        return [path]

    def questions(self, ctx: AttackContext) -> dict[str, list[Question]]:
        """Per scored split, the questions of its people (those of its plain predictions)."""
        e = ctx.evaluator
        path = self.path(e.src)
        if path is None:
            return {}
        by_subject = usable(read_rows(path, e.src.people), e.sets.forget)
        out = {}
        for split in self.scored:
            people = sorted({p.subject for p in ctx.plain.get(split, ())} & set(by_subject))
            qs = [question(r) for pid in people for r in pick(by_subject[pid], self.per_person, e.cfg.seed, pid)]
            if qs:
                out[split] = qs
        return out

    def does_not_apply(self, ctx: AttackContext) -> str | None:
        if self.path(ctx.evaluator.src) is None:
            return f"no relations: the data has no {FILE} beside it and the attack names no file"
        if not self.questions(ctx):
            return (f"no {'/'.join(self.scored)} person has a question through people outside the scenario's "
                    "forget set")
        return None

    def __call__(self, model, ctx: AttackContext) -> list[Outcome]:
        return [Outcome(f"per_person={self.per_person}", split, ctx.evaluator.scorer(split, qs)(model))
                for split, qs in self.questions(ctx).items()]
