"""What happens to an operation's gradients between its backward passes and the optimizer step,
and the extra loss terms that are not a method's own:

- ``GradientEdit``: GRU's projection (``unlearn.projection: gru``) and a method's saliency mask
  (``Method.saliency``), on the gradients the training loop left in ``.grad``. Under DDP every
  backward pass all-reduces, so every process edits the same gradients the same way.
- ``saliency_masks``: the mask itself, from NLL gradients of the starting model.
- ``orthogonality``: O-LoRA's penalty against the unit's earlier (stacked) adapters
  (``unlearn.adapters: orthogonal``), added to the forget term.

The formulas are in ``losses.py`` (tested by hand there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from . import losses

# One adapter's A matrices by the module they sit on (the module's full name in the plain model).
AdapterA = dict[str, torch.Tensor]


class GradientEdit:
    """The edits of one operation, on ``params`` (the trained parameters, in a fixed order).

    GRU: ``forget_done()`` after the forget term's backward pass moves g_f out of ``.grad``;
    ``retain_direction_done()`` after the retain-NLL backward pass folds that gradient into the
    running direction r and clears it; ``finish()`` (after the method's own retain term, if any,
    is in ``.grad``) adds the projected g_f. A saliency ``mask`` zeroes the masked-out entries'
    gradients in ``finish()``: with AdamW and no weight decay those entries then never move."""

    def __init__(self, params: list[torch.Tensor], projection: str = "none", gamma: float = 0.8,
                 mask: list[torch.Tensor] | None = None):
        self.params, self.project, self.gamma, self.mask = params, projection == "gru", gamma, mask
        self.direction: list[torch.Tensor | None] | None = None
        self._forget: list[torch.Tensor | None] | None = None

    def _take(self) -> list[torch.Tensor | None]:
        grads = [None if p.grad is None else p.grad.detach().clone() for p in self.params]
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()
        return grads

    def forget_done(self) -> None:
        if self.project:
            self._forget = self._take()

    def retain_direction_done(self) -> None:
        self.direction = losses.retain_ema(self.direction, self._take(), self.gamma)

    def finish(self) -> None:
        if self.project:
            for p, g in zip(self.params, losses.project_grads(self._forget, self.direction), strict=True):
                if g is None:
                    continue
                if p.grad is None:
                    p.grad = g.to(p.dtype).clone()
                else:
                    p.grad.add_(g.to(p.grad.dtype))
            self._forget = None
        if self.mask is not None:
            for p, m in zip(self.params, self.mask, strict=True):
                if p.grad is not None:
                    p.grad.mul_(m.to(p.grad.dtype))


def saliency_masks(params: list[torch.Tensor], pairs: Iterable[tuple[dict, dict]],
                   nll: Callable[[dict], torch.Tensor], threshold: float) -> tuple[list[torch.Tensor], int]:
    """The saliency mask s = E[g_f^2] / E[g_r^2] >= threshold over ``params``, the expectations over
    the (forget, retain) batch pairs, g the gradient of ``nll(batch)`` (the model as it is: the
    start of the operation). Returns the masks and how many entries may move. ``.grad`` is left
    cleared."""
    f_mean = r_mean = None
    count = 0
    for forget, retain in pairs:
        sq = []
        for batch in (forget, retain):
            for p in params:
                p.grad = None
            nll(batch).backward()
            sq.append([None if p.grad is None else p.grad for p in params])
        f_mean = losses.accumulate_sq_grads(f_mean, sq[0], count)
        r_mean = losses.accumulate_sq_grads(r_mean, sq[1], count)
        count += 1
    for p in params:
        p.grad = None
    zero = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    f_mean = [z if m is None else m for z, m in zip(zero, f_mean, strict=True)]
    r_mean = [z if m is None else m for z, m in zip(zero, r_mean, strict=True)]
    masks = losses.saliency_mask(losses.saliency(f_mean, r_mean), threshold)
    return masks, int(sum(m.sum() for m in masks))


def _module_of(key: str) -> str:
    """``base_model.model.<module>.lora_A[.<adapter>].weight`` -> ``<module>``."""
    head = key.split(".lora_A")[0]
    return head.removeprefix("base_model.model.")


def a_matrices(state: dict[str, torch.Tensor]) -> AdapterA:
    """The A matrices of an adapter's state dict as peft saves it (``...<module>.lora_A.weight``)."""
    return {_module_of(k): v for k, v in state.items() if ".lora_A." in k}


def orthogonality(peft_model, previous: list[AdapterA]) -> Callable[[], torch.Tensor]:
    """L_orth = sum over modules and earlier adapters of ||A_i A_t^T||^2 for the current adapter's
    A_t (``losses.orthogonality_penalty``); a module an earlier adapter did not have adds 0."""
    current = [(_module_of(name), p) for name, p in peft_model.named_parameters()
               if ".lora_A." in name and p.requires_grad]

    def penalty() -> torch.Tensor:
        total = None
        for module, a in current:
            olds = [prev[module].to(a.device) for prev in previous if module in prev]
            if olds:
                term = losses.orthogonality_penalty(a, olds)
                total = term if total is None else total + term
        return total if total is not None else torch.zeros((), device=current[0][1].device if current else "cpu")

    return penalty
