"""``paraphrase``: the forget people's multiple-choice questions asked in other words.

Unlearning that removed a fact leaves it unanswerable however it is asked; unlearning that only
broke the link from the evaluation's wording to the answer is undone by a rewording. Each question
of the scored splits (default ``forget``) that has a rewording is asked with the rewording's text
instead (qid ``<qid>/paraphrase``), its options, answer and image unchanged; questions without one
are left out. As for every attack, ``unlearned`` is the plain accuracy on the same people and
modality, and recovery is against the starting model on the same rewordings.

The rewordings come from ``file`` (a relative path: from the working folder), or (unset) from
``paraphrases.jsonl`` in the MLLMU-Bench folder where there is one (the embedded world writes it:
``world/rewordings.py``, wordings no training or evaluation text uses, for every question). A
file that rewords only some of a person's questions still has ``unlearned`` over all of that
person's plain questions of the modality. The file holds JSON lines, one per reworded question,
with exactly two keys::

    {"id": "fictitious:0/multimodal/2", "question": "At which firm is the individual pictured employed?"}

``id`` names a multiple-choice question as the data loader does: ``<population>:<ID>/<modality>/
<index>``, population ``fictitious`` (Full_Set) or ``celebrity`` (Retain_Set), modality
``multimodal`` (Image_Textual_Questions) or ``text`` (Pure_Text_Questions), index the question's
place in that list from 0. Each id at most once, the text not empty; blank lines are skipped.
The file is checked when the run starts, before anything is written: each problem is one line
naming the file and line.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from ...errors import PulseError
from ...world.rewordings import FILE_NAME
from ..splits import SPLITS
from .base import ATTACKS, AttackContext, AttackParams, InputAttack
from .files import json_lines, side_file

KEYS = ("id", "question")


class ParaphraseParams(AttackParams):
    file: str | None = Field(None, min_length=1)  # a JSONL of rewordings; unset: the data's paraphrases.jsonl


def _row(row, where: str) -> tuple[str, str]:
    """(id, text) of one line's value, or a PulseError saying what is wrong with it."""
    if not isinstance(row, dict):
        raise PulseError(f'{where}: must be an object {{"id": ..., "question": ...}}')
    missing, extra = [k for k in KEYS if k not in row], sorted(set(row) - set(KEYS))
    problems = [f"missing key(s) {', '.join(missing)}"] if missing else []
    problems += [f"unknown key(s) {', '.join(extra)}"] if extra else []
    if problems:
        raise PulseError(f"{where}: {'; '.join(problems)} (a row holds exactly id and question)")
    qid, text = row["id"], row["question"]
    if not isinstance(qid, str) or not isinstance(text, str):
        raise PulseError(f"{where}: id and question must be text")
    if not text.strip():
        raise PulseError(f"{where}: question {qid!r} has an empty rewording")
    return qid, text


def read_rewordings(path: Path, qids) -> dict[str, str]:
    """The file's rewordings by question id, each id one of ``qids`` (the data's multiple-choice
    questions) and given once; any problem is one ``PulseError`` line naming the file and line."""
    known = set(qids)
    out: dict[str, str] = {}
    first: dict[str, str] = {}
    for where, value in json_lines(path, "rewordings", "paraphrase"):
        qid, text = _row(value, where)
        if qid in first:
            raise PulseError(f"{where}: id {qid!r} is given twice (first on line {first[qid].rsplit(':', 1)[1]})")
        if qid not in known:
            raise PulseError(f"{where}: id {qid!r} matches no multiple-choice question of the data "
                             f"(ids read <population>:<ID>/<modality>/<index>, e.g. fictitious:0/text/1)")
        out[qid], first[qid] = text, where
    if not out:
        raise PulseError(f"{path}: holds no rewordings")
    return out


@ATTACKS.register
class Paraphrase(InputAttack):
    name = "paraphrase"
    Params = ParaphraseParams
    splits: ClassVar[tuple[str, ...]] = ("forget",)

    def path(self, src) -> Path | None:
        """The rewordings file: ``file``, else the data's own where it has one."""
        return side_file(self.file, src, FILE_NAME)

    def rewordings(self, src) -> dict[str, str]:
        """The checked rewordings by question id (none without a file)."""
        path = self.path(src)
        return {} if path is None else read_rewordings(path, [q.qid for p in src.people.values()
                                                                for q in p.questions])

    def inputs(self, src) -> list[Path]:
        self.rewordings(src)
        return [] if self.path(src) is None else [self.path(src)]

    def does_not_apply(self, ctx: AttackContext) -> str | None:
        src = ctx.evaluator.src
        if self.path(src) is None:
            return f"no rewordings: the attack's file is not set and the data has no {FILE_NAME}"
        have = self.rewordings(src)
        if not any(q.qid in have for split in self.scored for q in SPLITS[split].items(ctx.split_context)):
            return f"no question of the scored split(s) {', '.join(self.scored)} has a rewording in {self.path(src)}"
        return None

    def settings(self) -> list[str]:
        return [""]

    def change(self, items: list, setting: str, ctx: AttackContext) -> list:
        have = self.rewordings(ctx.evaluator.src)
        return [replace(q, qid=f"{q.qid}/paraphrase", question=have[q.qid]) for q in items if q.qid in have]
