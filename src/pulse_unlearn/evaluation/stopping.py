"""Stopping rules, explicit: when an operation stops, and why, is written next to its results.

``fixed`` runs the whole budget (``unlearn.epochs``). ``target`` stops at the first checkpoint
where the forget criterion holds (``unlearn.target``), or when the budget (``unlearn.max_epochs``)
is spent. Both stop at a NaN/inf loss (``diverged``). What the rule looks at is declared:
the request's training facts (``training``: what any unlearner has) or the forget split's
evaluation questions (``oracle``: a rule no real unlearner could apply, labelled as such). The
general benchmark is never looked at.

A criterion compares a split's accuracy with a threshold that depends on chance (a blind
guess's score) and on ``start``, the scenario's starting model's accuracy on the same items (so
that every sequential request has the target a one-shot run would give it;
``protocol/trajectory.py``):

- ``margin``: accuracy <= chance + margin;
- ``kept``:   accuracy - chance <= kept x max(start - chance, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records import MODALITIES

TARGET_MET, BUDGET_SPENT, DIVERGED = "target met", "budget spent", "diverged"
EPSILON = 1e-9  # accuracies are rounded to 6 digits: a value on the threshold meets it
SEES_SPLIT = {"training": "forget_facts", "oracle": "forget"}
SEES_LABEL = {"training": "training facts", "oracle": "oracle: forget questions"}


def threshold(rule: str, chance: float, start: float, margin: float, kept: float) -> float:
    """The accuracy at or below which a split counts as forgotten."""
    if rule == "margin":
        return chance + margin
    if rule == "kept":
        return chance + kept * max(start - chance, 0.0)
    raise ValueError(f"unknown rule {rule!r}; choose margin or kept")


def criterion_text(target, split: str, modalities: tuple[str, ...]) -> str:
    """The criterion as a sentence, e.g. ``forget_facts multimodal and text <= 25% of the starting model's
    above chance``."""
    where = f"{split} {' and '.join(modalities)}"
    if target.rule == "margin":
        return f"{where} <= chance + {target.margin:g}"
    return f"{where} <= {target.kept:.0%} of the starting model's above chance"


@dataclass(frozen=True)
class StopRule:
    """An operation's stopping rule, from ``unlearn`` (the run config's section)."""

    stop: str  # fixed | target
    sees: str | None = None  # training | oracle (target only)
    rule: str = "kept"
    margin: float = 0.05
    kept: float = 0.25
    modalities: tuple[str, ...] = MODALITIES

    @classmethod
    def of(cls, unlearn) -> StopRule:
        if unlearn.stop == "fixed":
            return cls("fixed")
        t = unlearn.target
        modalities = MODALITIES if t.modality == "both" else (t.modality,)
        return cls("target", t.sees, t.rule, t.margin, t.kept, modalities)

    @property
    def split(self) -> str | None:
        """The split the rule looks at (None for ``fixed``)."""
        return SEES_SPLIT.get(self.sees) if self.sees else None

    @property
    def label(self) -> str:
        """``summary.csv``'s ``stop`` column: ``fixed``, ``target (training facts)``, ``target (oracle: ...)``."""
        return "fixed" if self.stop == "fixed" else f"target ({SEES_LABEL[self.sees]})"

    @property
    def text(self) -> str:
        """``operations.csv``'s ``rule`` column."""
        if self.stop == "fixed":
            return "the whole budget"
        return criterion_text(self, self.split, self.modalities)

    def met(self, start: dict[str, tuple[float, float]], now: dict[str, tuple[float, float]]) -> bool:
        """Whether the criterion holds. ``start`` and ``now``: modality -> (accuracy, chance) of the
        rule's split on the starting model and at this checkpoint. A modality the split has no items of is
        not asked; a split with none of the declared modalities never meets it."""
        if self.stop == "fixed":
            return False
        asked = [m for m in self.modalities if m in now and m in start]
        return bool(asked) and all(
            now[m][0] <= threshold(self.rule, now[m][1], start[m][0], self.margin, self.kept) + EPSILON
            for m in asked)
