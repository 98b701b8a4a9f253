"""What a scorer returns for one item, by kind, and how each kind is written to and read back
from a run's resume records.

Every kind carries ``qid``, ``subject``, ``modality``, ``answer`` and ``predicted`` (a multiple-choice
answer also its question's ``category``), and says
what the split's headline column averages (``value``: 1/0 for a right or wrong choice, a
cloze hit, a generation's ROUGE-L F), which per-item metric values it has (``metrics``) and
what a blind guess would score on average (``chance``, read by the stopping rules).
A kind added later registers itself in ``KINDS``; ``to_record`` / ``from_record`` then
round-trip it through JSON without further code (a record names its kind).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from ..core.registry import Registry

KINDS: Registry[type] = Registry("prediction kind", name_of=lambda cls: cls.kind)


@KINDS.register
@dataclass(frozen=True)
class Prediction:
    """A multiple-choice answer: the option letter chosen and each letter's score (a logit, a
    mean log-likelihood, or 1/0 for the parsed letter of a generated reply)."""

    kind: ClassVar[str] = "choice"
    qid: str
    subject: str
    modality: str
    answer: str
    predicted: str
    scores: dict[str, float]
    category: str = ""  # the question's category (a person's attribute, a benchmark's skill)

    @property
    def correct(self) -> bool:
        return self.predicted == self.answer

    @property
    def value(self) -> float:
        return float(self.correct)

    @property
    def metrics(self) -> dict[str, float]:
        return {}

    @property
    def chance(self) -> float:
        """A blind guess's expected value: one over the number of options."""
        return 1.0 / len(self.scores) if self.scores else 0.0

    def correct_cell(self) -> int | float:
        """``predictions.csv``'s ``correct``: 1/0."""
        return int(self.correct)


class ScoredKind:
    """A kind whose headline is its ``score`` (a share, not a choice): no guessing floor."""

    score: float

    @property
    def correct(self) -> float:
        return self.score

    @property
    def value(self) -> float:
        return float(self.score)

    @property
    def chance(self) -> float:
        return 0.0


@KINDS.register
@dataclass(frozen=True)
class OpenPrediction(ScoredKind):
    """A free answer (``task``: ``cloze`` or ``generation``): the reply and its score (cloze: 1/0
    for a hit; generation: ROUGE-L F); generation items also carry ROUGE-1/2/L F and BLEU in
    ``metrics``."""

    kind: ClassVar[str] = "open"
    qid: str
    subject: str
    modality: str
    task: str
    answer: str
    predicted: str
    score: float
    metrics: dict[str, float] = field(default_factory=dict)

    def correct_cell(self) -> int | float:
        """``predictions.csv``'s ``correct``: 1/0 for cloze, the ROUGE-L F (4 digits) for generation."""
        return round(float(self.score), 4) if self.task == "generation" else int(self.score)


def to_record(p) -> dict:
    """A JSON-ready dict that names the prediction's kind."""
    return {"kind": p.kind, **dataclasses.asdict(p)}


def from_record(record: dict):
    """The prediction ``to_record`` wrote, of its kind."""
    fields = dict(record)
    return KINDS[fields.pop("kind")](**fields)
