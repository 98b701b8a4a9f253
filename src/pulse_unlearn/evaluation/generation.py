"""MLLMU-Bench's generate-and-parse evaluation: the parity mode (``scoring=mllmu``).

Reproduces what MLLMU-Bench's evaluation script does for LLaVA, one item at a time (batch 1)
with greedy decoding, through the checkpoint's own chat template:
- multiple choice: the question, its options as ``A: text`` lines and "Answer with the
  option's letter from the given choices directly."; the prediction is the first character of
  the reply if it is an option letter, else the answer is wrong (``max_new_tokens`` 50);
- cloze (``Mask_Task``): the blank ``__`` written ``[Blank]``, the model asked for the word
  that fills it; right when the ground truth is a substring of the reply (case-insensitive);
- generation (``Generation_Task``): "Answer the question based on your trained knowledge in
  one sentence ..."; scored by ROUGE-1/2/L F (stemmed, Google's ``rouge-score``) and sentence
  BLEU (NLTK) against the ground truth; ROUGE-L is the headline score.
- few-shot (``demo``, on by default in a run: ``parity.few_shot``): every multiple-choice question
  is preceded by one demonstration person's first question of the same modality, written
  "Question: ...", its ``A: text`` lines and "Correct Answer: X", as an earlier user turn of the
  chat template, with that person's image on multimodal questions (two images in one prompt:
  each placeholder expanded for its own image by the processor, the image inputs in order, demo
  first; ``Encoder.encode``).
Differences that remain: MLLMU-Bench draws the demo person at random and unseeded from the very
people it evaluates (so its reruns differ, and a demo can show an answer it then asks for); here
the draw is seeded and from the other population (``evaluation/evaluator.py: demo_for``). Its
prompts are raw text (a newline after the demo) where these go through the checkpoint's chat
template (LLaVA-1.5's: a space). Many times slower than the forward-pass scorings; it exists to
compare with published numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from ..data.batches import Encoder, Turn, collate
from ..progress import bar
from ..records import GENERATION_METRICS, MODALITIES, Example, OpenQuestion, Person, Question
from .predictions import OpenPrediction, Prediction

MC_SUFFIX = "Answer with the option's letter from the given choices directly."
CLOZE_SUFFIX = "Please **ONLY** provide the correct answer that should replace the [Blank]."
GENERATION_SUFFIX = {"multimodal": "Answer the question based on your trained knowledge in one sentence accurately "
                                   "in ENGLISH!!.",
                     "text": "Answer the question based on your trained knowledge in one sentence in ENGLISH!!"}


def _option_lines(options: dict[str, str]) -> list[str]:
    return [f"{k}: {v}" for k, v in options.items()]


def mllmu_mc_prompt(question: str, options: dict[str, str]) -> str:
    return "\n".join([question, *_option_lines(options), MC_SUFFIX])


def demo_prompt(q: Question) -> str:
    """MLLMU-Bench's few-shot demonstration of a multiple-choice question, answer included."""
    return "\n".join([f"Question: {q.question}", *_option_lines(q.options), f"Correct Answer: {q.answer}"])


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


def rouge(reply: str, truth: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures with Porter stemming (Google's ``rouge-score``), as
    MLLMU-Bench computes them."""
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    return {k: float(v.fmeasure) for k, v in _ROUGE.score(truth, reply).items()}


def rouge_l(reply: str, truth: str) -> float:
    return rouge(reply, truth)["rougeL"]


def bleu(reply: str, truth: str) -> float:
    """Sentence BLEU as MLLMU-Bench computes it (NLTK's ``sentence_bleu``): whitespace tokens, the
    ground truth as the one reference, uniform weights over 1- to 4-grams, brevity penalty, and
    smoothing "method1" (Chen & Cherry 2014): an n-gram order with no match counts 0.1 matches
    instead of 0, so a short reply that shares some words does not score exactly 0."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    return float(sentence_bleu([truth.split()], reply.split(), smoothing_function=SmoothingFunction().method1))


def generation_metrics(reply: str, truth: str) -> dict[str, float]:
    """Every metric of ``GENERATION_METRICS`` for one reply: ROUGE-1/2/L F and BLEU."""
    scores = {**rouge(reply, truth), "bleu": bleu(reply, truth)}
    return {m: scores[m] for m in GENERATION_METRICS}


class _Generator:
    """Prompts encoded once; each model answers them by greedy generation, one at a time.
    ``before[i]``: user turns before example i's (a few-shot demonstration), each with its image,
    if any; a prompt's images go to the model in its turns' order (``Encoder.encode``)."""

    def __init__(self, encoder: Encoder, examples: Sequence[Example], max_new_tokens: int, seed: int = 0,
                 before: Sequence[Sequence[Turn]] | None = None):
        self.max_new_tokens, self.seed = max_new_tokens, seed
        self.tokenizer = encoder.tokenizer
        self.enc = encoder.encode(list(examples), add_eos=False, before=before)
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
    """Multiple choice by generation and MLLMU-Bench's first-character parse. With ``demo`` (a
    person), every question is preceded by MLLMU-Bench's one-person few-shot demonstration: that
    person's first question of the same modality, its options and its answer (``demo_prompt``),
    as an earlier user turn with the demo person's image on multimodal questions."""

    scoring = "mllmu"

    def __init__(self, encoder: Encoder, questions: Sequence[Question], max_new_tokens: int = 50, seed: int = 0,
                 demo: Person | None = None):
        self.questions, self.demo = list(questions), demo
        shots = {m: [(demo_prompt(qs[0]), qs[0].image)] for m in MODALITIES if demo and (qs := demo.questions_of(m))}
        before = [shots.get(q.modality, []) for q in self.questions]
        super().__init__(encoder, [Example(mllmu_mc_prompt(q.question, q.options), q.answer, q.image)
                                   for q in self.questions], max_new_tokens, seed, before)

    def __call__(self, model) -> list[Prediction]:
        preds = []
        for q, reply in zip(self.questions, self.generate(model, f"generating answers to {len(self.questions)} "
                                                                 "questions")):
            letter = first_letter(reply, list(q.options))
            preds.append(Prediction(q.qid, q.subject, q.modality, q.answer, letter,
                                    {k: float(k == letter) for k in q.options}, q.category))
        return preds


class OpenScorer(_Generator):
    """Cloze and generation items by generation: substring hit, or ROUGE-1/2/L F and BLEU per item."""

    scoring = "mllmu"

    def __init__(self, encoder: Encoder, items: Sequence[OpenQuestion], max_new_tokens: int = 50, seed: int = 0):
        self.questions = list(items)
        super().__init__(encoder, [Example(open_prompt(q), q.answer, q.image) for q in self.questions],
                         max_new_tokens, seed)

    def __call__(self, model) -> list[OpenPrediction]:
        out = []
        for q, reply in zip(self.questions, self.generate(model, f"generating {len(self.questions)} open answers")):
            reply = reply.split("ASSISTANT:")[-1].strip()
            if q.task == "cloze":
                out.append(OpenPrediction(q.qid, q.subject, q.modality, q.task, q.answer, reply,
                                          float(cloze_hit(reply, q.answer))))
            else:
                metrics = generation_metrics(reply, q.answer)
                out.append(OpenPrediction(q.qid, q.subject, q.modality, q.task, q.answer, reply, metrics["rougeL"],
                                          metrics))
        return out
