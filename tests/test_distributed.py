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


def _free_port() -> int:
    """A port nobody listens on: consecutive launches must not meet on the default 29500."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(args: list[str], env: dict, timeout: int, retry_cleanup=None) -> subprocess.CompletedProcess:
    """``accelerate launch`` with 2 CPU processes over gloo. Once seen on a loaded 2-core machine:
    one worker died without a trace (gloo: "Connection closed by peer"); so a failed launch is
    run once more from a clean state, and the first failure's log is printed (shown by pytest)."""
    launcher = str(ACCELERATE) if ACCELERATE.exists() else "accelerate"
    command = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no"]
    proc = subprocess.run(command + ["--main_process_port", str(_free_port()), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        print("first launch failed; its stderr:\n" + proc.stderr)
        if retry_cleanup is not None:
            retry_cleanup()
        proc = subprocess.run(command + ["--main_process_port", str(_free_port()), *args], env=env,
                              capture_output=True, text=True, timeout=timeout)
    return proc


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
    proc = _launch(["-m", "pulse_unlearn.cli", *args, "--out", str(two)], env, 900,
                   retry_cleanup=lambda: shutil.rmtree(two, ignore_errors=True))
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


FINETUNE_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from real_data import png
from pulse_unlearn import distributed
from pulse_unlearn.config import FinetuneConfig
from pulse_unlearn.models.finetune import finetune_checkpoint
from pulse_unlearn.records import Example

distributed.setup()
examples = [Example(f"Who is person {{i}}?", f"Person00{{i}}.", png((20 * i, 9, 9)) if i % 2 else None)
            for i in range(8)]
out = finetune_checkpoint({ckpt!r}, examples, FinetuneConfig(epochs=2, batch_size=2, lr=1e-2), {cache!r},
                          device="cpu", log=lambda *_: None)
from pulse_unlearn.models.load import load_model
model, _ = load_model(out, device="cpu")
total = sum(float(p.double().sum()) for p in model.parameters())
print("RESULT", distributed.rank(), distributed.world_size(), out, repr(total), flush=True)
"""


@pytest.mark.skipif(not ACCELERATE.exists() and not shutil.which("accelerate"), reason="accelerate CLI not found")
def test_two_process_finetuning_is_data_parallel(tmp_path):
    """In-run fine-tuning of a checkpoint under 2 processes: DDP (half the steps), one saved model."""
    import json

    from real_data import build_tiny_llava

    ckpt = build_tiny_llava(tmp_path / "ckpt")
    script = tmp_path / "ft.py"
    script.write_text(FINETUNE_SCRIPT.format(tests=str(Path(__file__).parent), ckpt=str(ckpt),
                                             cache=str(tmp_path / "cache")))
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PULSE_QUIET": "1"}
    proc = _launch([str(script)], env, 600,
                   retry_cleanup=lambda: shutil.rmtree(tmp_path / "cache", ignore_errors=True))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted(line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    assert [r[:2] for r in results] == [["0", "2"], ["1", "2"]]
    assert results[0][2] == results[1][2] and results[0][3] == results[1][3]  # one model, same weights
    saved = json.loads((Path(results[0][2]) / "pulse_model.json").read_text())
    # 8 examples (4 with an image, 4 without) in batches of 2: 4 batches an epoch, 2 epochs, 2 processes.
    assert saved["processes"] == 2 and saved["steps"] == 4
    assert len(list((tmp_path / "cache").iterdir())) == 1  # no half-written copies
