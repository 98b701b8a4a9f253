"""The model as a black box, and evaluation with a suffix in place.

``model_black_box`` is the one place that holds the model for a black-box search: it takes
``Query``s and gives back the option letter the model chooses under the run's scoring (under
``scoring=mllmu`` the letter MLLMU-Bench's parse reads from the generated reply, as a data owner
would read an API's text; no few-shot demonstration precedes the query). The search itself gets
only this callable, wrapped in ``blackbox.Feedback``.

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
    """``queries -> letters``: the model's multiple-choice answers, nothing else of it."""
    from .evaluator import choice_scorer

    def ask(queries: Sequence[Query]) -> list[str]:
        questions = [Question(qid=f"query-{i}", subject="", modality="text" if q.image is None else "multimodal",
                              question=q.text, options=dict(q.options), answer=next(iter(q.options)), image=q.image)
                     for i, q in enumerate(queries)]
        if not questions:
            return []
        return [p.predicted for p in choice_scorer(encoder, questions, cfg)(model)]

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
