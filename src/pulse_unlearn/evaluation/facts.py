"""Training facts as an evaluation: how much of each fact's answer the model still gives.

A stopping rule that may look only at what an unlearner has (the forget and retain people's
training facts, not the evaluation questions) needs a score on those facts. The score of one
fact is its *answer-token accuracy*: teacher-forced on the prompt and the answer so far, the
share of the answer's tokens that are the model's most likely next token (the end-of-text
token is not counted). Chance is 0 (a 32k-token vocabulary; the tiny world's has a few
hundred). One forward pass per batch, no generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..data.batches import IGNORE, Encoder, batch_indices, collate
from ..progress import bar
from ..records import Example
from .predictions import KINDS, ScoredKind


@dataclass(frozen=True)
class FactItem:
    """One training fact of one person, named like a question (``qid`` begins with the person's key)."""

    qid: str
    subject: str
    example: Example

    @property
    def modality(self) -> str:
        return "multimodal" if self.example.image is not None else "text"

    @property
    def image(self) -> bytes | None:
        return self.example.image


def fact_items(src, people) -> list[FactItem]:
    """The training facts of ``people`` (subject keys), in the order the data gives them."""
    return [FactItem(f"{pid}/fact-{i}", pid, ex) for pid in people for i, ex in enumerate(src.facts.get(pid, ()))]


@KINDS.register
@dataclass(frozen=True)
class FactPrediction(ScoredKind):
    """A training fact's answer as the model predicts it token by token (teacher-forced), and
    the share of its tokens that are right (``score``)."""

    kind: ClassVar[str] = "facts"
    qid: str
    subject: str
    modality: str
    answer: str
    predicted: str
    score: float

    @property
    def metrics(self) -> dict[str, float]:
        return {}

    def correct_cell(self) -> float:
        return round(float(self.score), 4)


def token_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sequence: how many answer tokens are the argmax of the logits one position before
    them, and how many answer tokens there are (logits at t predict the token at t+1); and the
    argmax at every position (the predicted tokens, read once)."""
    targets = labels[:, 1:]
    mask = targets != IGNORE
    guesses = logits[:, :-1].argmax(-1)
    hits = (guesses == targets) & mask
    return hits.sum(-1), mask.sum(-1), guesses


class FactScorer:
    """Facts encoded once, scored on any model by batched teacher-forced forward passes."""

    def __init__(self, encoder: Encoder, items: Sequence[FactItem], batch_size: int = 64):
        self.items, self.batch_size = list(items), batch_size
        self.tokenizer, self.pad_id = encoder.tokenizer, encoder.tokenizer.pad_token_id
        self.enc = encoder.encode([it.example for it in self.items], add_eos=False)

    @torch.no_grad()
    def __call__(self, model) -> list[FactPrediction]:
        model.eval()
        device = next(model.parameters()).device
        out: dict[int, FactPrediction] = {}
        batches = batch_indices(self.enc, self.batch_size)
        with bar(len(batches), "scoring facts") as pbar:
            for idx in batches:
                batch = {k: v.to(device) for k, v in collate(self.enc, idx, self.pad_id).items()}
                labels = batch.pop("labels")
                hits, counts, guesses = token_accuracy(model(**batch).logits, labels)
                for row, i in enumerate(idx):
                    it, start = self.items[i], self.enc.prompt_len[i] - 1
                    guess = guesses[row, start: len(self.enc.ids[i]) - 1].tolist()
                    score = hits[row].item() / max(counts[row].item(), 1)
                    out[i] = FactPrediction(it.qid, it.subject, it.modality, it.example.answer,
                                            self.tokenizer.decode(guess, skip_special_tokens=True).strip(), score)
                pbar.update(1)
        return [out[i] for i in range(len(self.items))]
