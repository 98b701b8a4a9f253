"""``sequential``: the finetuned scenario's forget set in ``splits.requests`` disjoint requests;
each operation starts from the previous one's model (``unlearn.adapters``). Its one-shot
counterpart, the finetuned scenario on the same forget set, always runs alongside."""

from __future__ import annotations

from ...core.names import ConfigProblem
from ..sets import sequential_sets
from .finetuned import Finetuned
from .base import SCENARIOS


@SCENARIOS.register
class Sequential(Finetuned):
    name = "sequential"
    companion = "finetuned"
    sequential = True
    one_shot = "finetuned"
    marker = "^"

    def check_config(self, cfg) -> None:
        super().check_config(cfg)
        s = cfg.splits
        if s.forget % s.requests:
            raise ConfigProblem("splits.requests", f"splits.forget={s.forget} does not split into "
                                f"splits.requests={s.requests} equal requests")

    def draw(self, cfg, src, people):
        return sequential_sets(people, cfg.splits.forget, cfg.splits.requests, cfg.seed)
