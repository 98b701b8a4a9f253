"""Multiple-choice accuracy by batched forward passes: no generate loop.

Two scorings, named in every result:
- ``logits``: the question with its lettered options (the MLLMU-Bench/MMBench format); the
  prediction is the option letter with the highest next-token logit at the answer position.
- ``likelihood``: the question alone; the prediction is the option whose text has the
  highest length-normalised log-likelihood as the answer (the lm-evaluation-harness way).

Prefix sharing: sequences that begin alike (a person's multimodal questions share the chat
header and the image's 576 tokens on LLaVA-1.5; under ``likelihood`` a question's options
share the whole question) run that prefix once. Its key/value cache is copied to each
sequence of the group, and only the differing suffixes are computed. The values are the
same as one full pass each (up to float rounding); ``share_prefix=False`` turns it off. It is
off by itself for models that need per-token inputs to place the image (Qwen2-VL's multimodal
rotary positions; ``Encoder.prefix_sharing_blocker`` says why), and ``sharing_off`` holds the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..core.names import unknown_name
from ..data.batches import IGNORE, Encoder, batch_indices, collate
from ..errors import PulseError
from ..logprobs import sequence_logprobs
from ..progress import bar
from ..records import MODALITIES, Example, Question, mc_prompt
from .predictions import Prediction

SCORINGS = ("logits", "likelihood")
MIN_SHARED = 8  # a shorter common prefix is not worth a separate pass


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
                 batch_size: int = 64, share_prefix: bool = True):
        if scoring not in SCORINGS:
            raise PulseError(unknown_name("scoring", scoring, SCORINGS))
        self.questions, self.scoring, self.batch_size = list(questions), scoring, batch_size
        self.sharing_off = encoder.prefix_sharing_blocker if share_prefix else None
        self.share_prefix = share_prefix and self.sharing_off is None
        self.computed_tokens = 0  # token positions run through the language model in the last call
        self.pad_id, self.image_token_id = encoder.tokenizer.pad_token_id, encoder.image_token_id
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
        self.plain, self.shared = self._plan()

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
        return [Prediction(q.qid, q.subject, q.modality, q.answer, max(s, key=s.get), s, q.category)
                for q, s in zip(self.questions, scores)]

    def _plan(self) -> tuple[list[list[int]], list[list[tuple[int, list[int]]]]]:
        """Batches of plain sequences, and batches of (prefix length, rows) groups sharing a prefix."""
        enc = self.enc
        groups: dict[tuple, list[int]] = {}
        for i in range(len(enc)):
            if enc.image_keys[i]:
                key = ("image", enc.image_keys[i])
            elif self.owners is not None:
                key = ("question", self.owners[i][0])
            else:
                key = ("alone", i)
            groups.setdefault(key, []).append(i)
        shared: list[tuple[bool, int, list[int]]] = []
        plain: list[int] = []
        for rows in groups.values():
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start:start + self.batch_size]
                n = _common_prefix([enc.ids[i] for i in chunk]) if len(chunk) > 1 and self.share_prefix else 0
                n = min([n] + [enc.prompt_len[i] - 1 for i in chunk])  # every suffix keeps the answer position
                end = self._image_end(chunk[0])
                if n >= max(MIN_SHARED, end):
                    shared.append((bool(enc.image_keys[chunk[0]]), n, chunk, end))
                else:
                    plain += chunk
        # Groups in one batch run the shortest of their prefixes, which must still hold every group's
        # whole image (LLaVA-NeXT, Qwen2-VL: images of other sizes have other token counts).
        packed: list[list[tuple[int, list[int]]]] = []
        for has_image, n, chunk, end in sorted(shared, key=lambda g: (g[0], g[1])):
            last = packed[-1] if packed else None
            fits = last and sum(len(r) for _, r in last) + len(chunk) <= self.batch_size and end <= last[0][0]
            if fits and bool(enc.image_keys[last[0][1][0]]) == has_image:
                last.append((n, chunk))
            else:
                packed.append([(n, chunk)])
        return batch_indices(enc, self.batch_size, subset=plain) if plain else [], packed

    def _image_end(self, i: int) -> int:
        """The position after sequence ``i``'s last image token (0 without an image)."""
        if not self.enc.image_keys[i]:
            return 0
        ids = self.enc.ids[i]
        return len(ids) - ids[::-1].index(self.image_token_id)

    def _forward(self, model) -> list:
        """One value per encoded sequence (letter logits, or mean answer log-likelihood), in order."""
        out: list = [None] * len(self.enc)
        device = next(model.parameters()).device
        self.computed_tokens = 0
        with bar(len(self.plain) + len(self.shared), f"scoring {len(self.questions)} questions") as pbar:
            for idx in self.plain:
                batch = {k: v.to(device) for k, v in collate(self.enc, idx, self.pad_id).items()}
                labels = batch.pop("labels")
                self.computed_tokens += batch["input_ids"].numel()
                self._read(model(**batch).logits, labels, idx, 0, out)
                pbar.update(1)
            for groups in self.shared:
                self._forward_shared(model, groups, device, out)
                pbar.update(1)
        return out

    def _forward_shared(self, model, groups: list[tuple[int, list[int]]], device, out) -> None:
        """The groups' common prefixes in one pass, then every row's suffix on a copy of its group's cache."""
        enc, n = self.enc, min(p for p, _ in groups)
        heads = [rows[0] for _, rows in groups]
        inputs = collate(enc, heads, self.pad_id, labels=False, ends=[n] * len(heads))
        inputs = {k: v.to(device) for k, v in inputs.items()}
        prefix = inputs["input_ids"]
        cache = model(**inputs, use_cache=True).past_key_values
        idx = [i for _, rows in groups for i in rows]
        cache.batch_select_indices(torch.tensor([g for g, (_, rows) in enumerate(groups) for _ in rows], device=device))
        width = max(len(enc.ids[i]) for i in idx) - n
        ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), n + width), dtype=torch.long)
        labels = torch.full((len(idx), width), IGNORE, dtype=torch.long)
        mask[:, :n] = 1
        for row, i in enumerate(idx):
            seq = enc.ids[i]
            ids[row, : len(seq) - n] = torch.tensor(seq[n:])
            mask[row, n: len(seq)] = 1
            labels[row, enc.prompt_len[i] - n: len(seq) - n] = torch.tensor(seq[enc.prompt_len[i]:])
        self.computed_tokens += prefix.numel() + ids.numel()
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), past_key_values=cache,
                       use_cache=True).logits
        self._read(logits, labels.to(device), idx, n, out)

    def _read(self, logits, labels, idx, offset: int, out) -> None:
        """Write each row's value into ``out``: logits of the letters at the answer position, or the
        mean answer log-likelihood. ``offset``: how many leading tokens ``logits`` lacks."""
        if self.owners is None:
            letter_ids = [self.token_ids[k] for k in self.letters]
            pos = torch.tensor([self.enc.prompt_len[i] - 1 - offset for i in idx], device=logits.device)
            values = logits[torch.arange(len(idx), device=logits.device), pos][:, letter_ids].float().tolist()
        else:
            total, count = sequence_logprobs(logits, labels)
            values = (total / count.clamp(min=1)).tolist()
        for row, value in zip(idx, values):
            out[row] = value


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    n = min(len(s) for s in seqs)
    for k in range(n):
        t = seqs[0][k]
        if any(s[k] != t for s in seqs[1:]):
            return k
    return n


def rotations(q: Question) -> list[Question]:
    """``q`` once per rotation of its options: rotation ``r`` puts option ``(i + r) % k`` under the
    i-th letter (rotation 0 is ``q``; the others get qid ``QID@r``)."""
    letters, texts = list(q.options), list(q.options.values())
    k, a = len(letters), letters.index(q.answer)
    out = []
    for r in range(k):
        options = {letters[i]: texts[(i + r) % k] for i in range(k)}
        out.append(Question(q.qid if r == 0 else f"{q.qid}@{r}", q.subject, q.modality, q.question, options,
                            letters[(a - r) % k], q.image, q.category))
    return out


class CircularScorer:
    """MMBench's circular evaluation: a question is right only if every rotation of its options is
    answered right. One Prediction per question: the right letter, or the first wrong rotation's
    answer mapped back to the original letters ("" if unparsed); scores are rotation 0's."""

    def __init__(self, questions: Sequence[Question], make):
        self.questions = list(questions)
        self.groups = [rotations(q) for q in self.questions]
        self.inner = make([r for g in self.groups for r in g])

    def __call__(self, model) -> list[Prediction]:
        preds = iter(self.inner(model))
        out = []
        for q, group in zip(self.questions, self.groups):
            got = [next(preds) for _ in group]
            letters = list(q.options)
            wrong = [(r, p) for r, p in enumerate(got) if not p.correct]
            if wrong:
                r, p = wrong[0]
                predicted = letters[(letters.index(p.predicted) + r) % len(letters)] if p.predicted in letters else ""
            else:
                predicted = q.answer
            out.append(Prediction(q.qid, q.subject, q.modality, q.answer, predicted, got[0].scores, q.category))
        return out


def score(model, encoder: Encoder, questions: Sequence[Question], scoring: str = "logits",
          batch_size: int = 64, share_prefix: bool = True) -> list[Prediction]:
    """Score once (encodes the questions); for repeated scoring keep a ``Scorer``."""
    return Scorer(encoder, questions, scoring, batch_size, share_prefix)(model)


def accuracy(preds: Sequence[Prediction]) -> dict[str, tuple[int, float]]:
    """(n, accuracy) per modality, plus ``all``; a modality without questions is left out."""
    out = {}
    for modality in (*MODALITIES, "all"):
        sel = [p for p in preds if modality in ("all", p.modality)]
        if sel:
            out[modality] = (len(sel), sum(p.correct for p in sel) / len(sel))
    return out
