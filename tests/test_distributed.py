"""Several processes on CPU (gloo, through `accelerate launch --multi_gpu` or `--use_fsdp`, which on a
machine without GPUs start CPU processes): evaluation sharded by person and gathered gives the
accuracies of one process; unlearning runs data-parallel (DDP) or sharded (FSDP2), the latter
with the results of one process."""

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


DDP = ["--multi_gpu"]
# FSDP2, each decoder/encoder layer its own unit, as on GPUs (LLaVA's _no_split_modules name a CLIP
# text class that LLaVA lacks, so the classes are named: the command in the README).
FSDP = ["--use_fsdp", "--fsdp_version", "2", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
        "--fsdp_transformer_layer_cls_to_wrap", "LlamaDecoderLayer,CLIPEncoderLayer"]


def _launch(args: list[str], env: dict, timeout: int, retry_cleanup=None, mode=DDP) -> subprocess.CompletedProcess:
    """``accelerate launch`` with 2 CPU processes over gloo. Once seen on a loaded 2-core machine:
    one worker died without a trace (gloo: "Connection closed by peer"); so a failed launch is
    run once more from a clean state, and the first failure's log is printed (shown by pytest)."""
    launcher = str(ACCELERATE) if ACCELERATE.exists() else "accelerate"
    command = [launcher, "launch", *mode, "--num_processes", "2", "--num_machines", "1",
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


def _env() -> dict:
    """The launched processes import this worktree's code (``src``), offline, one thread each."""
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "PULSE_QUIET": "1"}


def _rows(folder: Path, name: str) -> list[dict]:
    with open(folder / name, newline="") as f:
        return list(csv.DictReader(f))


needs_launcher = pytest.mark.skipif(not ACCELERATE.exists() and not shutil.which("accelerate"),
                                    reason="accelerate CLI not found")


def _one_process_run(tiny_models, cache, tmp_path, lr: str = "3.0e-3", gru: bool = True) -> tuple[list[str], Path]:
    """The tiny world's finetuned scenario, ga_klr (its KL term runs the adapter-disabled reference)
    with LoRA on projector + LLM and GRU's projection (three backward passes a step, each
    all-reduced under DDP), run by this process; returns its arguments and run folder."""
    config = tmp_path / "dp.yaml"
    gru = ", projection: gru" if gru else ""
    config.write_text(
        "name: dp\n"
        "model: {source: world, preset: tiny}\n"
        "splits: {finetune_people: 6, forget: 3, requests: 1}\n"
        "data: {mmbench_subset: 12}\n"
        "grid: [{scenarios: [finetuned], methods: [ga_klr], updates: [projector_llm]}]\n"
        f"unlearn: {{lr: {lr}, epochs: 1, batch_size: 16, lora: {{rank: 4, alpha: 8}}{gru}}}\n"
        "scoring: logits\n"
        "eval_batch_size: 64\n"
        "attacks: [{name: consistency}, {name: image_transforms, transforms: [blur], severities: [1]},"
        " {name: quantize, bits: [8]}, {name: relearn, steps: 2, share: 0.4}]\n")
    args = ["run", str(config), f"model.finetuned={tiny_models['finetuned']}", "--cache", str(cache)]
    one = tmp_path / "one"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args + ["--out", str(one)]) == 0
    return args, one


@needs_launcher
def test_two_processes_match_one(tiny_models, cache, tmp_path):
    args, one = _one_process_run(tiny_models, cache, tmp_path)
    two = tmp_path / "two"
    env = _env()
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
    # Attacks under 2 processes, on the starting model (operation 0): the same rows as one process's,
    # relearning included (each process trains its own copy on every batch).
    a1, a2 = _rows(one, "attacks.csv"), _rows(two, "attacks.csv")
    start = lambda rows: [r for r in rows if r["operation"] == "0"]  # noqa: E731
    assert start(a1) and start(a1) == start(a2)
    assert {r["attack"] for r in a2} == {"consistency", "image_transforms", "quantize", "relearn"}
    assert {r["operation"] for r in a2} == {"0", "1"}
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


@needs_launcher
def test_two_process_finetuning_is_data_parallel(tmp_path):
    """In-run fine-tuning of a checkpoint under 2 processes: DDP (half the steps), one saved model."""
    import json

    from real_data import build_tiny_llava

    ckpt = build_tiny_llava(tmp_path / "ckpt")
    script = tmp_path / "ft.py"
    script.write_text(FINETUNE_SCRIPT.format(tests=str(Path(__file__).parent), ckpt=str(ckpt),
                                             cache=str(tmp_path / "cache")))
    env = _env()
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


@needs_launcher
def test_fsdp_unlearning_matches_one_process(tiny_models, cache, tmp_path):
    """FSDP2 over 2 processes: the same steps as one process, then evaluation of the gathered
    model: the same accuracies and predictions after unlearning, losses equal to float rounding.
    A gentle rate: at 3e-3, 8 steps of gradient ascent amplify the last-bit difference of the
    clipping norm (summed over shards) enough to tip one near-tie general question."""
    args, one = _one_process_run(tiny_models, cache, tmp_path, lr="5.0e-4", gru=False)
    two = tmp_path / "two"
    proc = _launch(["-m", "pulse_unlearn.cli", *args, "--out", str(two)], _env(), 900,
                   retry_cleanup=lambda: shutil.rmtree(two, ignore_errors=True), mode=FSDP)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _rows(one, "summary.csv") == _rows(two, "summary.csv")  # steps 0 and 1, every split and modality
    assert _rows(one, "predictions.csv") == _rows(two, "predictions.csv")
    assert _rows(one, "attacks.csv") == _rows(two, "attacks.csv")  # the attacks on the gathered model too
    op1, op2 = _rows(one, "operations.csv")[0], _rows(two, "operations.csv")[0]
    assert op1["steps"] == op2["steps"]  # every process ran every batch
    for key in ("first_loss", "last_loss"):
        assert float(op2[key]) == pytest.approx(float(op1[key]), rel=1e-4, abs=1e-6)
    assert not list(two.glob(".*"))


FSDP_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from real_data import png
from safetensors.torch import save_file
from pulse_unlearn import distributed
from pulse_unlearn.data.batches import Encoder
from pulse_unlearn.methods.registry import make_method
from pulse_unlearn.config import LoraRecipe, UnlearnConfig
from pulse_unlearn.methods.unlearn import unlearn
from pulse_unlearn.models.load import load_model
from pulse_unlearn.records import Example

distributed.setup()
model, processor = load_model({ckpt!r}, device="cpu")
people = [Example(f"Who is person {{i}}?", f"Person00{{i}}.", png((20 * i, 9, 9)) if i % 2 else None)
          for i in range(12)]
adapter = {{}}


def keep(peft):
    adapter.update({{k: v.detach().clone() for k, v in peft.state_dict().items() if "lora_" in k}})


cfg = UnlearnConfig(lr=1e-2, epochs=2, batch_size=2, lora=LoraRecipe(rank=4, alpha=8), max_grad_norm=0.5)
merged, log = unlearn(model, Encoder(processor), make_method("npo"), people[:6], people[6:], "projector_llm", cfg,
                      on_adapter=keep)
if distributed.is_main():
    save_file(adapter, {out!r} + "/adapter.safetensors")
    save_file({{k: v.contiguous() for k, v in merged.state_dict().items()}}, {out!r} + "/merged.safetensors")
    print("STEPS", len(log.losses), flush=True)
"""


@needs_launcher
def test_fsdp_adapter_matches_one_process(tmp_path):
    """NPO (its reference is the adapter-disabled model, through the sharded model) under FSDP2 on
    2 processes: the trained adapter and the merged weights equal one process's (float rounding:
    the gradient norm for clipping is summed over shards)."""
    from real_data import build_tiny_llava
    from safetensors.torch import load_file

    ckpt = build_tiny_llava(tmp_path / "ckpt")
    outs = {n: tmp_path / n for n in ("one", "two")}
    for n, folder in outs.items():
        folder.mkdir()
        (tmp_path / f"{n}.py").write_text(FSDP_SCRIPT.format(tests=str(Path(__file__).parent), ckpt=str(ckpt),
                                                            out=str(folder)))
    one = subprocess.run([sys.executable, str(tmp_path / "one.py")], env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _launch([str(tmp_path / "two.py")], _env(), 600, mode=FSDP)
    assert two.returncode == 0, two.stderr[-3000:]
    assert [ln for ln in one.stdout.splitlines() if ln.startswith("STEPS")] == \
        [ln for ln in two.stdout.splitlines() if ln.startswith("STEPS")]
    for name in ("adapter.safetensors", "merged.safetensors"):
        a, b = load_file(outs["one"] / name), load_file(outs["two"] / name)
        assert a.keys() == b.keys() and a
        for key in a:
            torch_close(a[key], b[key], key)
    adapter = load_file(outs["two"] / "adapter.safetensors")
    assert any(v.abs().max() > 0 for k, v in adapter.items() if "lora_B" in k)  # it trained (B starts at 0)


def torch_close(a, b, key: str) -> None:
    import torch

    assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), f"{key}: max difference {(a - b).abs().max():.3g}"


@needs_launcher
@pytest.mark.parametrize("mode", [DDP, FSDP], ids=["ddp", "fsdp"])
def test_a_black_box_unit_under_two_processes_matches_one(tiny_models, cache, tmp_path, mode):
    """Every process asks the same feedback and runs the same seeded search (the weights are never
    sharded for it); the evaluation with the suffix is sharded and gathered: the same files."""
    config = tmp_path / "bb.yaml"
    config.write_text(
        "name: bb\n"
        "model: {source: world, preset: tiny}\n"
        "splits: {finetune_people: 6, forget: 3, requests: 1}\n"
        "data: {mmbench_subset: 12}\n"
        "grid: [{scenarios: [finetuned], methods: [blackbox_dirichlet]}]\n"
        "method_params: {blackbox_dirichlet: {length: 2, budget: 100, feedback_forget: 10, feedback_retain: 10,"
        " population: 4, components: 2, holdout: 0}}\n"
        "attacks: [{name: consistency}]\n"
        "scoring: logits\n")
    args = ["run", str(config), f"model.finetuned={tiny_models['finetuned']}", "--cache", str(cache)]
    one, two = tmp_path / "one", tmp_path / "two"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args + ["--out", str(one)]) == 0
    proc = _launch(["-m", "pulse_unlearn.cli", *args, "--out", str(two)], _env(), 900,
                   retry_cleanup=lambda: shutil.rmtree(two, ignore_errors=True), mode=mode)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("summary.csv", "predictions.csv", "operations.csv", "search.csv", "attacks.csv"):
        assert _rows(one, name) == _rows(two, name), name
    assert len(_rows(two, "search.csv")) == 5
    assert not list(two.glob(".*"))
