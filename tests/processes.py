"""Running ``pulse`` for tests: in a child process, to kill it mid-run as a crash would, or in this one
(``pulse``), and reading the CSV files it writes (``rows``)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pulse_unlearn

SRC = str(Path(pulse_unlearn.__file__).parents[1])


def run_killed_once(path_to_wait_for: Path, args: list[str], poll: float = 0.02,
                    until: Callable[[Path], bool] = Path.exists, timeout: float = 1800) -> None:
    """``pulse ARGS`` in a subprocess (the tree under test), SIGKILLed as soon as
    ``until(path_to_wait_for)`` holds (by default: the path exists). Killed anyway after
    ``timeout`` seconds, and then the test fails: the kill came at no known point."""
    env = {**os.environ, "PYTHONPATH": SRC, "PULSE_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pulse_unlearn.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not (met := until(path_to_wait_for)) and proc.poll() is None and time.time() < deadline:
        time.sleep(poll)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert met, f"killed after {timeout:.0f} s: the point to kill it at was not reached"


def pulse(*args) -> int:
    """``pulse ARGS`` in this process, its output swallowed; the exit status."""
    from pulse_unlearn.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(list(map(str, args)))


def rows(path) -> list[dict]:
    """A CSV file's rows as dicts of text."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
