"""Shared fixtures: the tiny world and its tiny models, built once per test session."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from importlib.resources import files
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PULSE_QUIET", "1")


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """A fresh cache per session; ``PULSE_TEST_CACHE=DIR`` reuses one across sessions (quicker
    iterations: the tiny world and models are built once)."""
    if os.environ.get("PULSE_TEST_CACHE"):
        return Path(os.environ["PULSE_TEST_CACHE"])
    return tmp_path_factory.mktemp("pulse-cache")


@pytest.fixture(scope="session")
def tiny_world(cache):
    from pulse_unlearn.pipeline import ensure_world
    from pulse_unlearn.world.build import world_config

    return ensure_world(world_config("tiny"), cache, log=lambda *_: None)


@pytest.fixture(scope="session")
def tiny_models(cache):
    """{"world", "base", "finetuned"} paths for the tiny preset."""
    from pulse_unlearn.pipeline import ensure_models

    return ensure_models("tiny", cache, log=lambda *_: None)


DEMO_TINY = Path(str(files("pulse_unlearn") / "configs" / "demo_tiny.yaml"))


@pytest.fixture(scope="session")
def tiny_demo(tiny_models, cache, tmp_path_factory):
    """`pulse demo --preset tiny`, run once: all three scenarios, three methods, both update strategies."""
    from pulse_unlearn.cli import main

    out = tmp_path_factory.mktemp("runs") / "demo-tiny"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        status = main(["demo", "--preset", "tiny", "--out", str(out), "--cache", str(cache)])
    assert status == 0
    return out, printed.getvalue()


@pytest.fixture(scope="session")
def tiny_run(tiny_demo):
    from pulse_unlearn.config import load_config

    out, _ = tiny_demo
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return load_config(DEMO_TINY), out, rows
