"""``quantize``: the model's weights rounded to 4 or 8 bits, then forget and retain scored again.

Unlearning by small weight updates can sit below the quantization step: rounding the unlearned
weights and the starting weights to the same grid can land both on the same values, and the
forgotten answers come back (the quantization attack on LLM unlearning used bitsandbytes' NF4
and int8). Each setting quantizes a copy of the model (``models/quantize.py``: bitsandbytes
where it runs, else torchao; the layers transformers' quantizers convert by default), scores
it with the plain splits' scorers and frees it. The starting model is quantized the same way
(it is the attack's baseline), so ``recovery`` measures what rounding brings back beyond plain
quantization loss. The setting names the library and scheme that ran, e.g.
``bits=4 (bitsandbytes nf4, block 64)``: baseline and unlearned model run in one environment
and get the same string.
"""

from __future__ import annotations

import gc
from typing import Annotated, ClassVar, Literal

import torch
from pydantic import Field

from ...models.load import resolve_device
from ...errors import PulseError
from ...models.quantize import LIBRARIES, quantized_copy, quiet, resolve
from .base import ATTACKS, Attack, AttackContext, AttackParams, Distinct, Outcome


class QuantizeParams(AttackParams):
    bits: Annotated[list[Literal[4, 8]], Distinct] = Field(default_factory=lambda: [4, 8], min_length=1)
    library: Literal[("auto", *LIBRARIES)] = "auto"



@ATTACKS.register
class Quantize(Attack):
    name = "quantize"
    reads_weights = True
    Params = QuantizeParams
    splits: ClassVar[tuple[str, ...]] = ("forget", "retain")

    def does_not_apply(self, ctx: AttackContext) -> str | None:
        """Where the asked-for library (or, with ``auto``, every library) cannot run on the model's device."""
        try:
            resolve(self.library, resolve_device(ctx.evaluator.cfg.model.device))
        except PulseError as e:
            return str(e)
        return None

    def __call__(self, model, ctx: AttackContext) -> list[Outcome]:
        resolve(self.library, next(model.parameters()).device)  # a clear error before any copy is made
        out = []
        for bits in self.bits:
            clone, label = quantized_copy(model, bits, self.library)
            try:
                with quiet():
                    out += [Outcome(f"bits={bits} ({label})", split, ctx.evaluator.scorers[split](clone))
                            for split in self.scored if split in ctx.evaluator.scorers]
            finally:
                del clone
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        return out
