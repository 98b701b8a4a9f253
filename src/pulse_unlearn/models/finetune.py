"""Fine-tune a user's checkpoint on the chosen fictitious people (scenarios 1 and 3).

MLLMU-Bench's recipe, with the loss on answer tokens only (MLLMU-Bench's script trains on the
whole prompt): LoRA (r 16, alpha 16, dropout 0.05) on every Linear of the language model (not
the projector, vision tower or output head), AdamW at 2e-5, 5 epochs of batch 4 over the
people's ft_Data pairs. The adapter is merged and the model saved (safetensors) in the cache
under a key of the base model's fingerprint, the examples and the settings, so a second run
with the same inputs loads it instead of training again. With several processes the training
is data-parallel (DDP; N batches per step, so the number of steps is divided by N) and the
first process saves the model; under FSDP it is refused (training in place, then merging, needs
the whole model in each process).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import torch

from ..records import Example


def finetune_key(base_fingerprint: str, examples: list[Example], settings: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": 1, "base": base_fingerprint, "settings": settings}, sort_keys=True).encode())
    for ex in examples:
        h.update(f"{ex.prompt}\x00{ex.answer}\x00".encode())
        h.update(hashlib.sha1(ex.image).digest() if ex.image is not None else b"-")
    return h.hexdigest()[:16]


def _flat_settings(cfg) -> dict:
    """The settings with the adapter's as ``lora_rank``, ``lora_alpha``, ``lora_dropout``: the cache
    key's form, under which checkpoints fine-tuned earlier are found again."""
    flat = cfg.model_dump(exclude={"lora"})
    return {**flat, **{f"lora_{k}": v for k, v in cfg.lora.model_dump().items()}}


def finetune_checkpoint(base: str | Path, examples: list[Example], cfg, cache: Path, dtype: str = "auto",
                        device: str = "auto", trust_remote_code: bool = False, gradient_checkpointing: bool = False,
                        log=print) -> Path:
    """``base`` LoRA-fine-tuned on ``examples`` (``cfg``: a FinetuneConfig), merged; cached."""
    from .. import distributed
    from ..data.batches import Encoder
    from ..runs.store import model_fingerprint
    from .load import load_model
    from .lora import attach_lora, lora_targets
    from .train import TrainConfig, train
    from .world_models import _save

    settings = {**_flat_settings(cfg), "dtype": dtype}
    out = Path(cache) / f"finetuned-{finetune_key(model_fingerprint(base), examples, settings)}"
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        log(f"fine-tuned model: cached at {out}")
        return out
    if distributed.fsdp():
        from ..errors import PulseError

        raise PulseError("the in-run fine-tuning runs under one process or DDP, not FSDP: run it once without FSDP "
                         "(it is cached) or pass model.finetuned=DIR")
    t0 = time.time()
    model, processor = load_model(base, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    torch.manual_seed(cfg.seed)
    peft_model = attach_lora(model, cfg.lora, lora_targets(model, "llm"))
    if gradient_checkpointing:
        peft_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    encoder = Encoder(processor)
    # Batches are single-modality: an epoch is ceil(n / batch) per modality (counted, not encoded:
    # train() encodes the examples itself).
    n_image = sum(ex.image is not None for ex in examples)
    n_batches = sum(math.ceil(n / cfg.batch_size) for n in (n_image, len(examples) - n_image))
    steps = max(1, math.ceil(cfg.epochs * n_batches / distributed.world_size()))
    tcfg = TrainConfig(steps=steps, batch_size=cfg.batch_size, lr=cfg.lr,
                       warmup=cfg.warmup, noise=0.0, shift=0, brightness=0.0, seed=cfg.seed)
    losses = train(peft_model, encoder, examples, tcfg, desc="fine-tuning (LoRA)")
    if gradient_checkpointing:
        peft_model.gradient_checkpointing_disable()
    merged = peft_model.merge_and_unload()
    tail = losses[-max(1, n_batches):]
    if distributed.is_main():
        _save(merged, processor, out, {"kind": "finetuned", "base": str(base), "settings": settings,
                                       "examples": len(examples), "steps": tcfg.steps,
                                       "processes": distributed.world_size(),
                                       "final_loss": float(sum(tail) / len(tail)), "seconds": time.time() - t0})
    distributed.barrier()
    log(f"fine-tuned model: {len(examples)} examples, {tcfg.steps} steps in {time.time() - t0:.0f} s -> {out}")
    return out
