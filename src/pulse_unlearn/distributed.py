"""Several processes (``accelerate launch``, ``torchrun``): data-parallel evaluation and training.

Under one process nothing here does anything. With ``WORLD_SIZE`` > 1 in the environment
(``accelerate launch --num_processes N``, ``torchrun``), ``setup()`` joins the process group
(NCCL on GPUs, gloo on CPU) through accelerate, each process takes the GPU of its local rank,
and then:
- evaluation: each process scores the questions of every N-th person (a person's questions
  stay together, so prefix sharing works as in one process); the predictions are gathered in
  the original order on every process, so accuracies equal those of one process;
- unlearning and fine-tuning: the model is wrapped by accelerate (DDP); each process takes
  every N-th batch of the same seeded batch order, gradients are averaged, so one step sees N
  batches; every process keeps the same weights;
- only the first process writes the run folder and the log.
"""

from __future__ import annotations

import os

import torch


def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def setup() -> int:
    """Join the process group when launched with several processes; returns the world size."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not (torch.distributed.is_available()
                                                            and torch.distributed.is_initialized()):
        from accelerate import PartialState

        PartialState()  # reads the launcher's environment, picks nccl or gloo, inits the group
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
        return make()
    out = make()
    barrier()
    return out


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


def wrap_for_training(model, optimizer):
    """(model for the forward passes with grad, optimizer, backward); DDP through accelerate when
    there are several processes, else the model itself and ``loss.backward``."""
    if world_size() == 1:
        return model, optimizer, lambda loss: loss.backward()
    from accelerate import Accelerator, DistributedDataParallelKwargs

    # Unused parameters: a text-only batch leaves the projector's adapter without gradient, and
    # two processes may hold batches of different modalities in the same step.
    accelerator = Accelerator(device_placement=False,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    return wrapped, optimizer, accelerator.backward


def my_batches(batches: list) -> list:
    """This process's share of a batch order that every process computed alike: every N-th batch,
    cut to the same count on every process (a DDP step needs all of them)."""
    n = world_size()
    if n == 1:
        return batches
    if len(batches) < n:
        return batches[:1]
    return batches[rank():len(batches) - len(batches) % n:n]
