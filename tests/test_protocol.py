"""The PULSE runner end to end on the tiny world, its bookkeeping, and evaluation invariants."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from importlib.resources import files
from pathlib import Path

import pytest
import torch

from pulse_unlearn.cli import main
from pulse_unlearn.data.batches import Encoder
from pulse_unlearn.data.mllmu import load_people
from pulse_unlearn.evaluation.scorers import Scorer, accuracy, letter_token_ids
from pulse_unlearn.models.load import load_model
from pulse_unlearn.protocol import sets as splits
from pulse_unlearn.protocol.catalog import units

DEMO_TINY = Path(str(files("pulse_unlearn") / "configs" / "demo_tiny.yaml"))


def test_demo_prints_table_and_findings(tiny_demo):
    out, printed = tiny_demo
    assert "finetuned  ga       projector_llm" in printed
    for finding in ("1. Pre-trained vs fine-tuned", "2. Sequential unlearning", "3. Text-only vs multimodal"):
        assert finding in printed
    assert str(out) in printed
    # the results line names the files the run wrote, and only those (the tiny demo has no trajectories)
    listed = printed.split(f"results: {out}/ (", 1)[1].split(")", 1)[0].split(", ")
    assert "findings.csv" in listed and "trajectory.csv" not in listed
    assert all((out / name).exists() for name in listed)
    assert f"report: {out / 'report' / 'report.html'}" in printed and (out / "report" / "tables.md").exists()
    assert "[sequential] done" in (out / "run.log").read_text()
    # the verdicts: findings.csv, "inconclusive" exactly when the Holm-level interval holds 0, and the
    # share of inconclusive ones printed with the end accuracies' intervals
    from pulse_unlearn import load_run

    found = load_run(out).findings
    assert found is not None and len(found) > 0 and set(found["at"]) == {"budget"}
    holds_zero = (found.ci_low <= 0) & (found.ci_high >= 0)
    assert ((found.verdict == "inconclusive") == holds_zero).all()
    assert f"{int(holds_zero.sum())} of {len(found)} comparisons of the run are inconclusive" in printed
    assert "the end accuracy's bootstrap interval" in printed


def _copy_as_world(run: Path, folder: Path, world: int, **intervals) -> Path:
    """A run folder's results under another world seed (and interval settings) in its config."""
    import shutil

    import yaml

    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("resume", "report"))
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    cfg["model"]["world_seed"] = world
    cfg["intervals"].update(intervals)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def test_compare_pools_runs_verdicts_over_worlds(tiny_demo, tmp_path):
    """Two worlds holding the same results pool to the run's own verdicts (the same resamples in
    every world), with both runs' verdicts agreeing; runs resampled differently are refused."""
    import pandas as pd

    from pulse_unlearn import load_run
    from pulse_unlearn.errors import PulseError
    from pulse_unlearn.protocol.verdicts import KEY
    from pulse_unlearn.report.build import build_compare

    out, _ = tiny_demo
    runs = [_copy_as_world(out, tmp_path / f"world{w}", w) for w in (0, 1)]
    page = build_compare(runs, tmp_path / "cmp").read_text()
    pooled = pd.read_csv(tmp_path / "cmp" / "findings.csv", keep_default_na=False)
    own = load_run(out).findings.fillna("")
    both = own.astype({"finding": str}).merge(pooled.astype({"finding": str}), on=list(KEY), suffixes=("", "_pooled"))
    assert len(both) == len(own) == len(pooled) > 0
    for col in ("estimate", "ci_low", "ci_high", "p_holm"):
        assert (both[col] - both[f"{col}_pooled"]).abs().max() < 1e-9, col
    assert (both.verdict == both.verdict_pooled).all()
    assert set(pooled.worlds) == {2} and set(pooled.agree) == {"2/2"}
    assert "Pooled over 2 world(s)" in page
    assert f"{2 * len(pooled)} of {2 * len(pooled)} per-run verdicts agree" in page
    other = _copy_as_world(out, tmp_path / "other", 2, resamples=500)
    with pytest.raises(PulseError, match="intervals"):
        build_compare([runs[0], other], tmp_path / "cmp2")
    assert not (tmp_path / "cmp2").exists()


def test_pulse_run_with_overrides(tiny_models, cache, tmp_path):
    """`pulse run` on a YAML file with key=value overrides: one scenario, one method."""
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(DEMO_TINY.read_text())
    out = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = main(["run", str(cfg), "scenario=pretrained", "method=npo", "method_params.npo.beta=0.5",
                       "--out", str(out), "--cache", str(cache)])
    assert status == 0
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["scenario"], r["method"], r["update"]) for r in rows} == {("pretrained", "npo", "llm")}
    assert "beta: 0.5" in (out / "config.yaml").read_text()
    # The same folder with another config is refused, and nothing in it is touched.
    before = (out / "summary.csv").read_bytes()
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["run", str(cfg), "scenario=pretrained", "method=ga", "--out", str(out), "--cache",
                     str(cache)]) == 2
    assert "another config" in err.getvalue()
    assert (out / "summary.csv").read_bytes() == before


def test_run_writes_tidy_results(tiny_run):
    cfg, out, rows = tiny_run
    for name in ("summary.csv", "predictions.csv", "operations.csv", "probe.csv", "sets.json", "config.yaml",
                 "environment.json"):
        assert (out / name).exists(), name
    assert list(rows[0]) == ["scenario", "method", "update", "step", "request", "split", "category", "modality",
                             "n", "accuracy", "ci_low", "ci_high", "scoring", "stop", "rouge1", "rouge2", "rougeL",
                             "bleu"]
    # every figure with its interval, people resampled together
    assert all(float(r["ci_low"]) <= float(r["accuracy"]) <= float(r["ci_high"]) for r in rows)
    assert any(float(r["ci_low"]) < float(r["ci_high"]) for r in rows)
    assert {r["stop"] for r in rows} == {"fixed"}
    ran = {(r["scenario"], r["method"], r["update"]) for r in rows}
    assert ran == set(units(cfg))
    assert len(ran) == 3 * 3 + 3
    steps = {(r["scenario"], r["method"]): set() for r in rows}
    for r in rows:
        steps[(r["scenario"], r["method"])].add(int(r["step"]))
    assert steps[("sequential", "npo")] == {0, 1, 2, 3, 4, 5}
    assert steps[("finetuned", "ga")] == {0, 1}
    # Every evaluation reports both modalities on every split.
    for r in rows:
        assert r["modality"] in ("multimodal", "text", "all") and 0.0 <= float(r["accuracy"]) <= 1.0
    keys = {(r["split"], r["modality"]) for r in rows}
    assert {(s, m) for s in ("forget", "retain", "general") for m in ("multimodal", "text")} <= keys
    # The general benchmark also per category: the categories' items add up to the split's.
    general = [r for r in rows if r["split"] == "general" and r["modality"] == "all" and r["step"] == "0"
               and (r["scenario"], r["method"], r["update"]) == ("finetuned", "ga", "llm")]
    by = {r["category"]: int(r["n"]) for r in general}
    assert len(by) > 2 and by.pop("all") == sum(by.values())
    assert {r["category"] for r in rows if r["split"] != "general"} == {"all"}
    env = json.loads((out / "environment.json").read_text())
    assert {"config", "data", "model:base"} <= set(env["fingerprints"]) and env["versions"]["torch"]
    # every grid method's parameters, the defaults the config leaves unset included
    assert set(env["method_params"]) == {m for _, m, _ in units(cfg)}
    assert "npo" not in cfg.method_params and env["method_params"]["npo"]["beta"] == 0.1


def test_forget_test_split_asks_with_test_set_images(tiny_run, tiny_world):
    """The forget people's multimodal questions again, each with a transformed Test_Set image: in
    the scenarios of fictitious people (the world's Test_Set holds no celebrities), multimodal only."""
    from pulse_unlearn.data.mllmu import load_test_images

    cfg, out, rows = tiny_run
    test = [r for r in rows if r["split"] == "forget_test"]
    assert {r["scenario"] for r in test} == {"finetuned", "sequential"}
    assert {r["modality"] for r in test} == {"multimodal", "all"}
    assert {r["rouge1"] for r in test} == {""}
    forget = [r for r in rows if r["split"] == "forget" and r["modality"] == "multimodal"]
    key = lambda r: (r["scenario"], r["method"], r["update"], r["step"], r["request"])  # noqa: E731
    n_forget = {key(r): r["n"] for r in forget}
    assert all(n_forget[key(r)] == r["n"] for r in test if r["modality"] == "multimodal")
    assert {r["request"] for r in test if r["scenario"] == "sequential"} >= {"1", "5", "done", "pending"}
    with open(out / "predictions.csv", newline="") as f:
        preds = [p for p in csv.DictReader(f) if p["split"] == "forget_test"]
    sets = json.loads((out / "sets.json").read_text())
    assert {p["subject"] for p in preds} == set(sets["finetuned"]["forget_requests"][0])
    assert all(p["qid"].endswith("/test") and "/multimodal/" in p["qid"] for p in preds)
    assert len(load_test_images(tiny_world / "MLLMU-Bench")) == 10


def test_sequential_bookkeeping(tiny_run):
    cfg, out, rows = tiny_run
    sets = json.loads((out / "sets.json").read_text())
    requests = sets["sequential"]["forget_requests"]
    assert len(requests) == cfg.splits.requests
    flat = [pid for r in requests for pid in r]
    assert len(flat) == len(set(flat)) == cfg.splits.forget
    # The sequential forget set is exactly the one-shot (finetuned) forget set.
    assert sorted(flat) == sorted(sets["finetuned"]["forget_requests"][0])
    assert not set(flat) & set(sets["sequential"]["retain"])
    # Step 0 is the same starting model for every method, and equals the finetuned scenario's step 0.
    start = {(r["method"], r["split"], r["modality"], r["request"]): r["accuracy"]
             for r in rows if r["scenario"] == "sequential" and r["step"] == "0" and r["category"] == "all"}
    for (method, split, modality, request), acc in start.items():
        assert acc == start[("ga", split, modality, request)]
        if request == "all":
            one_shot = [r["accuracy"] for r in rows if r["scenario"] == "finetuned" and r["step"] == "0"
                        and r["method"] == method and r["update"] == "llm" and r["split"] == split
                        and r["modality"] == modality and r["category"] == "all"]
            assert one_shot == [acc]
    # Per-request rows: "done" after step k covers exactly the first k requests (none at step 0).
    done = [r for r in rows if r["scenario"] == "sequential" and r["request"] == "done" and r["modality"] == "all"
            and r["split"] == "forget" and r["method"] == "ga"]
    per_person = 10  # questions
    assert [int(r["n"]) for r in sorted(done, key=lambda r: int(r["step"]))] == [
        k * len(requests[0]) * per_person for k in range(1, len(requests) + 1)]


def test_step0_equals_the_starting_model(tiny_run, tiny_models):
    cfg, out, rows = tiny_run
    sets = json.loads((out / "sets.json").read_text())
    forget = set(sets["finetuned"]["forget_requests"][0])
    env = json.loads((out / "environment.json").read_text())
    model, proc = load_model(env["models"]["finetuned"])
    people = load_people(tiny_models["world"] / "MLLMU-Bench", "Full_Set")
    questions = [q for p in people if p.id in forget for q in p.questions]
    acc = accuracy(Scorer(Encoder(proc), questions, cfg.scoring)(model))
    recorded = {r["modality"]: float(r["accuracy"]) for r in rows if r["scenario"] == "finetuned"
                and r["method"] == "ga" and r["update"] == "llm" and r["step"] == "0" and r["split"] == "forget"}
    for modality in ("multimodal", "text", "all"):
        assert recorded[modality] == pytest.approx(acc[modality][1], abs=1e-6)


def test_probe_selection_is_recorded(tiny_run):
    cfg, out, _ = tiny_run
    with open(out / "probe.csv", newline="") as f:
        probe = list(csv.DictReader(f))
    sets = json.loads((out / "sets.json").read_text())["pretrained"]
    for row in probe:
        known = float(row["multimodal"]) >= cfg.splits.probe_threshold and float(row["text"]) >= \
            cfg.splits.probe_threshold
        assert int(row["known"]) == known
        if row["selected"]:
            assert known
    selected = {r["id"] for r in probe if r["selected"] == "forget"}
    assert selected == set(sets["forget_requests"][0])
    # Step 0 of the pretrained scenario is the probe's own reading of those people.
    _, _, rows = tiny_run
    for modality in ("multimodal", "text"):
        step0 = [float(r["accuracy"]) for r in rows if r["scenario"] == "pretrained" and r["method"] == "ga"
                 and r["step"] == "0" and r["split"] == "forget" and r["modality"] == modality]
        from_probe = sum(float(r[modality]) for r in probe if r["id"] in selected) / len(selected)
        assert step0 == [pytest.approx(from_probe, abs=1e-3)]


class AlwaysA(torch.nn.Module):
    """Wraps a model so that the option letter A always has the highest logit."""

    def __init__(self, model, token_a: int):
        super().__init__()
        self.model, self.token_a = model, token_a

    def forward(self, **batch):
        out = self.model(**batch)
        out.logits[..., self.token_a] += 1000.0
        return out


def test_a_model_that_always_answers_a_scores_the_share_of_a(tiny_models):
    model, proc = load_model(tiny_models["base"])
    encoder = Encoder(proc)
    people = load_people(tiny_models["world"] / "MLLMU-Bench", "Full_Set")
    questions = [q for p in people for q in p.questions]
    fake = AlwaysA(model, letter_token_ids(encoder, ["A"])["A"])
    preds = Scorer(encoder, questions, "logits")(fake)
    acc = accuracy(preds)
    for modality in ("multimodal", "text"):
        qs = [q for q in questions if q.modality == modality]
        assert acc[modality][0] == len(qs) == 5 * len(people)
        assert acc[modality][1] == pytest.approx(sum(q.answer == "A" for q in qs) / len(qs))
    assert all(p.predicted == "A" for p in preds)


def test_split_helpers():
    ids = [f"{i:03d}" for i in range(100)]
    one = splits.finetuned_sets(ids, 50, seed=0)
    seq = splits.sequential_sets(ids, 50, 5, seed=0)
    assert set(one.forget) == set(seq.forget) and len(seq.requests) == 5
    assert splits.finetuned_sets(ids, 50, seed=0) == one  # seeded
    assert splits.finetuned_sets(ids, 50, seed=1) != one
    sets, note = splits.pretrained_sets(ids[:9], 20, 25, seed=0)
    assert note and len(sets.forget) + len(sets.retain) == 9 and len(sets.forget) == 4
    with pytest.raises(Exception, match="overlap"):
        splits.Sets(requests=(("a", "b"),), retain=("b",))
