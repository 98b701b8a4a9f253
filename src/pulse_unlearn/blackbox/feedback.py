"""What a strict black-box search may use: questions in, answers out, and the data owner's own
knowledge of the right answers.

The model is reachable only as ``ask``: a callable taking ``Query``s (the prompt's text, its
lettered options, an optional image) and returning one reply each, the option letter chosen or a
generated reply, whose first character is read as the letter (MLLMU-Bench's parse). A search never holds the model, its
tokenizer, logits or gradients: it holds a ``Feedback``, which holds ``ask`` and calls nothing else
on it, counts every question asked against the budget, and turns replies into accuracies.

The feedback questions are the forget and retain people's *training facts* asked as multiple choice
(never the evaluation questions): a fact's answer among distractors that are other people's answers
to the same question (``fact_questions``). The suffix is appended to the text of every prompt, as a
deployed system appends it to every user turn: it cannot know which queries are about forgotten
people.

The objective a search maximises (``Feedback.objective``), with ``r0`` the retain accuracy of the
empty suffix (asked first, counted in the budget):

    J(s) = (1 - forget(s)) - penalty * max(0, (r0 - margin) - retain(s))

so forgetting counts fully while the retain accuracy stays within ``margin`` of the start, and each
point of retain lost beyond it costs ``penalty`` points. The default 10 makes the margin nearly a
hard limit: at 2, a suffix that disrupts every answer (forget and retain both down by 30 points)
scored as well as no suffix on the default world, and the searches found such suffixes.

A search that asks thousands of suffixes and keeps the best by this objective picks, among
suffixes that truly cost retain accuracy, the ones whose feedback retain happened to come out high
(the winner's curse of a small feedback set). With a ``holdout`` (retain facts the search never
sees), the ``finalists`` best suffixes and the empty one are asked the holdout at the end, and the
result is the best of them by ``J`` with the larger of two shortfalls, the feedback's and the
holdout's (each against its own r0, the empty suffix's): the margin must also hold on questions
the choice was not fitted to. The holdout only vetoes: a suffix the feedback penalised is not
rescued by a holdout that happens to favour it. The holdout's questions are reserved from the
budget before the search starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import draws
from ..records import LETTERS


@dataclass(frozen=True)
class Query:
    """One question as an API receives it: text, lettered options, an image or none."""

    text: str
    options: dict[str, str]
    image: bytes | None = None


BlackBox = Callable[[Sequence[Query]], Sequence[str]]


@dataclass(frozen=True)
class FeedbackItem:
    """A feedback question with the answer its owner knows; ``side`` is forget or retain."""

    question: str
    options: dict[str, str]
    answer: str
    image: bytes | None
    side: str


def suffixed(text: str, words: Sequence[str]) -> str:
    """``text`` with the suffix words appended (one space before them; nothing for none)."""
    return f"{text} {' '.join(words)}" if words else text


def fact_questions(facts: dict[str, list], names: dict[str, str], who: Sequence[str], side: str,
                   seed: int, max_words: int = 6) -> list[FeedbackItem]:
    """The training facts of ``who`` (keys into ``facts``) as multiple-choice items.

    A fact's question is its prompt with the person's name (``names``) as a placeholder, so the
    same question about another person matches it; its distractors are up to 3 distinct answers of
    matching facts of *other* people in ``facts``, drawn seeded; the options are shuffled. Facts
    whose answer is longer than ``max_words`` words (a biography) or that have no distractor are
    left out."""
    pools: dict[tuple, list[str]] = {}
    for key, exs in facts.items():
        for ex in exs:
            if len(ex.answer.split()) <= max_words:
                pools.setdefault(_shape(ex, names.get(key)), []).append(ex.answer)
    rng = draws.rng(seed, "fact_questions")
    out = []
    for key in who:
        for ex in facts.get(key, ()):
            if len(ex.answer.split()) > max_words:
                continue
            others = sorted(set(pools.get(_shape(ex, names.get(key)), ())) - {ex.answer})
            if not others:
                continue
            picked = [others[i] for i in rng.permutation(len(others))[:3]]
            texts = [ex.answer, *picked]
            order = rng.permutation(len(texts))
            options = {LETTERS[j]: texts[k] for j, k in enumerate(order)}
            answer = LETTERS[int(np.flatnonzero(order == 0)[0])]
            out.append(FeedbackItem(ex.prompt, options, answer, ex.image, side))
    return out


def _shape(ex, name: str | None) -> tuple:
    text = ex.prompt.replace(name, "{who}") if name else ex.prompt
    return text, ex.image is None


def replied_letter(reply: str, options: dict[str, str]) -> str:
    """The option letter of a reply: its first character, upper-cased, if that is an option letter
    (MLLMU-Bench's parse of a generated reply; a one-letter reply is read as itself), else ""."""
    text = str(reply).strip()
    return text[:1].upper() if text[:1].upper() in options else ""


@dataclass
class Score:
    words: tuple[str, ...]
    forget: float
    retain: float
    objective: float
    queries: int  # questions asked so far, this one's included


PROPOSALS = 50  # calls of Feedback.score allowed per suffix the budget pays for


class BudgetSpent(Exception):
    """The next suffix would ask more questions than the budget has left."""


@dataclass
class Feedback:
    """The search's only way to the model. ``score(words)`` asks every feedback question with the
    suffix appended, once per distinct suffix (a suffix asked again costs nothing), and raises
    ``BudgetSpent`` rather than go over ``budget`` questions, or once it has been called
    ``PROPOSALS`` times per suffix the budget pays for (a search circling over suffixes it has
    asked already would never spend it)."""

    ask: BlackBox
    items: list[FeedbackItem]
    budget: int
    margin: float = 0.05
    penalty: float = 10.0
    holdout: list[FeedbackItem] = field(default_factory=list)
    finalists: int = 0  # suffixes the holdout will re-check: their questions are reserved from the budget
    used: int = 0
    history: list[Score] = field(default_factory=list)
    _seen: dict = field(default_factory=dict)
    r0: float | None = None
    calls: int = 0
    held: dict = field(default_factory=dict)  # suffix -> its retain accuracy on the holdout

    def __post_init__(self):
        sides = {it.side for it in self.items}
        if not {"forget", "retain"} <= sides:
            raise ValueError("the feedback needs forget and retain questions")
        if any(it.side != "retain" for it in self.holdout):
            raise ValueError("the holdout holds retain questions only")
        self.reserve = (self.finalists + 1) * len(self.holdout) if self.holdout else 0
        self.start = self.score(())
        self.r0 = self.start.retain
        self.start.objective = self.objective(self.start.forget, self.start.retain)

    def objective(self, forget: float, retain: float) -> float:
        shortfall = max(0.0, (self.r0 - self.margin) - retain)
        return (1.0 - forget) - self.penalty * shortfall

    def score(self, words: Sequence[str]) -> Score:
        words = tuple(words)
        self.calls += 1
        if self.calls > PROPOSALS * (self.budget // len(self.items) + 1):
            raise BudgetSpent
        if words in self._seen:
            return self._seen[words]
        if self.used + len(self.items) > self.budget - self.reserve:
            raise BudgetSpent
        right = {"forget": [], "retain": []}
        for it, hit in zip(self.items, self._asked(self.items, words)):
            right[it.side].append(hit)
        forget, retain = (float(np.mean(right[s])) for s in ("forget", "retain"))
        objective = self.objective(forget, retain) if self.r0 is not None else 0.0
        score = Score(words, forget, retain, objective, self.used)
        self._seen[words] = score
        self.history.append(score)
        return score

    def _asked(self, items: list[FeedbackItem], words: tuple[str, ...]) -> list[bool]:
        """Whether each of ``items``, asked with the suffix, is answered right (counted as used)."""
        replies = list(self.ask([Query(suffixed(it.question, words), it.options, it.image) for it in items]))
        if len(replies) != len(items):
            raise ValueError(f"the black box gave {len(replies)} replies to {len(items)} questions")
        self.used += len(items)
        return [replied_letter(reply, it.options) == it.answer for it, reply in zip(items, replies)]

    @property
    def best(self) -> Score:
        """The best suffix asked (the first of equals; the empty suffix if nothing beat it)."""
        return max(self.history, key=lambda s: s.objective)

    def ranked(self) -> list[Score]:
        """Every suffix asked, best objective first (the earlier asked of equals first)."""
        return sorted(self.history, key=lambda s: -s.objective)

    def checked(self, finalists: int) -> Score:
        """The best of the empty suffix and the ``finalists`` best others by ``J`` with the larger
        retain shortfall of the feedback's and the holdout's (asked here, from the reserved
        budget); the first of equals in the order empty, then best objective first."""
        picks = [self.start, *[s for s in self.ranked() if s.words][:finalists]]
        for s in picks:
            self.held[s.words] = float(np.mean(self._asked(self.holdout, s.words)))
        h0 = self.held[()]

        def judged(s: Score) -> float:
            short = max(0.0, (self.r0 - self.margin) - s.retain, (h0 - self.margin) - self.held[s.words])
            return (1.0 - s.forget) - self.penalty * short

        return max(picks, key=judged)
