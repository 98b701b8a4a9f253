"""The continual-unlearning methods through ``pulse run`` on the tiny world: rmu, mmunlearner and
simnpo_replay (with general items held out for its replay) in each scenario, with GRU's
projection and orthogonal adapters on; and the same run SIGKILLed after the last unit's first
sequential operation, then resumed, byte for byte (the second operation then rebuilds the first
one's stacked adapter, and its orthogonality penalty, from the saved file)."""

from __future__ import annotations

import pytest
from processes import pulse, rows, run_killed_once

CONTINUAL = """name: continual
model: {source: world, preset: tiny}
splits: {finetune_people: 10, forget: 4, requests: 2, probe_threshold: 0.4, pretrained_forget: 3, pretrained_retain: 3}
grid:
  - {scenarios: [finetuned, pretrained, sequential], methods: [rmu, mmunlearner, simnpo_replay], updates: [llm]}
unlearn: {lr: 3.0e-3, batch_size: 8, lora: {rank: 8, alpha: 16}, projection: gru, adapters: orthogonal}
method_params: {rmu: {layer: 2}, mmunlearner: {batches: 2}}
data: {replay: 8}
scoring: likelihood
"""
FILES = ("summary.csv", "predictions.csv", "operations.csv")  # the wall times are in timings.csv


@pytest.fixture(scope="module")
def config(tmp_path_factory, tiny_models):
    path = tmp_path_factory.mktemp("cfg") / "continual.yaml"
    path.write_text(CONTINUAL)
    return path


@pytest.fixture(scope="module")
def whole(config, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "continual"
    assert pulse("run", config, "--out", out, "--cache", cache) == 0
    return out


def test_every_new_method_runs_in_each_scenario(whole):
    ops = rows(whole / "operations.csv")
    assert {(o["scenario"], o["method"]) for o in ops} == {
        (s, m) for s in ("finetuned", "pretrained", "sequential") for m in ("rmu", "mmunlearner", "simnpo_replay")}
    assert all(o["diverged_at"] == "" and int(o["steps"]) > 0 for o in ops)
    summary = rows(whole / "summary.csv")
    last = [r for r in summary if r["scenario"] == "sequential" and r["step"] == "2" and r["split"] == "forget"]
    assert last and all(0 <= float(r["accuracy"]) <= 1 for r in last)
    general = {r["qid"] for r in rows(whole / "predictions.csv") if r["split"] == "general"}
    assert len(general) == 40 - 8  # the tiny world's benchmark less the held-out replay items
    config = (whole / "config.yaml").read_text()
    assert "projection: gru" in config and "adapters: orthogonal" in config


def test_sigkill_after_an_orthogonal_operation_resumes_byte_identically(whole, config, cache, tmp_path):
    out = tmp_path / "killed"
    first = out / "resume" / "sequential" / "simnpo_replay--llm" / "op-1.json"
    run_killed_once(first, ["run", str(config), "--out", str(out), "--cache", str(cache)])
    assert not (out / "resume" / "sequential" / "simnpo_replay--llm" / "op-2.json").exists()
    assert pulse("run", config, "--out", out, "--cache", cache) == 0
    for name in FILES:
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
