"""The PULSE scenarios, one file each, registered in ``SCENARIOS`` (``base.py``: what a scenario
declares; the plan of a run's scenarios, their sets and starting models)."""

from . import finetuned, pretrained, sequential, concepts  # noqa: F401  (registration order: the run's order)
from .base import (BASE, FINETUNED, SCENARIOS, ConfigProblem, Makers, Plan, Scenario, Selected, check_config,
                   finetune_count, plan, scenario, sets_record, start_models)
from .finetuned import Finetuned
from .pretrained import PROBE_COLUMNS

__all__ = ["BASE", "FINETUNED", "PROBE_COLUMNS", "SCENARIOS", "ConfigProblem", "Finetuned", "Makers", "Plan",
           "Scenario", "Selected", "check_config", "finetune_count", "plan", "scenario", "sets_record", "start_models"]
