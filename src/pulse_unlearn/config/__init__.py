"""The experiment's config: schema, ``key=value`` overrides, the shipped configs, loading.

Imports no torch: validating method names and parameters looks the methods registry up only
when a config is validated.
"""

from .load import load_config, read_yaml, validate
from .overrides import apply_overrides
from .schema import (
    PRESETS,
    SCENARIOS,
    UPDATES,
    DataSource,
    FinetuneConfig,
    FinetuneLora,
    GridBlock,
    LoraRecipe,
    ModelSource,
    ParityConfig,
    RunConfig,
    SplitSizes,
    UnlearnConfig,
)
from .shipped import first_comment, resolve_config, shipped_configs

__all__ = [
    "PRESETS", "SCENARIOS", "UPDATES", "DataSource", "FinetuneConfig", "FinetuneLora", "GridBlock", "LoraRecipe",
    "ModelSource", "ParityConfig", "RunConfig", "SplitSizes", "UnlearnConfig", "apply_overrides", "first_comment",
    "load_config", "read_yaml", "resolve_config", "shipped_configs", "validate",
]
