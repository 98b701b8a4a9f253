"""MLLMU-Bench-style multiple choice: greedy generation, then the option letter parsed from the reply.

This is the parity mode (``scoring=mllmu``): one question at a time (batch 1, as MLLMU-Bench's
scripts run it), the lettered prompt of ``logits`` scoring, ``max_new_tokens`` greedy tokens,
and the first standalone option letter of the reply as the prediction. A reply without one
is wrong. It is many times slower than the forward-pass scorings and exists to compare with
published numbers. Cloze and generation (ROUGE) scoring of MLLMU-Bench are not covered yet.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from ..data.batches import Encoder
from ..progress import bar
from ..records import Example, Question, mc_prompt
from .scoring import Prediction


def parse_letter(reply: str, letters: Sequence[str]) -> str:
    """The first option letter standing alone in ``reply`` ("B", "B.", "(B) Paris", "Answer: B"), else ""."""
    allowed = "".join(letters)
    m = re.search(rf"(?<![A-Za-z])([{allowed}])(?![A-Za-z])", reply)
    return m.group(1) if m else ""


class GenerateScorer:
    """Questions encoded once; each model is scored by greedy generation, one question at a time."""

    scoring = "mllmu"

    def __init__(self, encoder: Encoder, questions: Sequence[Question], max_new_tokens: int = 5):
        self.questions, self.max_new_tokens = list(questions), max_new_tokens
        self.tokenizer = encoder.tokenizer
        examples = [Example(mc_prompt(q.question, q.options), q.answer, q.image) for q in self.questions]
        self.enc = encoder.encode(examples, add_eos=False)
        self.replies: list[str] = []

    @torch.no_grad()
    def __call__(self, model) -> list[Prediction]:
        model.eval()
        device = next(model.parameters()).device
        self.replies = []
        preds = []
        with bar(len(self.questions), f"generating answers to {len(self.questions)} questions") as pbar:
            for i, q in enumerate(self.questions):
                ids = torch.tensor([self.enc.ids[i][: self.enc.prompt_len[i]]], device=device)
                inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
                if self.enc.image[i] >= 0:
                    inputs["pixel_values"] = self.enc.pixels[[self.enc.image[i]]].to(device)
                out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                     pad_token_id=self.tokenizer.pad_token_id)
                reply = self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
                self.replies.append(reply)
                letter = parse_letter(reply, list(q.options))
                preds.append(Prediction(q.qid, q.subject, q.modality, q.answer, letter,
                                        {k: float(k == letter) for k in q.options}))
                pbar.update(1)
        return preds
