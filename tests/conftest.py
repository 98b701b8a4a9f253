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


def _config(tmp_path_factory, name: str, text: str) -> Path:
    path = tmp_path_factory.mktemp("cfg") / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def watched_config(tmp_path_factory, tiny_models):
    from shared_runs import WATCHED

    return _config(tmp_path_factory, "watched", WATCHED)


@pytest.fixture(scope="session")
def watched(watched_config, cache, tmp_path_factory):
    """``shared_runs.WATCHED``, run whole."""
    from processes import pulse

    out = tmp_path_factory.mktemp("runs") / "watched"
    assert pulse("run", watched_config, "--out", out, "--cache", cache) == 0
    return out


@pytest.fixture(scope="session")
def watched_killed(watched_config, cache, tmp_path_factory):
    """``shared_runs.WATCHED`` SIGKILLed in the middle of the sequential unit's operation 2 (the
    one-shot unit and operation 1, their attacks included, are finished), then the same command
    again: (its folder, attacks.csv's rows as the killed run left them)."""
    from processes import pulse, rows, run_killed_once
    from shared_runs import op2_under_way

    out = tmp_path_factory.mktemp("runs") / "killed"
    run_killed_once(out / "trajectory.csv", ["run", str(watched_config), "--out", str(out), "--cache", str(cache)],
                    until=op2_under_way)
    assert not (out / "resume" / "sequential" / "ga_klr--llm" / "op-2.json").exists()
    at_kill = rows(out / "attacks.csv")
    assert pulse("run", watched_config, "--out", out, "--cache", cache) == 0
    return out, at_kill


@pytest.fixture(scope="session")
def attacked_run(tiny_models, cache, tmp_path_factory):
    """``shared_runs.ATTACKED``, run whole (it fine-tunes its own starting model on 6 people)."""
    from processes import pulse
    from shared_runs import ATTACKED

    config = _config(tmp_path_factory, "attacked", ATTACKED)
    out = tmp_path_factory.mktemp("runs") / "attacked"
    assert pulse("run", config, "--out", out, "--cache", cache) == 0
    return out
