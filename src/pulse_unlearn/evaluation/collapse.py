"""Collapsed answers: a model that gives (nearly) the same option letter whatever it is asked.

Rule: an evaluation has *collapsed* when one prediction -- an option letter, or no parsable
letter at all -- is given for at least ``SHARE`` (90%) of its questions, all splits pooled,
over at least ``MIN_QUESTIONS`` (20) questions, while that letter is the correct answer to
less than half of them (so a benchmark whose answers are mostly "A" does not trip it). A
healthy model spreads its answers over the letters (the tiny world's models: at most ~35%
on one letter); a broken one (inf/NaN weights, all logits equal, a degenerate generation)
puts them all on one. The run records the most frequent answer and its share after every
operation (``operations.csv``: ``top_answer``, ``top_share``, ``collapsed``) and goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SHARE = 0.9
MIN_QUESTIONS = 20


@dataclass(frozen=True)
class Collapse:
    letter: str  # the most frequent prediction ("" for no parsable letter)
    share: float  # its share of the questions
    n: int
    collapsed: bool


def answer_collapse(preds: Mapping[str, Iterable] | Iterable, share: float = SHARE,
                    min_questions: int = MIN_QUESTIONS) -> Collapse:
    """``preds``: predictions (with ``predicted`` and ``answer``), or a mapping split -> predictions."""
    if isinstance(preds, Mapping):
        preds = [p for ps in preds.values() for p in ps]
    preds = list(preds)
    if not preds:
        return Collapse("", 0.0, 0, False)
    letter, count = Counter(p.predicted for p in preds).most_common(1)[0]
    top = count / len(preds)
    right = sum(p.answer == letter for p in preds) / len(preds)
    return Collapse(letter, top, len(preds), len(preds) >= min_questions and top >= share and right < 0.5)
