"""Experiment trackers (runs/trackers.py): offline with TensorBoard, whose event file is read back;
a missing tracker package is one line naming the package and the extra to install."""

from __future__ import annotations

import sys
import tomllib
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import get_args

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import pulse_unlearn.distributed
from pulse_unlearn.config.schema import RunConfig
from pulse_unlearn.errors import PulseError
from pulse_unlearn.runs.trackers import TRACKERS, Trackers, check_available, flat_config

CONFIG = {"name": "tb-run", "unlearn": {"lr": 5e-4, "lora": {"rank": 8}}, "grid": [{"methods": ["ga"]}],
          "data": {"mllmu": None}, "log_with": ["tensorboard"]}
# Two units, each counting its steps from 0, as a run's units do.
LOGGED = {
    "finetuned/ga/llm/op1/forget/multimodal/accuracy": [(0, 0.656), (4, 0.43), (8, 0.2466)],
    "finetuned/ga/llm/op1/loss": [(0, 2.31), (4, 3.07), (8, 5.9)],
    "pretrained/npo/llm/op1/forget/text/accuracy": [(0, 0.93), (5, 0.901)],
}


def test_tensorboard_event_file_holds_exactly_the_logged_scalars(tmp_path):
    trackers = Trackers.open(["tensorboard"], tmp_path, "tb-run", CONFIG)
    for unit in ("finetuned/ga/llm", "pretrained/npo/llm"):
        steps = sorted({s for key, points in LOGGED.items() if key.startswith(unit) for s, _ in points})
        for step in steps:
            trackers.log({key: v for key, points in LOGGED.items() if key.startswith(unit)
                          for s, v in points if s == step}, step=step)
    trackers.close()
    trackers.close()  # a second close does nothing

    assert [p.name for p in tmp_path.iterdir()] == ["tensorboard"]
    events = EventAccumulator(str(tmp_path / "tensorboard" / "tb-run"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == sorted(LOGGED)
    for key, points in LOGGED.items():
        # TensorBoard stores 32-bit floats
        assert [(e.step, e.value) for e in events.Scalars(key)] == [(s, float(np.float32(v))) for s, v in points]
    (hparams,) = (tmp_path / "tensorboard" / "tb-run").glob("*/hparams.yml")
    assert yaml.safe_load(hparams.read_text()) == flat_config(CONFIG)


def test_flat_config_gives_dotted_leaves_and_json_for_the_rest():
    assert flat_config(CONFIG) == {"name": "tb-run", "unlearn.lr": 5e-4, "unlearn.lora.rank": 8,
                                   "grid": '[{"methods": ["ga"]}]', "data.mllmu": "null",
                                   "log_with": '["tensorboard"]'}


def test_no_trackers_and_other_processes_write_nothing(tmp_path, monkeypatch):
    with Trackers.open([], tmp_path / "trackers", "r", CONFIG) as trackers:
        trackers.log({"a": 1.0}, step=0)
    monkeypatch.setattr(pulse_unlearn.distributed, "is_main", lambda: False)
    with Trackers.open(["tensorboard"], tmp_path / "trackers", "r", CONFIG) as trackers:
        trackers.log({"a": 1.0}, step=0)
    assert not (tmp_path / "trackers").exists()


def _present(module: str) -> ModuleType:
    """A stand-in that importlib finds, whether or not the package is installed here."""
    stand_in = ModuleType(module)
    stand_in.__spec__ = ModuleSpec(module, None)
    return stand_in


# (tracker, the package that is missing, the others it needs, which are then present)
MISSING = [("tensorboard", "tensorboard", []), ("wandb", "wandb", []),
           ("mlflow", "mlflow", ["sqlalchemy", "alembic"]), ("mlflow", "sqlalchemy", ["mlflow", "alembic"])]


@pytest.mark.parametrize("name, package, others", MISSING, ids=[f"{n}-{p}" for n, p, _ in MISSING])
def test_a_missing_tracker_package_is_one_line_naming_it_and_its_extra(tmp_path, monkeypatch, name, package,
                                                                        others):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for module in [package] + (["tensorboardX"] if package == "tensorboard" else []):
        monkeypatch.setitem(sys.modules, module, None)  # importlib then finds no such module
    for module in others:
        monkeypatch.setitem(sys.modules, module, _present(module))
    for call in (lambda: check_available([name]), lambda: Trackers.open([name], tmp_path / "trackers", "r", CONFIG)):
        with pytest.raises(PulseError) as e:
            call()
        assert str(e.value) == (f"log_with: {name} needs the package {package!r}, which is not installed: "
                                f"pip install 'pulse-unlearn[{name}]'")
    assert not (tmp_path / "trackers").exists()


def test_mlflow_with_a_tracking_server_needs_no_local_store(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://localhost:5000")
    monkeypatch.setitem(sys.modules, "mlflow", _present("mlflow"))
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    check_available(["mlflow"])


def test_every_tracker_the_config_takes_has_its_extra():
    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert get_args(get_args(RunConfig.model_fields["log_with"].annotation)[0]) == TRACKERS
    assert set(TRACKERS) <= set(extras)
    assert any(req.startswith("tensorboard") for req in extras["dev"])  # CI runs the test above
    with pytest.raises(PulseError, match="unknown tracker 'neptune'; choose from tensorboard, wandb, mlflow"):
        check_available(["neptune"])


class RecordingTracker:
    name = "wandb"

    def __init__(self):
        self.calls = []

    def log(self, values, step=None):
        self.calls.append((values, step))


def test_wandb_gets_the_step_as_a_value_since_its_own_step_must_rise():
    fake = RecordingTracker()
    trackers = Trackers([fake])
    trackers.log({"finetuned/ga/llm/op1/loss": 2}, step=4)
    trackers.log({"pretrained/ga/llm/op1/loss": 3}, step=0)
    assert fake.calls == [({"finetuned/ga/llm/op1/loss": 2.0, "step": 4}, None),
                          ({"pretrained/ga/llm/op1/loss": 3.0, "step": 0}, None)]
