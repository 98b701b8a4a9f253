"""Several processes on CPU (gloo, through `accelerate launch --multi_gpu`, which on a machine without
GPUs starts CPU processes): evaluation sharded by person and
gathered gives the accuracies of one process; unlearning runs data-parallel (DDP)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pulse_unlearn.cli import main

ACCELERATE = Path(sys.executable).with_name("accelerate")
SRC = Path(__file__).resolve().parents[1] / "src"


def _rows(folder: Path, name: str) -> list[dict]:
    with open(folder / name, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.skipif(not ACCELERATE.exists() and not shutil.which("accelerate"), reason="accelerate CLI not found")
def test_two_processes_match_one(tiny_models, cache, tmp_path):
    config = tmp_path / "dp.yaml"
    config.write_text(
        "name: dp\n"
        "model: {source: world, preset: tiny}\n"
        "splits: {finetune_people: 6, forget: 3, requests: 1}\n"
        "data: {mmbench_subset: 12}\n"
        "grid: [{scenarios: [finetuned], methods: [ga_klr], updates: [projector_llm]}]\n"
        "unlearn: {lr: 3.0e-3, epochs: 1, batch_size: 16, lora_rank: 4, lora_alpha: 8}\n"
        "scoring: logits\n"
        "eval_batch_size: 64\n")
    args = ["run", str(config), f"model.finetuned={tiny_models['finetuned']}", "--cache", str(cache)]
    one, two = tmp_path / "one", tmp_path / "two"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args + ["--out", str(one)]) == 0
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PULSE_QUIET": "1"}
    launcher = str(ACCELERATE) if ACCELERATE.exists() else "accelerate"
    proc = subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "pulse_unlearn.cli",
                           *args, "--out", str(two)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s1, s2 = _rows(one, "summary.csv"), _rows(two, "summary.csv")
    start1, start2 = [r for r in s1 if r["step"] == "0"], [r for r in s2 if r["step"] == "0"]
    assert start1 and start1 == start2  # evaluation: identical accuracies, every split and modality
    p1 = [r for r in _rows(one, "predictions.csv") if r["step"] == "0"]
    p2 = [r for r in _rows(two, "predictions.csv") if r["step"] == "0"]
    assert p1 == p2  # the same predictions, in the same order
    assert {r["step"] for r in s2} == {"0", "1"}
    # Data-parallel unlearning: each of the 2 processes took every 2nd batch of the same order.
    steps1, steps2 = int(_rows(one, "operations.csv")[0]["steps"]), int(_rows(two, "operations.csv")[0]["steps"])
    assert steps2 == steps1 // 2
    assert not list(two.glob(".*"))  # one writer: no stray temporary files
