"""Experiment trackers (TensorBoard, Weights & Biases, MLflow), so that a long run can be watched
while it goes: a run's scalars, as they come, through accelerate's tracker classes.

The trackers are optional extras (``pip install 'pulse-unlearn[tensorboard]'``, ``[wandb]``,
``[mlflow]``); ``check_available`` names a missing one in one line, so that a run can refuse
before it writes anything. Only the first process logs. Under ``folder``:

    tensorboard/<run_name>/   TensorBoard event files (and the run's config as hyperparameters)
    mlflow/                   MLflow's local store (mlflow.db, SQLite, and artifacts/), unless
                              MLFLOW_TRACKING_URI names another
    wandb/                    W&B's run files; online or offline as WANDB_MODE and the login say

The W&B project and the MLflow experiment are ``pulse-unlearn`` unless WANDB_PROJECT or
MLFLOW_EXPERIMENT_NAME say otherwise; each run is named ``run_name``. W&B requires its own step
to rise within a run, while a run's units count their steps from 0 again, so W&B gets the step
as a value, ``step``, that every chart uses as its x axis.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from ..core.names import unknown_name
from ..errors import PulseError, first_line

TRACKERS = ("tensorboard", "wandb", "mlflow")
PROJECT = "pulse-unlearn"
WANDB_STEP = "step"
HINTS = {"wandb": " (to log offline: WANDB_MODE=offline)"}  # added to a tracker's start error


def required(name: str) -> list[tuple[str, ...]]:
    """The modules tracker ``name`` needs; each entry: modules any one of which will do."""
    if name == "tensorboard":
        return [("tensorboard", "tensorboardX")]  # accelerate's TensorBoard tracker takes either
    if name == "mlflow" and not os.environ.get("MLFLOW_TRACKING_URI"):
        return [("mlflow",), ("sqlalchemy",), ("alembic",)]  # the local SQLite store
    return [(name,)]


def check_available(names: list[str]) -> None:
    """Refuse, in one line, a tracker that is unknown or whose packages are not installed."""
    for name in names:
        if name not in TRACKERS:
            raise PulseError("log_with: " + unknown_name("tracker", name, TRACKERS))
        for modules in required(name):
            if not any(importlib.util.find_spec(module) for module in modules):
                raise PulseError(f"log_with: {name} needs the package {modules[0]!r}, which is not installed: "
                                 f"pip install 'pulse-unlearn[{name}]'")


def flat_config(config: dict, prefix: str = "") -> dict[str, bool | int | float | str]:
    """``{"unlearn.lr": 0.0005, "grid": "[...]"}``: the config's leaves by dotted key, as the trackers'
    hyperparameter tables take them (numbers, text, booleans; anything else as JSON)."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out |= flat_config(value, f"{prefix}{key}.")
        elif isinstance(value, (bool, int, float, str)):
            out[prefix + key] = value
        else:
            out[prefix + key] = json.dumps(value, default=str)
    return out


def _tensorboard(folder: Path, run_name: str):
    from accelerate.tracking import TensorBoardTracker

    return TensorBoardTracker(run_name, str(folder / "tensorboard"))


def _wandb(folder: Path, run_name: str):
    from accelerate.tracking import WandBTracker

    (folder / "wandb").mkdir(parents=True, exist_ok=True)
    return WandBTracker(os.environ.get("WANDB_PROJECT", PROJECT), name=run_name, dir=str(folder / "wandb"))


def _mlflow(folder: Path, run_name: str):
    import mlflow
    from accelerate.tracking import MLflowTracker

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return MLflowTracker(experiment_name=PROJECT, run_name=run_name)
    store = (folder / "mlflow").resolve()
    store.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    return MLflowTracker(experiment_name=PROJECT, run_name=run_name, logging_dir=(store / "artifacts").as_uri())


BUILDERS = {"tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow}


def _start(name: str, folder: Path, run_name: str, params: dict):
    """One started tracker holding the run's config; a tracker that cannot start is one line."""
    try:
        tracker = BUILDERS[name](folder, run_name)
        tracker.start()
        if name == "wandb":
            tracker.tracker.define_metric(WANDB_STEP)
            tracker.tracker.define_metric("*", step_metric=WANDB_STEP)
        tracker.store_init_configuration(params)
    except Exception as e:
        raise PulseError(f"log_with: {name} could not start: {first_line(e)}{HINTS.get(name, '')}") from e
    return tracker


class Trackers:
    """The run's open trackers; with none (no ``log_with``, or not the first process) it does nothing."""

    def __init__(self, trackers: list):
        self._trackers = trackers

    @classmethod
    def open(cls, names: list[str], folder: Path, run_name: str, config: dict) -> Trackers:
        """Start ``names``, writing under ``folder``, the run named ``run_name``, ``config`` as its
        hyperparameters."""
        check_available(names)
        if not names:
            return cls([])
        from ..distributed import is_main

        if not is_main():
            return cls([])
        folder, params, opened = Path(folder), flat_config(config), cls([])
        try:
            for name in names:
                opened._trackers.append(_start(name, folder, run_name, params))
        except BaseException:
            opened.close()
            raise
        return opened

    def log(self, values: dict[str, float], step: int) -> None:
        """Scalars by name (``finetuned/ga/llm/op1/forget/multimodal/accuracy``) at ``step``."""
        values = {key: float(value) for key, value in values.items()}
        for tracker in self._trackers:
            if tracker.name == "wandb":
                tracker.log({**values, WANDB_STEP: step})
            else:
                tracker.log(values, step=step)

    def close(self) -> None:
        """Flush and close every tracker (once; a second call does nothing)."""
        trackers, self._trackers = self._trackers, []
        for tracker in trackers:
            tracker.finish()

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
