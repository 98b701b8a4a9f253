"""The model as a black box, and evaluation with a suffix in place.

``model_black_box`` is the one place that holds the model for a black-box search: it takes
``Query``s and gives back one reply each: under the forward-pass scorings the option letter the
model chooses, under ``scoring=mllmu`` the text it generates (MLLMU-Bench's prompt, greedy, no
few-shot demonstration), as an API would return it; ``blackbox.Feedback`` reads the letter from
it with MLLMU-Bench's first-character parse. The search itself gets only this callable, wrapped
in a ``Feedback``.

``suffixed_items``: a split's items with the suffix appended to the text of every prompt (a
question's text, so under ``logits`` and ``mllmu`` it precedes the lettered options; a cloze or
generation item's question; a training fact's prompt), so every split is evaluated as the
deployed system would be asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..blackbox.feedback import BlackBox, Query, suffixed
from ..data.batches import Encoder
from ..records import OpenQuestion, Question
from .facts import FactItem


def model_black_box(model, encoder: Encoder, cfg) -> BlackBox:
    """``queries -> replies``: the model's answers (letters, or generated text under ``mllmu``),
    nothing else of it."""
    from .evaluator import choice_scorer
    from .generation import GenerateScorer

    def ask(queries: Sequence[Query]) -> list[str]:
        questions = [Question(qid=f"query-{i}", subject="", modality="text" if q.image is None else "multimodal",
                              question=q.text, options=dict(q.options), answer=next(iter(q.options)), image=q.image)
                     for i, q in enumerate(queries)]
        if not questions:
            return []
        scorer = choice_scorer(encoder, questions, cfg)
        if isinstance(scorer, GenerateScorer):
            return scorer.generate(model, f"asking {len(questions)} questions")
        return [p.predicted for p in scorer(model)]

    return ask


def suffixed_items(items: list, words: Sequence[str]) -> list:
    """``items`` with ``words`` appended to each prompt's text (unchanged when there are none)."""
    if not words:
        return items
    out = []
    for it in items:
        if isinstance(it, (Question, OpenQuestion)):
            out.append(dataclasses.replace(it, question=suffixed(it.question, words)))
        elif isinstance(it, FactItem):
            out.append(dataclasses.replace(it, example=dataclasses.replace(
                it.example, prompt=suffixed(it.example.prompt, words))))
        else:
            raise TypeError(f"cannot append a suffix to a {type(it).__name__}")
    return out
