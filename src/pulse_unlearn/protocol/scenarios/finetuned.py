"""``finetuned``: forget fine-tuned knowledge. Start from the model fine-tuned on the run's
fictitious people; forget ``splits.forget`` of them in one operation, retain the rest."""

from __future__ import annotations

from ...core.names import ConfigProblem
from ...errors import PulseError
from ...records import split_key
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

    def check_oracle(self, cfg) -> None:
        """Fine-tuning again without the forget people needs the recipe: the world's, or
        ``finetune`` from ``model.base``; a given ``model.finetuned`` has none."""
        if cfg.model.finetuned:
            raise ConfigProblem("oracle", "retrain makes the fine-tuned model again without the forget people, "
                                "which a given model.finetuned cannot be; leave model.finetuned unset so the run "
                                "fine-tunes (model.base with the finetune recipe), or set oracle: none")

    def oracle_model(self, plan, src, makers, forgotten):
        """The base model fine-tuned on the run's people less ``forgotten``, each as often as in
        the starting model."""
        kept = [key for key in plan.finetune_people if key not in set(forgotten)]
        return makers.finetune([split_key(key)[1] for key in kept], src.facts_of(kept),
                               passes_of=[split_key(key)[1] for key in plan.finetune_people])
