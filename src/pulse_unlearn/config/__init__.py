"""The experiment's config: schema, ``key=value`` overrides, the shipped configs, loading.

Imports no torch and no registry: the names a config gives are checked by the catalog
(``protocol/catalog.py``), which ``load_config`` there runs after the schema.
"""

from .load import parse, read_yaml
from .overrides import apply_overrides
from .schema import (
    PRESETS,
    UPDATES,
    DataSource,
    FinetuneConfig,
    FinetuneLora,
    GridBlock,
    LoraRecipe,
    ModelSource,
    IntervalConfig,
    ParityConfig,
    RunConfig,
    SplitSizes,
    UnlearnConfig,
)
from .shipped import first_comment, resolve_config, shipped_configs

__all__ = [
    "PRESETS", "UPDATES", "DataSource", "FinetuneConfig", "FinetuneLora", "GridBlock", "LoraRecipe",
    "IntervalConfig", "ModelSource", "ParityConfig", "RunConfig", "SplitSizes", "UnlearnConfig", "apply_overrides",
    "first_comment",
    "parse", "read_yaml", "resolve_config", "shipped_configs",
]
