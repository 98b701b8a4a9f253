"""Several processes (``accelerate launch``, ``torchrun``): data-parallel evaluation and training.

Under one process nothing here does anything. With ``WORLD_SIZE`` > 1 in the environment
(``accelerate launch --num_processes N``, ``torchrun``), ``setup()`` joins the process group
(NCCL on GPUs, gloo on CPU) through accelerate, each process takes the GPU of its local rank,
and then:
- evaluation: each process scores the questions of every N-th person (a person's questions
  stay together, so prefix sharing works as in one process); the predictions are gathered in
  the original order on every process, so accuracies equal those of one process;
- unlearning and fine-tuning, DDP (``--multi_gpu``): the model is wrapped by accelerate; each
  process takes every N-th batch of the same seeded batch order, gradients are averaged, so one
  step sees N batches; every process keeps the same weights;
- unlearning, FSDP (``--use_fsdp --fsdp_version 2``): accelerate shards the LoRA model (FSDP2,
  frozen base weights) across the processes to pool their memory; every process runs the
  one-process batch order, so the results are those of one process; afterwards the weights are
  gathered into a plain model on every process (``Training.finish``);
- only the first process writes the run folder and the log.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

_alone = False  # inside ``main_first``: the process works by itself


def world_size() -> int:
    if not _alone and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def rank() -> int:
    if not _alone and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def fsdp() -> bool:
    """Launched with an accelerate FSDP config (``--use_fsdp`` or a config file saying FSDP)."""
    return world_size() > 1 and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def setup() -> int:
    """Join the process group when launched with several processes; returns the world size."""
    from .errors import PulseError

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not (torch.distributed.is_available()
                                                            and torch.distributed.is_initialized()):
        from accelerate import PartialState

        # Reads the launcher's environment, picks nccl or gloo, inits the group. Without cpu=True
        # accelerate leaves a CPU launch at DistributedType.NO, whose prepare() wraps nothing.
        PartialState(cpu=not torch.cuda.is_available())
    if fsdp() and os.environ.get("FSDP_VERSION", "1") != "2":
        raise PulseError("FSDP: only FSDP2 is supported (LoRA with frozen base weights); launch with "
                         "--use_fsdp --fsdp_version 2 (or fsdp_version: 2 in the accelerate config)")
    return world_size()


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()


def main_first(make):
    """``make()`` on the first process, then on the others (which then find its result cached):
    for world/model building and fine-tuning, which write to the cache."""
    if world_size() == 1:
        return make()
    if not is_main():
        barrier()
        return _by_itself(make)
    out = _by_itself(make)
    barrier()
    return out


def _by_itself(make):
    """``make()`` as one process: training inside it neither waits for the others (which are
    at the barrier) nor takes only every N-th batch (the cached result must not depend on N)."""
    global _alone
    _alone = True
    try:
        return make()
    finally:
        _alone = False


def gather(items: list) -> list[list]:
    """Every process's list, in rank order, on every process."""
    if world_size() == 1:
        return [items]
    out: list = [None] * world_size()
    torch.distributed.all_gather_object(out, items)
    return out


def any_true(flag: bool) -> bool:
    """True on every process if it is true on any (e.g. a diverged loss)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([float(flag)])
    if torch.distributed.get_backend() == "nccl":
        t = t.cuda()
    torch.distributed.all_reduce(t)
    return bool(t.item() > 0)


class ShardedScorer:
    """Scores each process's share of the people, gathers the predictions in the original order."""

    def __init__(self, questions, make):
        self.questions = list(questions)
        subjects = sorted({q.subject for q in self.questions})
        mine = {s for k, s in enumerate(subjects) if k % world_size() == rank()}
        self.index = [i for i, q in enumerate(self.questions) if q.subject in mine]
        self.inner = make([self.questions[i] for i in self.index]) if self.index else None

    def __call__(self, model) -> list:
        preds = self.inner(model) if self.inner is not None else []
        out: list = [None] * len(self.questions)
        for index, part in zip(gather(self.index), gather(preds)):
            for i, p in zip(index, part):
                out[i] = p
        return out


@dataclass
class Training:
    """What a training loop uses: ``model`` for the forward passes with grad, the optimizer,
    ``backward(loss)``, ``clip(max_norm)``, and ``finish()``, the trained model as a plain
    (unwrapped, unsharded) model on every process."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    backward: Callable
    clip: Callable
    finish: Callable


def wrap_for_training(model, optimizer, local: bool = False) -> Training:
    """One process, or ``local``: the model itself (no collectives; with ``local`` every process
    trains its own whole copy alike). Several: DDP through accelerate, or FSDP2 when launched
    with an FSDP config (``model`` must then be a peft model: only its adapter trains)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if local or world_size() == 1:
        return Training(model, optimizer, lambda loss: loss.backward(),
                        lambda norm: torch.nn.utils.clip_grad_norm_(params, norm), lambda: model)
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    # Unused parameters: a text-only batch leaves the projector's adapter without gradient, and
    # two processes may hold batches of different modalities in the same step.
    accelerator = Accelerator(device_placement=False,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    if fsdp() and accelerator.distributed_type == DistributedType.MULTI_CPU:
        # accelerate 1.15 keeps CPU launches at MULTI_CPU and drops the FSDP plugin, yet its FSDP2
        # preparation and torch's FSDP2 run on CPU over gloo: FSDP is switched on for prepare()
        # (which puts MULTI_CPU back; backward and clipping are the same calls for FSDP2).
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin()
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    sharded = isinstance(wrapped, torch.distributed.fsdp.FSDPModule)
    trained = [p for p in wrapped.parameters() if p.requires_grad]  # FSDP2 swaps in sharded parameters
    return Training(wrapped, optimizer, accelerator.backward,
                    lambda norm: accelerator.clip_grad_norm_(trained, norm),
                    (lambda: _unshard(wrapped)) if sharded else (lambda: model))


def _unshard(peft_model):
    """An FSDP2-sharded peft model as a plain one on every process: the full state dict is
    gathered and assigned into the same architecture built on the meta device (no weights are
    allocated besides the gathered ones)."""
    from peft import get_peft_model
    from torch.distributed.tensor import DTensor

    # Each shard is all-gathered, in the state dict's order (the same on every process).
    state = {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in peft_model.state_dict().items()}
    base = peft_model.get_base_model()
    with torch.device("meta"):
        plain = get_peft_model(type(base)(base.config), peft_model.peft_config[peft_model.active_adapter])
    plain.load_state_dict(state, assign=True)
    for name, buffer in peft_model.named_buffers():  # non-persistent ones (rotary tables) are not in the state dict
        module, _, leaf = name.rpartition(".")
        plain.get_submodule(module)._buffers[leaf] = buffer
    with contextlib.suppress(AttributeError):
        plain.get_base_model().tie_weights()
    left = [n for n, t in [*plain.named_parameters(), *plain.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"FSDP: {len(left)} tensor(s) missing from the gathered state dict, e.g. {left[0]}")
    return plain.eval()


def my_batches(batches: list) -> list:
    """This process's share of a batch order that every process computed alike: every N-th batch,
    cut to the same count on every process (a DDP step needs all of them); under FSDP all of them
    (the model is sharded, not the data)."""
    n = world_size()
    if n == 1 or fsdp():
        return batches
    if len(batches) < n:
        return batches[:1]
    return batches[rank():len(batches) - len(batches) % n:n]
