"""The model as a black box: ``model_black_box`` is the one place that holds the model for a
black-box search. It takes ``Query``s and gives back one reply each: under the forward-pass
scorings the option letter the model chooses, under ``scoring=mllmu`` the text it generates
(MLLMU-Bench's prompt, greedy, no few-shot demonstration), as an API would return it;
``blackbox.Feedback`` reads the letter from it with MLLMU-Bench's first-character parse. The
search itself gets only this callable, wrapped in a ``Feedback``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..blackbox.feedback import BlackBox, Query
from ..data.batches import Encoder
from ..records import Question
from .evaluator import choice_scorer
from .generation import GenerateScorer


def model_black_box(model, encoder: Encoder, cfg) -> BlackBox:
    """``queries -> replies``: the model's answers (letters, or generated text under ``mllmu``),
    nothing else of it."""
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
