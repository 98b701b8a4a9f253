"""The retrain oracle (``oracle: retrain``): after each request, the starting model trained again
without the people forgotten so far, at as many passes over each remaining person, scored like a
unit (method ``retrain``, attacked like one); refused where it cannot be made; resumed after SIGKILL byte
for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from processes import pulse, rows, run_killed_once

from pulse_unlearn.errors import PulseError
from pulse_unlearn.models.train import TrainConfig
from pulse_unlearn.models.world_models import read_corpus, same_passes
from pulse_unlearn.protocol.catalog import load_config, units
from pulse_unlearn.records import Unit
from pulse_unlearn.runs.store import model_fingerprint

ARGS = ["demo_tiny", "scenario=[sequential,pretrained]", "method=[ga]", "oracle=retrain", "unlearn.epochs=1",
        "attacks=[{name: relearn}]"]
FILES = ("summary.csv", "predictions.csv", "operations.csv", "findings.csv", "sets.json", "attacks.csv")


def test_same_passes_scales_the_steps_to_the_examples_kept():
    recipe = TrainConfig(steps=40, lr=1e-3)
    assert same_passes(recipe, 6, 10).steps == 24  # 40 * 6 / 10
    assert same_passes(recipe, 7, 9).steps == 31  # 40 * 7 / 9 = 31.1
    assert same_passes(recipe, 1, 1000).steps == 1  # never below one step
    assert same_passes(recipe, 10, 10) is recipe
    assert same_passes(recipe, 6, 10).lr == recipe.lr


def test_oracle_units_come_last_in_each_scenario():
    cfg = load_config("demo_tiny", ["scenario=[finetuned,sequential]", "method=[ga,npo]", "oracle=retrain"])
    got = units(cfg)
    for scenario in ("finetuned", "sequential"):
        of = [u for u in got if u.scenario == scenario]
        assert of[-1] == Unit(scenario, "retrain", "none") and len(of) == 3  # ga, npo, then the oracle
    assert Unit("finetuned", "retrain", "none") not in units(load_config("demo_tiny", ["scenario=finetuned"]))


@pytest.mark.parametrize("overrides, says", [
    (["scenario=concepts-person", "model.events=2"], "concepts-person scenario has no retrain oracle"),
    (["scenario=finetuned", "model.finetuned=/some/model"], "a given model.finetuned"),
    (["scenario=pretrained", "model.source=path", "model.base=/some/model"], "only the embedded world"),
])
def test_oracle_refused_where_it_cannot_be_made(overrides, says):
    with pytest.raises(PulseError, match="oracle: ") as e:
        load_config("demo_tiny", [*overrides, "oracle=retrain"])
    assert says in str(e.value)


def test_an_unknown_oracle_exits_2_and_writes_nothing(tmp_path, cache):
    assert pulse("run", "demo_tiny", "oracle=retrained", "--out", tmp_path / "x", "--cache", cache) == 2
    assert not (tmp_path / "x").exists()


def _models_by_fingerprint(cache: Path) -> dict[str, dict]:
    return {model_fingerprint(p): json.loads((p / "pulse_model.json").read_text())
            for p in (cache / "models").iterdir() if (p / "pulse_model.json").exists()}


def test_the_oracle_is_the_start_trained_without_the_forgotten_and_resumes_after_sigkill(tiny_models, cache,
                                                                                          tmp_path):
    whole = tmp_path / "whole"
    assert pulse("run", *ARGS, "--out", whole, "--cache", cache) == 0
    sets = json.loads((whole / "sets.json").read_text())
    made = _models_by_fingerprint(cache)
    ops = [r for r in rows(whole / "operations.csv") if r["method"] == "retrain"]
    assert [(r["scenario"], r["operation"]) for r in ops] == (
        [("finetuned", "1")] + [("pretrained", "1")] + [("sequential", str(k)) for k in range(1, 6)])
    start = json.loads((tiny_models["finetuned"] / "pulse_model.json").read_text())
    learnt, full_steps = sorted(start["people"]), start["config"]["finetune"]["steps"]
    for r in ops:
        meta = made[r["model"]]  # operations.csv names the oracle's model by its fingerprint
        requests = sets[r["scenario"]]["forget_requests"][:int(r["operation"])]
        forgotten = sorted(pid for request in requests for pid in request)
        if r["scenario"] == "pretrained":
            assert meta["kind"] == "base" and meta["without"] == forgotten
            corpus = read_corpus(tiny_models["world"])
            kept = read_corpus(tiny_models["world"], set(forgotten))
            assert 0 < len(kept) < len(corpus)
            assert meta["steps"] == round(meta["config"]["pretrain"]["steps"] * len(kept) / len(corpus))
        else:  # every person has as many facts: the steps scale with the people kept
            assert meta["people"] == sorted(set(learnt) - set(forgotten))
            assert meta["config"]["finetune"]["steps"] == round(full_steps * len(meta["people"]) / len(learnt))
    summary = [r for r in rows(whole / "summary.csv") if r["method"] == "retrain"]
    assert {r["stop"] for r in summary if r["step"] != "0"} == {"retrain"}
    assert {(r["scenario"], r["step"]) for r in summary} >= {("sequential", str(k)) for k in range(6)}
    assert not [r for r in rows(whole / "findings.csv") if r["method"] == "retrain"]  # a reference, not judged
    # relearning the oracle: what the attack teaches people the model never knew
    relearnt = [r for r in rows(whole / "attacks.csv") if r["method"] == "retrain" and r["operation"] != "0"]
    assert {r["scenario"] for r in relearnt} == {"finetuned", "pretrained", "sequential"}

    killed = tmp_path / "killed"
    run_killed_once(killed / "resume" / "sequential" / "retrain--none" / "op-2.json",
                    ["run", *ARGS, "--out", str(killed), "--cache", str(cache)])
    assert pulse("run", *ARGS, "--out", killed, "--cache", cache) == 0
    for name in FILES:
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


@pytest.mark.parametrize("scoring", ["logits", "mllmu"])
def test_the_oracle_resumes_after_sigkill_under_the_other_scorings(tiny_models, cache, tmp_path, scoring):
    args = ["demo_tiny", "scenario=finetuned", "method=[ga]", "oracle=retrain", "unlearn.epochs=1",
            f"scoring={scoring}"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert pulse("run", *args, "--out", whole, "--cache", cache) == 0
    run_killed_once(killed / "resume" / "finetuned" / "ga--llm" / "op-1.json",
                    ["run", *args, "--out", str(killed), "--cache", str(cache)])
    assert not (killed / "resume" / "finetuned" / "retrain--none" / "op-1.json").exists()  # killed before the oracle
    assert pulse("run", *args, "--out", killed, "--cache", cache) == 0
    for name in FILES[:-1]:  # no attacks here
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name
