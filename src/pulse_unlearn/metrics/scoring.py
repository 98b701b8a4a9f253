"""Multiple-choice accuracy by batched forward passes: no generate loop.

Two scorings, named in every result:
- ``logits``: the question with its lettered options (the MLLMU-Bench/MMBench format); the
  prediction is the option letter with the highest next-token logit at the answer position.
- ``likelihood``: the question alone; the prediction is the option whose text has the
  highest length-normalised log-likelihood as the answer (the lm-evaluation-harness way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data.batches import Encoder, batch_indices, collate
from ..errors import PulseError
from ..methods.losses import sequence_logprobs
from ..progress import bar
from ..records import MODALITIES, Example, Question, mc_prompt

SCORINGS = ("logits", "likelihood")


@dataclass(frozen=True)
class Prediction:
    qid: str
    subject: str
    modality: str
    answer: str
    predicted: str
    scores: dict[str, float]  # per option letter: logit or mean log-likelihood

    @property
    def correct(self) -> bool:
        return self.predicted == self.answer


def letter_token_ids(encoder: Encoder, letters: Sequence[str]) -> dict[str, int]:
    """The first token of each letter as the assistant's answer; they must differ."""
    enc = encoder.encode([Example("?", letter) for letter in letters], add_eos=False)
    ids = {letter: enc.ids[i][enc.prompt_len[i]] for i, letter in enumerate(letters)}
    if len(set(ids.values())) != len(ids):
        raise PulseError("the tokenizer does not give the option letters distinct first tokens")
    return ids


class Scorer:
    """A question set encoded once for one scoring, then scored on any number of models.

    Encoding (chat template, tokenising, image processing) is the costly part on CPU and the
    same for every model of a run, so a run makes one Scorer per split and reuses it.
    """

    def __init__(self, encoder: Encoder, questions: Sequence[Question], scoring: str = "logits",
                 batch_size: int = 64):
        if scoring not in SCORINGS:
            raise PulseError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
        self.questions, self.scoring, self.batch_size = list(questions), scoring, batch_size
        self.pad_id = encoder.tokenizer.pad_token_id
        if scoring == "logits":
            self.letters = sorted({k for q in self.questions for k in q.options})
            self.token_ids = letter_token_ids(encoder, self.letters) if self.letters else {}
            # The "answer" only marks where it starts: the logits there are read.
            examples = [Example(mc_prompt(q.question, q.options), q.answer, q.image) for q in self.questions]
            self.owners = None
        else:
            examples, self.owners = [], []
            for qi, q in enumerate(self.questions):
                for letter, text in q.options.items():
                    examples.append(Example(q.question, text, q.image))
                    self.owners.append((qi, letter))
        self.enc = encoder.encode(examples, add_eos=False)

    @torch.no_grad()
    def __call__(self, model) -> list[Prediction]:
        model.eval()
        rows = self._forward(model)
        if self.scoring == "logits":
            scores = [{k: v for k, v in zip(self.letters, row) if k in q.options}
                      for q, row in zip(self.questions, rows)]
        else:
            scores = [dict() for _ in self.questions]
            for (qi, letter), v in zip(self.owners, rows):
                scores[qi][letter] = v
        return [Prediction(q.qid, q.subject, q.modality, q.answer, max(s, key=s.get), s)
                for q, s in zip(self.questions, scores)]

    def _forward(self, model) -> list:
        """One value per encoded sequence (letter logits, or mean answer log-likelihood), in order."""
        out: list = [None] * len(self.enc)
        device = next(model.parameters()).device
        letter_ids = [self.token_ids[k] for k in self.letters] if self.owners is None else None
        batches = batch_indices(self.enc, self.batch_size)
        with bar(len(batches), f"scoring {len(self.questions)} questions") as pbar:
            for idx in batches:
                self._forward_batch(model, idx, letter_ids, device, out)
                pbar.update(1)
        return out

    def _forward_batch(self, model, idx, letter_ids, device, out) -> None:
        """Values for one batch of encoded sequences, written into ``out`` at their rows."""
        batch = {k: v.to(device) for k, v in collate(self.enc, idx, self.pad_id).items()}
        labels = batch.pop("labels")
        logits = model(**batch).logits
        if letter_ids is not None:
            pos = torch.tensor([self.enc.prompt_len[i] - 1 for i in idx], device=logits.device)
            values = logits[torch.arange(len(idx), device=logits.device), pos][:, letter_ids].float().tolist()
        else:
            total, count = sequence_logprobs(logits, labels)
            values = (total / count.clamp(min=1)).tolist()
        for row, value in zip(idx, values):
            out[row] = value


def score(model, encoder: Encoder, questions: Sequence[Question], scoring: str = "logits",
          batch_size: int = 64) -> list[Prediction]:
    """Score once (encodes the questions); for repeated scoring keep a ``Scorer``."""
    return Scorer(encoder, questions, scoring, batch_size)(model)


def accuracy(preds: Sequence[Prediction]) -> dict[str, tuple[int, float]]:
    """(n, accuracy) per modality, plus ``all``; a modality without questions is left out."""
    out = {}
    for modality in (*MODALITIES, "all"):
        sel = [p for p in preds if modality in ("all", p.modality)]
        if sel:
            out[modality] = (len(sel), sum(p.correct for p in sel) / len(sel))
    return out
