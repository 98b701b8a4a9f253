"""``finetuned``: forget fine-tuned knowledge. Start from the model fine-tuned on the run's
fictitious people; forget ``splits.forget`` of them in one operation, retain the rest."""

from __future__ import annotations

from ...core.names import ConfigProblem
from ...errors import PulseError
from ..sets import finetuned_sets
from .base import SCENARIOS, Scenario, finetune_count


@SCENARIOS.register
class Finetuned(Scenario):
    name = "finetuned"
    knowledge = "fine-tuned"
    marker = "o"

    def check_config(self, cfg) -> None:
        s = cfg.splits
        if s.forget >= s.finetune_people:
            raise ConfigProblem("splits.forget", f"must be < splits.finetune_people={s.finetune_people}, the rest "
                                f"being retained (got {s.forget})")

    def check_data(self, cfg, src, where) -> None:
        s = cfg.splits
        if not 0 < s.forget < finetune_count(cfg, src):
            raise PulseError(f"{where / 'Full_Set'}: {len(src.fictitious)} fictitious people; splits.forget="
                             f"{s.forget} of splits.finetune_people={s.finetune_people} must leave 1 or more "
                             "to retain")

    def draw(self, cfg, src, people):
        return finetuned_sets(people, cfg.splits.forget, cfg.seed)
