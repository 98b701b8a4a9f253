"""``mia``: membership inference on the forget people's training facts.

Can the model's losses still tell the facts it was fine-tuned on from facts of people it never
saw? Members are the forget people's training facts; non-members are the training-style facts
(the same generator and templates: ``ft_Data``, or the Generation_Task items where there is no
``ft_Data``) of people of the same population that were never trained on: the fictitious people
outside ``splits.finetune_people``. The starting model should separate them (AUC above 0.5);
after unlearning that removed the knowledge, 0.5: indistinguishable. Below 0.5 the members look
*less* likely than facts never seen (over-forgetting, which gives them away too). The pretrained
scenario's celebrities were all in pre-training, so there it does not apply. The non-members are
never-trained only if the fine-tuned model learnt exactly the run's ``splits.finetune_people``
(the run fine-tunes them itself unless ``model.finetuned`` is given).

Per fact, from the answer tokens' log-probabilities ``l_1..l_T`` (teacher-forced, answer-only, no
end-of-text token: the project's convention, as in ``facts.py``), each score oriented so that
higher = more likely a member:

- ``loss``: ``-NLL`` with ``NLL = -(1/T) sum_t l_t``, the mean answer-token NLL;
- ``zlib``: ``-NLL / Z`` (Carlini et al. 2021: log-perplexity over zlib entropy), with the same
  mean ``NLL`` and ``Z`` = the length in bytes of ``zlib.compress(answer.encode("utf-8"))``
  (default level), the answer text alone;
- ``mink``: Min-K% Prob (Shi et al. 2023), the mean of the ``ceil(k T)`` lowest ``l_t``
  (for 2-3-token facts at k = 0.2: the lowest one).

``AUC = P(s_member > s_nonmember) + 0.5 P(s_member = s_nonmember)`` over all member/non-member
pairs (the Mann-Whitney U / (n m)), exact: ties count half. Seeded equal-size samples per
modality (at most ``max_items`` each side), the same on every model of a scenario; rows per
modality and ``all`` (their union) where both are present; ``n`` = members + non-members.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from ...core.names import unknown_name
from ...data.batches import IGNORE, batch_indices, collate
from ... import draws
from ...draws import finetune_people
from ...records import CONCEPTS, MODALITIES, split_key
from ..facts import FactItem, fact_items
from .base import ATTACKS, Attack, AttackContext, AttackParams, Distinct, Outcome

SCORES = ("loss", "zlib", "mink")


def zlib_bytes(text: str) -> int:
    """Length in bytes of ``text`` (UTF-8) compressed by zlib at its default level."""
    return len(zlib.compress(text.encode("utf-8")))


def loss_score(logps) -> float:
    """``-NLL = (1/T) sum_t l_t``: the mean answer-token log-probability."""
    return float(np.mean(logps))


def zlib_score(logps, text: str) -> float:
    """``-NLL / zlib_bytes(text)``, NLL the mean answer-token NLL."""
    return loss_score(logps) / zlib_bytes(text)


def mink_score(logps, k: float = 0.2) -> float:
    """Mean of the ``ceil(k T)`` lowest of the ``T`` token log-probabilities."""
    low = sorted(logps)[:max(1, math.ceil(k * len(logps) - 1e-9))]
    return float(np.mean(low))


def score(name: str, logps, text: str, k: float = 0.2) -> float:
    if name == "loss":
        return loss_score(logps)
    if name == "zlib":
        return zlib_score(logps, text)
    if name == "mink":
        return mink_score(logps, k)
    raise ValueError(unknown_name("score", name, SCORES))


def auc(members, nonmembers) -> float:
    """``P(s_m > s_n) + 0.5 P(s_m = s_n)`` over all pairs, from mid-ranks of the pooled scores:
    ``(R_m - n(n+1)/2) / (n m)``, ``R_m`` the members' rank sum (tied scores share their mean rank)."""
    a, b = np.asarray(members, dtype=float), np.asarray(nonmembers, dtype=float)
    if not len(a) or not len(b):
        raise ValueError("auc needs at least one member and one non-member score")
    pooled = np.concatenate([a, b])
    values, inverse, counts = np.unique(pooled, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mid = ends - (counts - 1) / 2  # the mean 1-based rank of each distinct value
    ranks = mid[inverse]
    u = ranks[:len(a)].sum() - len(a) * (len(a) + 1) / 2
    return float(u / (len(a) * len(b)))


class MiaParams(AttackParams):
    scores: Annotated[list[Literal[SCORES]], Distinct] = Field(default_factory=lambda: list(SCORES), min_length=1)
    k: float = Field(0.2, gt=0, le=1)  # Min-K%: the share of lowest token log-probs averaged
    max_items: int = Field(250, ge=1, le=100_000)  # facts per side and modality



def trained_people(ctx: AttackContext) -> set[str]:
    """The fictitious people the fine-tuned model learnt (the run's seeded draw), and the
    scenario's forget and retain people."""
    cfg, src, sets = ctx.evaluator.cfg, ctx.evaluator.src, ctx.evaluator.sets
    drawn = finetune_people(list(src.fictitious), min(cfg.splits.finetune_people, len(src.fictitious)),
                            cfg.model.world_seed)
    return set(drawn) | set(sets.forget) | set(sets.retain)


def never_trained(ctx: AttackContext) -> list[str]:
    """Fictitious people outside the fine-tuned ones that have training facts, sorted."""
    src, trained = ctx.evaluator.src, trained_people(ctx)
    return sorted(pid for pid in src.fictitious if pid not in trained and src.facts.get(pid))


def _draw(items: list, n: int, rng) -> list:
    return [items[i] for i in sorted(rng.permutation(len(items))[:n])]


def samples(ctx: AttackContext, max_items: int) -> dict[str, tuple[list[FactItem], list[FactItem]]]:
    """Per modality: (members, non-members), equal-size seeded draws of at most ``max_items``;
    a modality missing on either side is left out."""
    src = ctx.evaluator.src
    members = [it for it in fact_items(src, ctx.evaluator.sets.forget) if it.example.answer.strip()]
    others = [it for it in fact_items(src, never_trained(ctx)) if it.example.answer.strip()]
    rng = draws.rng(ctx.evaluator.cfg.seed, "mia_samples")
    out = {}
    for m in MODALITIES:
        mem, non = [it for it in members if it.modality == m], [it for it in others if it.modality == m]
        n = min(len(mem), len(non), max_items)
        if n:
            out[m] = (_draw(mem, n, rng), _draw(non, n, rng))
    return out


def answer_token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> list[list[float]]:
    """Per sequence, the log-probability of each answer token given everything before it
    (logits at t predict the token at t+1); the softmax runs on answer positions only."""
    targets = labels[:, 1:]
    mask = targets != IGNORE
    logp = torch.log_softmax(logits[:, :-1][mask].float(), dim=-1)
    picked = logp.gather(-1, targets[mask].unsqueeze(-1)).squeeze(-1).tolist()
    out, start = [], 0
    for count in mask.sum(-1).tolist():
        out.append(picked[start:start + count])
        start += count
    return out


def _encoded(ctx: AttackContext, items: list[FactItem]):
    """The items encoded once per run (kept in the evaluator's shared scorers)."""
    e = ctx.evaluator
    shared = getattr(e, "shared", {})
    key = ("mia", getattr(e, "signature", ""), hashlib.sha256("|".join(it.qid for it in items).encode()).hexdigest())
    if key not in shared:
        shared[key] = e.encoder.encode([it.example for it in items], add_eos=False)
    return shared[key]


@torch.no_grad()
def token_logprobs(model, ctx: AttackContext, items: list[FactItem]) -> dict[str, list[float]]:
    """Each item's answer-token log-probabilities on ``model`` (its training mode restored)."""
    enc, pad_id = _encoded(ctx, items), ctx.evaluator.encoder.tokenizer.pad_token_id
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    out = {}
    try:
        for idx in batch_indices(enc, ctx.evaluator.cfg.eval_batch_size):
            batch = {k: v.to(device) for k, v in collate(enc, idx, pad_id).items()}
            labels = batch.pop("labels")
            for i, lp in zip(idx, answer_token_logprobs(model(**batch).logits, labels)):
                out[items[i].qid] = lp
    finally:
        model.train(was_training)
    return out


@ATTACKS.register
class Mia(Attack):
    name = "mia"
    reads_weights = True
    Params = MiaParams
    splits: ClassVar[tuple[str, ...]] = ("forget_facts",)
    fixed_splits = True

    def does_not_apply(self, ctx: AttackContext) -> str | None:
        sets = ctx.evaluator.sets
        population = split_key(sets.forget[0])[0]
        if population in CONCEPTS:
            return "a concepts scenario: no never-trained people or events of its data to compare with"
        if population != "fictitious":
            return (f"the forget people are {population} people, all of them in the base model's training: "
                    "no never-trained people of their population to compare with")
        if not never_trained(ctx):
            n = len(ctx.evaluator.src.fictitious)
            return (f"every fictitious person with training facts is fine-tuned on (splits.finetune_people="
                    f"{ctx.evaluator.cfg.splits.finetune_people} of {n}): no never-trained people to compare with")
        if not samples(ctx, 1):
            return "the forget and the never-trained people's facts share no modality"
        return None

    def __call__(self, model, ctx: AttackContext) -> list[Outcome]:
        drawn = samples(ctx, self.max_items)
        if len(drawn) > 1:
            drawn["all"] = tuple([it for mem_non in drawn.values() for it in mem_non[side]] for side in (0, 1))
        items = [it for m in MODALITIES if m in drawn for side in drawn[m] for it in side]
        logps = token_logprobs(model, ctx, items)
        out = []
        for name in self.scores:
            rows = []
            for modality, (mem, non) in drawn.items():
                s_mem = [score(name, logps[it.qid], it.example.answer, self.k) for it in mem]
                s_non = [score(name, logps[it.qid], it.example.answer, self.k) for it in non]
                rows.append({"modality": modality, "n": len(mem) + len(non), "metric": "auc",
                             "value": round(auc(s_mem, s_non), 6)})
            out.append(Outcome(f"score={name}", "forget_facts", rows=rows))
        return out
