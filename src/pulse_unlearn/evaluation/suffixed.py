"""A split's items with a suffix appended to the text of every prompt (a question's text, so
under ``logits`` and ``mllmu`` it precedes the lettered options; a cloze or generation item's
question; a training fact's prompt), so every split is evaluated as the deployed system would
be asked with a black-box unit's suffix in place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..blackbox.feedback import suffixed
from ..records import OpenQuestion, Question
from .facts import FactItem


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
