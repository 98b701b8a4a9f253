"""``relearn`` and ``relearn_retain``: a few LoRA fine-tuning steps, then the forget questions of
people the fine-tuning never saw.

Fine-tuning an unlearned model on a few related facts brings most of the removed knowledge back
when the unlearning only hid it (Deeb & Roger, arXiv 2410.08827: 88% of the pre-unlearning
accuracy). Here:

- ``relearn``: the training facts of ``share`` of the forget people (n = round(share x forget
  people), at least 1 and at most all but 1), drawn by the run seed, the attack's ``seed`` and
  the salt ``relearn``: the same people for the starting model and every unit of a scenario;
- ``relearn_retain``: as many training facts (cut to the same count) of retain people, drawn in
  seeded order ("benign" relearning: does fine-tuning on anything lift the forgetting?); in a
  concepts scenario only facts whose image shows no forget concept, as the retain split's;
- both scored on the forget questions of the *other* forget people (the same held-out people
  for both), so ``unlearned`` in attacks.csv is the plain accuracy on exactly those people.

Training: a fresh LoRA adapter of the run's ``unlearn.lora`` shape on the language model's
linears, ``steps`` AdamW steps of ``batch_size`` facts with the answer-only loss of
``models/train.py: train`` (cosine decay from ``lr``, no warm-up, no image augmentation). The
default 20 steps are a small budget: on the demo's 10-person requests (36 facts each) an
unlearning epoch is 23 steps of 16 facts, so relearning gets less compute than one epoch of
the unlearning it tests. ``lr``, ``batch_size`` default to the run's ``unlearn`` values: a
rate known to move this model in a few steps. The adapter is removed after scoring (peft's
``unload``, no merge), the parameters' trainable flags, the train/eval mode and torch's global
random state are put back: the model handed in leaves exactly as it came.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import torch
from pydantic import Field

from ...draws import choose
from ...models.lora import attach_lora, lora_targets
from ...models.train import TrainConfig, train
from ..splits import SPLITS
from .base import ATTACKS, Attack, AttackContext, AttackParams, Outcome


class RelearnParams(AttackParams):
    share: float = Field(0.2, gt=0, lt=1)  # of the forget people, trained on
    steps: int = Field(20, ge=1, le=100_000)  # optimizer steps
    lr: float | None = Field(None, gt=0, le=1)  # None: the run's unlearn.lr
    batch_size: int | None = Field(None, ge=1, le=4096)  # None: the run's unlearn.batch_size
    seed: int = Field(0, ge=0, le=2**32 - 1)  # with the run seed: the people drawn and the training


def split_people(forget, share: float, seed: int, attack_seed: int) -> tuple[list[str], list[str]]:
    """(trained, held out), both sorted: round(share x n) of the n forget people drawn to train
    on (at least 1, at most n - 1), the rest scored."""
    n = len(forget)
    k = min(n - 1, max(1, int(share * n + 0.5)))
    trained = sorted(choose(forget, k, seed, "relearn", attack_seed))
    return trained, sorted(set(forget) - set(trained))


def retain_facts(src, retain, count: int, seed: int, attack_seed: int, forget=()) -> list:
    """``count`` training facts of retain people, people in seeded draw order, each person's
    facts in their order (fewer when the retain people have fewer; people without facts skipped),
    none whose image shows a ``forget`` concept (``src.away_from``)."""
    order = choose(retain, len(retain), seed, "relearn_retain", attack_seed)
    out = []
    for pid in order:
        if len(out) >= count:
            break
        out += src.away_from(src.facts.get(pid) or [], forget)
    return out[:count]


def train_seed(run_seed: int, attack_seed: int) -> int:
    """The adapter's initialisation and the batch order: the same for both attacks, so that their
    difference is the data they train on."""
    return int.from_bytes(hashlib.sha256(f"{run_seed}|relearn|{attack_seed}".encode()).digest()[:4], "little")


def relearned(model, ctx: AttackContext, examples: list, scored: list, params: RelearnParams, seed: int):
    """(predictions on ``scored`` after fine-tuning on ``examples``, the loss of every step);
    ``model`` is left exactly as it came."""
    e = ctx.evaluator
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    device = next(model.parameters()).device
    cfg = TrainConfig(steps=params.steps, batch_size=params.batch_size or e.cfg.unlearn.batch_size,
                      lr=params.lr or e.cfg.unlearn.lr, warmup=0, noise=0.0, shift=0, brightness=0.0, seed=seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # peft draws the adapter's A matrices from the global RNG
        peft_model = attach_lora(model, e.cfg.unlearn.lora, lora_targets(model, "llm"))
        try:
            # Every process trains its own copy on every batch: the same adapter everywhere, as
            # in one process, and no sharding of a model the sharded scorers then read.
            losses = train(peft_model, e.encoder, examples, cfg, desc="relearn", local=True)
            preds = e.scorer("forget", scored)(peft_model)
        finally:
            base = peft_model.unload()
            for name, p in base.named_parameters():
                p.requires_grad_(flags[name])
            base.train(was_training)
    return preds, losses


@ATTACKS.register
class Relearn(Attack):
    name = "relearn"
    reads_weights = True
    Params = RelearnParams
    splits: ClassVar[tuple[str, ...]] = ("forget",)
    fixed_splits = True

    @property
    def setting(self) -> str:
        return f"share={self.share},steps={self.steps}"

    def people(self, ctx: AttackContext) -> tuple[list[str], list[str]]:
        """(trained forget people, held-out forget people)."""
        return split_people(ctx.evaluator.sets.forget, self.share, ctx.evaluator.cfg.seed, self.seed)

    def examples(self, ctx: AttackContext, trained: list[str]) -> list:
        return ctx.evaluator.src.facts_of(trained)

    def does_not_apply(self, ctx: AttackContext) -> str | None:
        if len(ctx.evaluator.sets.forget) < 2:
            return "needs 2 or more forget people (some to train on, the others scored)"
        missing = [pid for pid in self.people(ctx)[0] if not ctx.evaluator.src.facts.get(pid)]
        if missing:
            return f"no training facts for the forget person {missing[0]} drawn to train on"
        return None

    def __call__(self, model, ctx: AttackContext) -> list[Outcome]:
        trained, held_out = self.people(ctx)
        held = set(held_out)
        scored = [q for q in SPLITS["forget"].items(ctx.split_context) if q.subject in held]
        preds, self.losses = relearned(model, ctx, self.examples(ctx, trained), scored, self.params,
                                       train_seed(ctx.evaluator.cfg.seed, self.seed))
        return [Outcome(self.setting, "forget", preds)]


@ATTACKS.register
class RelearnRetain(Relearn):
    name = "relearn_retain"

    def does_not_apply(self, ctx: AttackContext) -> str | None:
        why = super().does_not_apply(ctx)
        e = ctx.evaluator
        if why is None and not retain_facts(e.src, e.sets.retain, 1, e.cfg.seed, self.seed, e.sets.forget):
            return "no retain person has training facts (away from the forget images)"
        return why

    def examples(self, ctx: AttackContext, trained: list[str]) -> list:
        e = ctx.evaluator
        return retain_facts(e.src, e.sets.retain, len(e.src.facts_of(trained)), e.cfg.seed, self.seed,
                            e.sets.forget)
