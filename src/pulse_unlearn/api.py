"""The Python API: run an experiment as ``pulse run`` does, and read a run folder into pandas.

    run = pulse_unlearn.run("my.yaml", ["scenario=finetuned", "method=ga"], out="runs/x")
    run.summary.groupby(["method", "step"]).accuracy.mean()

Importing it loads neither torch nor pandas (each is imported by the function that needs it),
so that ``import pulse_unlearn`` stays quick.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PulseError, first_line

if TYPE_CHECKING:
    import pandas as pd

    from .config import RunConfig


@dataclass
class Run:
    """A run folder, read back: its tables as DataFrames (``probe`` only where the pretrained
    scenario ran, ``trajectory`` and ``matched`` only where the run evaluated checkpoints,
    ``attacks`` only where it ran attacks, ``search`` only where it ran black-box units;
    ``timings``: each operation's wall time; ``findings``: each finding's comparisons with their
    intervals and verdicts; ``sensitivity``: the matched ones again at other comparison targets
    (``kept``); ``trajectory_predictions``: each checkpoint's items), its
    config (as run), environment and sets as dicts."""

    folder: Path
    config: dict
    environment: dict
    sets: dict
    summary: pd.DataFrame
    predictions: pd.DataFrame
    operations: pd.DataFrame
    probe: pd.DataFrame | None = None
    trajectory: pd.DataFrame | None = None
    matched: pd.DataFrame | None = None
    attacks: pd.DataFrame | None = None
    search: pd.DataFrame | None = None
    timings: pd.DataFrame | None = None
    findings: pd.DataFrame | None = None
    trajectory_predictions: pd.DataFrame | None = None
    sensitivity: pd.DataFrame | None = None


def run(config: str | Path | dict | RunConfig, overrides: Iterable[str] = (), out: str | Path | None = None,
        cache: str | Path | None = None, log: Callable[[str], Any] | None = None) -> Run:
    """Run what ``pulse run CONFIG OVERRIDES --out OUT --cache CACHE`` runs and return it read
    back from its folder. ``config``: a YAML file (or a shipped config's name), a dict of the
    same keys, or a ``RunConfig``; ``overrides``: ``key=value`` strings as on the command line.
    Progress goes to stderr and ``run.log`` unless ``log`` takes the lines."""
    from . import distributed
    from .pipeline import cache_folder, run_experiment
    from .progress import RunLog

    cfg = resolve_config(config, [overrides] if isinstance(overrides, str) else list(overrides))
    folder = Path(out) if out is not None else Path("runs") / cfg.name
    run_experiment(cfg, folder, cache_folder(cache), log=log or RunLog(folder, _stderr))
    distributed.barrier()  # several processes: the first writes the folder, all read it once written
    return load_run(folder)


def resolve_config(config, overrides: list[str]) -> RunConfig:
    """A validated config from any form ``run`` takes; a problem is one ``PulseError`` line."""
    from .config import RunConfig, apply_overrides
    from .protocol.catalog import checked, load_config, validate

    if isinstance(config, RunConfig):
        if not overrides:
            return checked(config)
        config = config.model_dump(mode="json")
    if not isinstance(config, dict):
        return load_config(Path(str(config)), overrides)
    return validate(apply_overrides(config, overrides))


def load_run(folder: str | Path) -> Run:
    """A run folder (one ``pulse run`` or ``run`` wrote, finished or not) as a ``Run``."""
    folder = Path(folder)
    if not (folder / "config.yaml").is_file() or not (folder / "summary.csv").is_file():
        raise PulseError(f"{folder}: not a pulse run folder (it needs config.yaml and summary.csv)")
    import yaml

    try:
        config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
        environment, sets = (_json(folder / name) for name in ("environment.json", "sets.json"))
        summary, predictions, operations = (_csv(folder / f"{name}.csv")
                                            for name in ("summary", "predictions", "operations"))
        probe, trajectory, matched, attacks, search, timings, findings, trajectory_predictions, sensitivity = (
            _csv(folder / f"{name}.csv") if (folder / f"{name}.csv").is_file() else None
            for name in ("probe", "trajectory", "matched", "attacks", "search", "timings", "findings",
                         "trajectory_predictions", "sensitivity"))
    except (yaml.YAMLError, ValueError, UnicodeDecodeError) as e:
        raise PulseError(f"{folder}: unreadable run file ({first_line(e)})") from None
    if not isinstance(config, dict):
        raise PulseError(f"{folder / 'config.yaml'}: not a mapping")
    config.pop("_config_hash", None)  # the run folder's own check, not a setting
    return Run(folder, config, environment, sets, summary, predictions, operations, probe, trajectory, matched,
               attacks, search, timings, findings, trajectory_predictions, sensitivity)


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _csv(path: Path) -> pd.DataFrame:
    """A results table, text columns as text and empty cells missing; empty if absent."""
    import pandas as pd

    from .runs.store import TEXT_COLUMNS

    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
