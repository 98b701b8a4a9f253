"""MLLMU-Bench's generate-and-parse evaluation: the parity mode (``scoring=mllmu``).

Reproduces what MLLMU-Bench's evaluation script does for LLaVA, one item at a time (batch 1)
with greedy decoding, through the checkpoint's own chat template:
- multiple choice: the question, its options as ``A: text`` lines and "Answer with the
  option's letter from the given choices directly."; the prediction is the first character of
  the reply if it is an option letter, else the answer is wrong (``max_new_tokens`` 50);
- cloze (``Mask_Task``): the blank ``__`` written ``[Blank]``, the model asked for the word
  that fills it; right when the ground truth is a substring of the reply (case-insensitive);
- generation (``Generation_Task``): "Answer the question based on your trained knowledge in
  one sentence ..."; scored by ROUGE-L F (stemmed, Google's ``rouge-score``) against the
  ground truth.
Differences that remain: no few-shot demonstration person (MLLMU-Bench draws one at random,
unseeded, so its own reruns differ), and decoding is seeded. Many times slower than the
forward-pass scorings; it exists to compare with published numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data.batches import Encoder, collate
from ..progress import bar
from ..records import Example, OpenQuestion, Question
from .scoring import Prediction

MC_SUFFIX = "Answer with the option's letter from the given choices directly."
CLOZE_SUFFIX = "Please **ONLY** provide the correct answer that should replace the [Blank]."
GENERATION_SUFFIX = {"multimodal": "Answer the question based on your trained knowledge in one sentence accurately "
                                   "in ENGLISH!!.",
                     "text": "Answer the question based on your trained knowledge in one sentence in ENGLISH!!"}


def mllmu_mc_prompt(question: str, options: dict[str, str]) -> str:
    return "\n".join([question] + [f"{k}: {v}" for k, v in options.items()] + [MC_SUFFIX])


def open_prompt(q: OpenQuestion) -> str:
    if q.task == "cloze":
        return f"{q.question.replace('__', '[Blank]')}\n{CLOZE_SUFFIX}"
    return f"{q.question}\n{GENERATION_SUFFIX[q.modality]}"


def parse_letter(reply: str, letters: Sequence[str]) -> str:
    """The first option letter standing alone in ``reply`` ("B", "B.", "(B) Paris", "Answer: B"), else ""."""
    allowed = "".join(letters)
    m = re.search(rf"(?<![A-Za-z])([{allowed}])(?![A-Za-z])", reply)
    return m.group(1) if m else ""


def first_letter(reply: str, letters: Sequence[str]) -> str:
    """MLLMU-Bench's parse: the reply's first character, upper-cased, if it is an option letter, else ""."""
    text = reply.split("ASSISTANT:")[-1].strip()
    return text[0].upper() if text and text[0].upper() in letters else ""


def cloze_hit(reply: str, truth: str) -> bool:
    return truth.strip().lower() in reply.lower()


_ROUGE = None


def rouge_l(reply: str, truth: str) -> float:
    """ROUGE-L F-measure with Porter stemming, as MLLMU-Bench computes it."""
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(_ROUGE.score(truth, reply)["rougeL"].fmeasure)


@dataclass(frozen=True)
class OpenPrediction:
    """One cloze or generation item: the reply and its score (cloze: 0/1; generation: ROUGE-L F)."""

    qid: str
    subject: str
    modality: str
    task: str
    answer: str
    predicted: str
    score: float

    @property
    def correct(self) -> float:  # what summary rows average
        return self.score


class _Generator:
    """Prompts encoded once; each model answers them by greedy generation, one at a time."""

    def __init__(self, encoder: Encoder, examples: Sequence[Example], max_new_tokens: int, seed: int = 0):
        self.max_new_tokens, self.seed = max_new_tokens, seed
        self.tokenizer = encoder.tokenizer
        self.enc = encoder.encode(list(examples), add_eos=False)
        self.replies: list[str] = []

    @torch.no_grad()
    def generate(self, model, desc: str) -> list[str]:
        model.eval()
        torch.manual_seed(self.seed)
        device = next(model.parameters()).device
        self.replies = []
        with bar(len(self.enc), desc) as pbar:
            for i in range(len(self.enc)):
                inputs = collate(self.enc, [i], self.tokenizer.pad_token_id, labels=False,
                                 ends=[self.enc.prompt_len[i]])
                inputs = {k: v.to(device) for k, v in inputs.items()}
                ids = inputs["input_ids"]
                out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                     pad_token_id=self.tokenizer.pad_token_id)
                self.replies.append(self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
                pbar.update(1)
        return self.replies


class GenerateScorer(_Generator):
    """Multiple choice by generation and MLLMU-Bench's first-character parse."""

    scoring = "mllmu"

    def __init__(self, encoder: Encoder, questions: Sequence[Question], max_new_tokens: int = 50, seed: int = 0):
        self.questions = list(questions)
        super().__init__(encoder, [Example(mllmu_mc_prompt(q.question, q.options), q.answer, q.image)
                                   for q in self.questions], max_new_tokens, seed)

    def __call__(self, model) -> list[Prediction]:
        preds = []
        for q, reply in zip(self.questions, self.generate(model, f"generating answers to {len(self.questions)} "
                                                                 "questions")):
            letter = first_letter(reply, list(q.options))
            preds.append(Prediction(q.qid, q.subject, q.modality, q.answer, letter,
                                    {k: float(k == letter) for k in q.options}))
        return preds


class OpenScorer(_Generator):
    """Cloze and generation items by generation: substring hit or ROUGE-L F per item."""

    scoring = "mllmu"

    def __init__(self, encoder: Encoder, items: Sequence[OpenQuestion], max_new_tokens: int = 50, seed: int = 0):
        self.questions = list(items)
        super().__init__(encoder, [Example(open_prompt(q), q.answer, q.image) for q in self.questions],
                         max_new_tokens, seed)

    def __call__(self, model) -> list[OpenPrediction]:
        out = []
        for q, reply in zip(self.questions, self.generate(model, f"generating {len(self.questions)} open answers")):
            reply = reply.split("ASSISTANT:")[-1].strip()
            score = float(cloze_hit(reply, q.answer)) if q.task == "cloze" else rouge_l(reply, q.answer)
            out.append(OpenPrediction(q.qid, q.subject, q.modality, q.task, q.answer, reply, score))
        return out
