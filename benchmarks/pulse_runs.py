"""What the benchmark scripts share: a config written beside its run folder and run by ``pulse run``
in a child process (progress quiet, its output dropped); a killed benchmark resumes from the folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml


def pulse_run(cfg: dict, out: Path, cache: Path | None = None) -> tuple[Path, float]:
    """``cfg`` written to ``out/NAME.yaml`` and run into ``out/NAME``; (the run folder, seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = out / cfg["name"]
    cmd = [sys.executable, "-m", "pulse_unlearn.cli", "run", str(path), "--out", str(run)]
    if cache:
        cmd += ["--cache", str(cache)]
    t0 = time.time()
    subprocess.run(cmd, check=True, env={**os.environ, "PULSE_QUIET": "1"}, stdout=subprocess.DEVNULL)
    return run, time.time() - t0


def read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
