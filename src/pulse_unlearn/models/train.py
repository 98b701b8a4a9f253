"""Training loops for the world's models: pre-training from scratch and LoRA fine-tuning.

Loss on answer tokens only. Batches are single-modality. The schedule is explicit: a fixed
number of steps, AdamW with linear warm-up then cosine decay; an optional first stage
trains on image captions only (image -> name), which a from-scratch vision tower needs
before it can carry facts (seen in the feasibility trial: without it image questions stall).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict

from .. import distributed
from ..data.batches import Encoder, EncodedSet, batch_indices, collate, pack, sequence_ids
from ..errors import PulseError
from ..data.batches import IGNORE
from ..logprobs import answer_nll
from ..progress import bar
from ..records import Example


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 30
    weight_decay: float = 0.0
    caption_stage: float = 0.0  # share of steps that train on sources in ``caption_sources`` only
    caption_sources: tuple[str, ...] = ("caption",)
    # Training-time image noise (std, in [0, 1] pixel units). 0.05, not 0.1: the general benchmark's
    # shape and count items read edges of a few pixels (benchmarks/README.md, session 4).
    noise: float = 0.05
    shift: int = 2  # random translation, pixels
    brightness: float = 0.1
    # Pack a step's sequences several to a row of at most this many tokens (0: one per row,
    # padded). Same loss, fewer computed tokens; needs a model whose positions are plain
    # 1-D ``position_ids`` (LLaVA-style; not Qwen2-VL's multimodal rotary positions).
    pack_len: int = 0
    # "token": the mean NLL over all answer tokens of a step; "sequence": every sequence weighs
    # the same (its mean answer-token NLL), so long answers do not drown short facts.
    weighting: Literal["token", "sequence"] = "token"
    seed: int = 0


def augment(pixels: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random shift, brightness and noise on normalised pixels (values in about [-1, 1]); only for
    one (C, H, W) image per row, the layout of the world's LLaVA (patch layouts have no meaning here)."""
    if not (cfg.shift or cfg.brightness or cfg.noise):
        return pixels
    if pixels.dim() != 4:
        raise PulseError(f"image augmentation needs pixel_values of shape (N, C, H, W), got {tuple(pixels.shape)}")
    out = pixels  # every step below makes a new tensor
    n, h, w = out.shape[0], out.shape[2], out.shape[3]
    if cfg.shift:
        # Shift by cropping a window of the edge-padded image: what moves in is the border's
        # colour (the background), never the opposite edge as with a roll, which would cut a
        # shape near the border in two (a wrong count) or move part of a face across.
        s = cfg.shift
        padded = torch.nn.functional.pad(out, (s, s, s, s), mode="replicate")
        d = torch.randint(0, 2 * s + 1, (n, 2), generator=gen)
        out = torch.stack([padded[i, :, y:y + h, x:x + w] for i, (y, x) in enumerate(d.tolist())])
    if cfg.brightness:
        out = out * (1 + cfg.brightness * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1))
    if cfg.noise:
        out = out + 2 * cfg.noise * torch.randn(out.shape, generator=gen)
    return out


@contextmanager
def head_on_answers(model, labels: torch.Tensor) -> Iterator[None]:
    """Inside, the model runs its output layer only at the positions that predict an answer
    token, and its logits come back as (answer tokens, vocabulary) in row-major order.

    Why: answers are a few tokens of each sequence (about 2 of 35 in the world's corpus),
    so the output layer and the vocabulary-wide softmax elsewhere are wasted work; on a
    real LLaVA the full (tokens x 32k) logits are also the largest activation. A hook on
    the output layer does it for any wrapper (peft, DDP) without rebuilding the inputs.
    """
    predicts = torch.zeros_like(labels, dtype=torch.bool)
    predicts[:, :-1] = labels[:, 1:] != IGNORE
    handle = model.get_output_embeddings().register_forward_pre_hook(lambda _m, args: (args[0][predicts],))
    try:
        yield
    finally:
        handle.remove()


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _batches(enc: EncodedSet, cfg: TrainConfig, gen: torch.Generator, subset: Sequence[int] | None):
    """Endless single-modality batches, reshuffled every epoch."""
    while True:
        yield from batch_indices(enc, cfg.batch_size, gen, subset)


def train(model, encoder: Encoder, examples: Sequence[Example], cfg: TrainConfig, desc: str = "train",
          local: bool = False) -> list[float]:
    """Train ``model`` in place on ``examples``; returns the loss of every step. Several processes
    train data-parallel, unless ``local``: then each trains on every batch by itself, with no
    collectives (a few steps on a model every process holds whole, e.g. a recovery attack's)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    enc = encoder.encode(examples)
    pad = encoder.tokenizer.pad_token_id
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    first = [i for i, ex in enumerate(examples) if ex.source in cfg.caption_sources]
    stage_steps = int(cfg.caption_stage * cfg.steps) if first else 0
    stream = _batches(enc, cfg, gen, first) if stage_steps else _batches(enc, cfg, gen, None)
    device = next(model.parameters()).device
    # Several processes: DDP around the model; each step, process r takes the r-th of the next N batches.
    training = distributed.wrap_for_training(model, opt, local)
    procs, rank = (1, 0) if local else (distributed.world_size(), distributed.rank())
    trained, opt = training.model, training.optimizer
    model.train()
    losses = []
    with bar(cfg.steps, desc) as pbar:
        for step in range(cfg.steps):
            if step == stage_steps and stage_steps:
                stream = _batches(enc, cfg, gen, None)
            idx = [next(stream) for _ in range(procs)][rank]
            batch = pack(enc, idx, pad, cfg.pack_len) if cfg.pack_len else collate(enc, idx, pad)
            if "pixel_values" in batch:
                batch["pixel_values"] = augment(batch["pixel_values"], cfg, gen)
            batch = {k: v.to(device) for k, v in batch.items()}
            labels = batch.pop("labels")
            segments = sequence_ids(batch) if cfg.weighting == "sequence" else None
            with head_on_answers(model, labels):
                loss = answer_nll(trained(**batch, use_cache=False).logits, labels, segments)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            training.backward(loss)
            training.clip(1.0)
            opt.step()
            losses.append(loss.item())
            pbar.update(1)
            if step % 20 == 0:
                pbar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return losses
