"""Shared fixtures: the tiny world and its tiny models, built once per test session."""

from __future__ import annotations

import os
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
