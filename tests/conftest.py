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
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # set in each process of `pytest -n N` (make test)
# One thread, and the AVX2 code paths of torch, MKL and oneDNN even on an AVX-512 CPU: float
# results (hence the tiny models trained from scratch, and tests/golden's recorded run) depend on
# the thread count and the instruction set. Set before torch is imported; inherited by the
# processes tests start. With `pytest -n N`, one thread per worker also keeps N workers from
# oversubscribing N cores.
os.environ["OMP_NUM_THREADS"] = "1"
for _key in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "DNNL_MAX_CPU_ISA"):
    os.environ.setdefault(_key, "avx2" if _key == "ATEN_CPU_CAPABILITY" else "AVX2")

# Session fixtures that run something costly, and the group of the tests using them: under
# `pytest -n N --dist loadgroup` a group's tests share one worker, so each runs once.
COSTLY = ("tiny_demo", "tiny_run", "watched", "watched_killed", "attacked_run")


def pytest_collection_modifyitems(items):
    for item in items:
        used = [name for name in COSTLY if name in getattr(item, "fixturenames", ())]
        if used:
            group = "watched" if used[0].startswith("watched") else "tiny_demo" if used[0] == "tiny_run" else used[0]
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """A fresh cache per test run, shared by its workers; ``PULSE_TEST_CACHE=DIR`` reuses one
    across runs (quicker iterations: the tiny world and models are built once)."""
    if os.environ.get("PULSE_TEST_CACHE"):
        return Path(os.environ["PULSE_TEST_CACHE"])
    if WORKER:  # every worker's base temp folder sits in the run's own
        path = tmp_path_factory.getbasetemp().parent / "pulse-cache"
        path.mkdir(exist_ok=True)
        return path
    return tmp_path_factory.mktemp("pulse-cache")


@pytest.fixture(scope="session")
def tiny_world(cache):
    from pulse_unlearn.pipeline import ensure_world
    from pulse_unlearn.world.build import world_config

    return ensure_world(world_config("tiny"), cache, log=lambda *_: None)  # under the cache's lock


RICH = {"attributes": 12, "wordings": 6, "world_skills": True}  # the world's people at their richest


@pytest.fixture(scope="session")
def rich_world(cache):
    """The tiny world with 12 attributes per person, six wordings per fact and the world skills."""
    from pulse_unlearn.pipeline import ensure_world
    from pulse_unlearn.world.build import world_config

    return ensure_world(world_config("tiny", **RICH), cache, log=lambda *_: None)


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
    from pulse_unlearn.protocol.catalog import load_config

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
