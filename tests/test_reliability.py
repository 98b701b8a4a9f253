"""Reliability: a killed run resumes to the same results, reruns are identical, diverging or
collapsing methods are recorded and the run goes on."""

from __future__ import annotations

import contextlib
import csv
import io

import pytest
import torch
from processes import pulse, run_killed_once

from pulse_unlearn.cli import main
from pulse_unlearn.methods.registry import METHODS, Method, register
from pulse_unlearn.evaluation.collapse import answer_collapse
from pulse_unlearn.evaluation.scorers import Prediction
from pulse_unlearn.report.build import build_report
from pulse_unlearn.protocol.checkpoints import Checkpoints
from pulse_unlearn.protocol.records import Result
from pulse_unlearn.records import Unit

SEQUENTIAL = """name: seq
model: {source: world, preset: tiny}
splits: {finetune_people: 10, forget: 5, requests: 5, probe_threshold: 0.4, pretrained_forget: 3, pretrained_retain: 3}
grid:
  - {scenarios: [sequential], methods: [ga], updates: [llm]}
unlearn: {lr: 3.0e-3, epochs: 1, batch_size: 16, lora: {rank: 8, alpha: 16}}
scoring: likelihood
"""


@pytest.fixture(scope="module")
def seq_config(tmp_path_factory, tiny_models):
    path = tmp_path_factory.mktemp("cfg") / "seq.yaml"
    path.write_text(SEQUENTIAL)
    return path


@pytest.fixture(scope="module")
def uninterrupted(seq_config, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "whole"
    assert pulse("run", seq_config, "--out", out, "--cache", cache) == 0
    return out


def test_same_command_twice_gives_the_same_summary(uninterrupted, seq_config, cache, tmp_path):
    assert pulse("run", seq_config, "--out", tmp_path / "again", "--cache", cache) == 0
    for name in ("summary.csv", "predictions.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (uninterrupted / name).read_bytes(), name


def test_sigkill_then_rerun_resumes_to_the_same_summary(uninterrupted, seq_config, cache, tmp_path):
    out = tmp_path / "killed"
    unit = out / "resume" / "sequential" / "ga--llm"
    run_killed_once(unit / "op-2.json", ["run", str(seq_config), "--out", str(out), "--cache", str(cache)])
    assert not (unit / "op-5.json").exists()
    with open(out / "summary.csv", newline="") as f:
        steps = {int(r["step"]) for r in csv.DictReader(f) if r["scenario"] == "sequential"}
    assert max(steps) < 5  # killed mid-run: the summary so far is whole, but short

    log = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(log):
        assert main(["run", str(seq_config), "--out", str(out), "--cache", str(cache)]) == 0
    assert "operation(s) read back from the interrupted run" in log.getvalue()
    for name in ("summary.csv", "predictions.csv", "operations.csv", "findings.csv"):
        assert (out / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    assert not list(unit.glob("*.adapter"))  # a finished unit keeps its records, not its adapters
    # A finished run run again reads everything back and computes nothing.
    log = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(log):
        assert main(["run", str(seq_config), "--out", str(out), "--cache", str(cache)]) == 0
    assert "op 1:" not in log.getvalue() and "5 of 5 operation(s) read back" in log.getvalue()
    assert (out / "summary.csv").read_bytes() == (uninterrupted / "summary.csv").read_bytes()


@pytest.mark.parametrize("scoring", ["logits", "mllmu"])
def test_sigkill_after_step_0_resumes_under_every_scoring(scoring, seq_config, cache, tmp_path):
    """Every prediction kind (multiple choice; under mllmu also cloze and generation) is read back
    from the step-0 record of a killed run, and the files end up byte-identical to a whole run's.
    (likelihood: the test above.)"""
    quick = ["scenario=finetuned", "method=ga", f"scoring={scoring}", "data.mmbench_subset=6",
             "parity.mc_max_new_tokens=3", "parity.open_max_new_tokens=6", "unlearn.eval_every=2",
             "trajectory.subset=8", "attacks=[{name: image_transforms}]"]
    whole, out = tmp_path / "whole", tmp_path / "killed"
    assert pulse("run", seq_config, *quick, "--out", whole, "--cache", cache) == 0
    run_killed_once(out / "resume" / "finetuned" / "start.json",
                    ["run", str(seq_config), *quick, "--out", str(out), "--cache", str(cache)])
    assert not (out / "resume" / "finetuned" / "ga--llm" / "op-1.json").exists()
    log = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(log):
        assert main(["run", str(seq_config), *quick, "--out", str(out), "--cache", str(cache)]) == 0
    assert "step 0: read back from the interrupted run" in log.getvalue()
    splits = {r["split"] for r in csv.DictReader(open(whole / "summary.csv", newline=""))}
    if scoring == "mllmu":
        assert {"forget_cloze", "forget_generation", "retain_cloze", "retain_generation"} <= splits
    # ... with its trajectory, matched points, sensitivity and attacks (their intervals included)
    for name in ("summary.csv", "predictions.csv", "operations.csv", "sets.json", "findings.csv", "trajectory.csv",
                 "trajectory_predictions.csv", "matched.csv", "sensitivity.csv", "attacks.csv"):
        assert (whole / name).is_file() == (out / name).is_file(), name
        if name in ("summary.csv", "trajectory.csv", "matched.csv", "attacks.csv"):
            assert (whole / name).is_file(), name
        if (whole / name).is_file():
            assert (out / name).read_bytes() == (whole / name).read_bytes(), name


def test_records_of_other_data_or_models_are_never_reused(tmp_path):
    unit = Unit("sequential", "ga", "llm")
    record = Result(summary=[{"accuracy": 0.5}], predictions=[])
    first = Checkpoints(tmp_path / "resume", key="model-a", log=lambda *_: None)
    assert first.unit(unit, 1).operation(1, lambda: record) == record  # computed and saved
    again = Checkpoints(tmp_path / "resume", key="model-a").unit(unit, 1)
    assert again.operation(1, lambda: pytest.fail("a finished operation is not computed again")) == record
    said = []
    other = Checkpoints(tmp_path / "resume", key="model-b", log=said.append)
    assert other.unit(unit, 1).finished == [] and "starting over" in said[0]
    # A stray record of another key (written by hand, say) is not read either.
    (tmp_path / "resume" / "sequential" / "ga--llm").mkdir(parents=True)
    first._write(tmp_path / "resume" / "sequential" / "ga--llm" / "op-1.json", {"summary": []})
    assert other.unit(unit, 1).finished == []
    # An unfinished unit whose adapters are gone starts over rather than skip the lost operations.
    other.unit(unit, 1).operation(1, lambda: record)
    assert other.unit(unit, 2).finished == [] and len(other.unit(unit, 1).finished) == 1


# --- diverging and collapsing methods ---------------------------------------------------------

class NanLoss(Method):
    """Test-only: a NaN loss at the first step."""

    name = "test_nan_loss"

    def forget_loss(self, step):
        return self.nll_of(step, step.forget) * float("nan")


class NanWeights(Method):
    """Test-only: a finite loss whose gradient is NaN, so the weights become NaN, the next loss is
    NaN and the model answers the same letter to everything."""

    name = "test_nan_weights"

    def forget_loss(self, step):
        nll = self.nll_of(step, step.forget)
        return nll + 0.0 * torch.sqrt(nll - nll.detach())  # value: nll; gradient: 0 * inf = NaN


@pytest.fixture
def broken_methods(monkeypatch):
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))  # registered for this test only
    for cls in (NanLoss, NanWeights):
        register(cls)


def test_diverging_and_collapsing_methods_are_recorded_and_the_run_goes_on(broken_methods, seq_config, cache,
                                                                             tmp_path):
    out = tmp_path / "broken"
    assert pulse("run", seq_config, "scenario=finetuned", "method=[test_nan_loss, test_nan_weights, ga]",
                 "--out", out, "--cache", cache) == 0
    with open(out / "operations.csv", newline="") as f:
        ops = {r["method"]: r for r in csv.DictReader(f)}
    assert ops["test_nan_loss"]["diverged_at"] == "0" and ops["test_nan_loss"]["last_loss"] == "nan"
    assert ops["test_nan_weights"]["diverged_at"] == "1" and ops["test_nan_weights"]["collapsed"] == "1"
    assert float(ops["test_nan_weights"]["top_share"]) >= 0.9
    assert ops["ga"]["diverged_at"] == "" and ops["ga"]["collapsed"] == "0"  # the other units ran as usual
    with open(out / "summary.csv", newline="") as f:
        assert {r["method"] for r in csv.DictReader(f) if r["step"] == "1"} == {"test_nan_loss", "test_nan_weights",
                                                                                "ga"}
    page = build_report(out).read_text(encoding="utf-8")
    assert "2 operation(s) diverged or collapsed" in page and "answers collapsed: " in page
    assert "loss nan at step 0" in page and "loss nan at step 1" in page


def _pred(predicted, answer="B"):
    return Prediction("q", "s", "text", answer, predicted, {})


def test_collapse_rule():
    assert answer_collapse([_pred("A")] * 19 + [_pred("B")]).collapsed  # 95% one letter
    assert not answer_collapse([_pred("A")] * 10).collapsed  # too few questions to tell
    assert not answer_collapse([_pred("A")] * 17 + [_pred("B")] * 3).collapsed  # 85%
    assert not answer_collapse([_pred("A", "A")] * 20).collapsed  # the answers themselves are all A
    c = answer_collapse({"forget": [_pred("")] * 15, "general": [_pred("")] * 10})  # no parsable answer at all
    assert c.collapsed and c.letter == "" and c.share == 1.0 and c.n == 25
