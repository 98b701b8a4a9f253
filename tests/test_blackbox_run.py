"""Black-box units through ``pulse run`` on the tiny world: the model as a black box answers
what the scorer answers, the suffix reaches every split's prompts, search.csv and
operations.csv hold the search, the attacks on the weights do not apply, a run SIGKILLed after
its first operation resumes byte for byte under every scoring, and bad parameters are one line
before anything is written."""

from __future__ import annotations

import contextlib
import io

import pytest
from processes import pulse, rows, run_killed_once

from pulse_unlearn.cli import main

CONFIG = """name: blackbox
model: {source: world, preset: tiny}
splits: {finetune_people: 10, forget: 4, requests: 2, probe_threshold: 0.4, pretrained_forget: 3,
         pretrained_retain: 3}
grid: [{scenarios: [sequential], methods: [blackbox_dirichlet], updates: [llm]}]
method_params: {blackbox_dirichlet: {length: 2, budget: 120, feedback_forget: 10, feedback_retain: 10,
                                     population: 4, components: 2, holdout: 0}}
attacks: [{name: relearn, steps: 2}, {name: consistency}, {name: image_transforms, transforms: [blur]}]
scoring: likelihood
"""
FILES = ("summary.csv", "predictions.csv", "operations.csv", "search.csv", "attacks.csv")


@pytest.fixture(scope="module")
def config(tmp_path_factory, tiny_models):
    path = tmp_path_factory.mktemp("cfg") / "blackbox.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def whole(config, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "blackbox"
    assert pulse("run", config, "--out", out, "--cache", cache) == 0
    return out


def test_the_search_is_recorded_and_its_best_suffix_is_the_operations(whole):
    search, ops = rows(whole / "search.csv"), rows(whole / "operations.csv")
    assert {(o["scenario"], o["operation"]) for o in ops} == {("finetuned", "1"), ("sequential", "1"),
                                                              ("sequential", "2")}
    for op in ops:
        asked = [r for r in search if (r["scenario"], r["operation"]) == (op["scenario"], op["operation"])]
        queries = [int(r["queries"]) for r in asked]
        assert queries == [20 * (i + 1) for i in range(len(asked))] and queries[-1] <= 120  # 20 questions a suffix
        assert int(op["queries"]) == queries[-1] and int(op["steps"]) == len(asked) == 6
        best = max(asked, key=lambda r: float(r["objective"]))  # the first of equals
        assert op["suffix"] == best["suffix"] and asked[0]["suffix"] == ""
        tops = [float(r["best_objective"]) for r in asked]
        assert tops == [max(float(r["objective"]) for r in asked[:i + 1]) for i in range(len(asked))]
        # the objective by hand: (1 - forget) - 10 * max(0, (retain of the empty suffix - 0.05) - retain)
        r0 = float(asked[0]["retain"])
        for r in asked:
            want = 1 - float(r["forget"]) - 10 * max(0.0, r0 - 0.05 - float(r["retain"]))
            assert float(r["objective"]) == pytest.approx(want, abs=1e-5)
    attacks = rows(whole / "attacks.csv")
    # the attacks on the inputs and the predictions run with the suffix; relearn does not apply
    assert {a["attack"] for a in attacks if a["operation"] != "0"} == {"consistency", "image_transforms"}
    assert {a["attack"] for a in attacks if a["operation"] == "0"} == {"consistency", "relearn", "image_transforms"}


@pytest.mark.parametrize("scoring", ["logits", "mllmu"])
def test_the_black_box_answers_as_the_scorer_and_the_suffix_reaches_every_prompt(tiny_models, scoring):
    from pulse_unlearn.blackbox import Query
    from pulse_unlearn.blackbox.feedback import replied_letter
    from pulse_unlearn.protocol.catalog import units, validate
    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.data.sources import load_sources
    from pulse_unlearn.evaluation.black_box_model import model_black_box
    from pulse_unlearn.evaluation.evaluator import Evaluator
    from pulse_unlearn.models.load import load_model
    from pulse_unlearn.protocol import scenarios

    w = tiny_models["world"]
    cfg = validate({"name": "b", "model": {"source": "world", "preset": "tiny"},
                    "splits": {"finetune_people": 10, "forget": 4, "requests": 2, "probe_threshold": 0.4,
                               "pretrained_forget": 3, "pretrained_retain": 3},
                    "grid": [{"scenarios": ["finetuned"], "methods": ["blackbox_random"]}],
                    "scoring": scoring, "parity": {"few_shot": False}}, "b")
    src = load_sources(w / "MLLMU-Bench", w / "MMBench" / "mmbench_dev_en.tsv", 8, 0)
    sets = scenarios.plan(cfg, units(cfg), src, w / "MLLMU-Bench").sets["finetuned"]
    model, processor = load_model(tiny_models["finetuned"], dtype="float32", device="cpu")
    plain = Evaluator(Encoder(processor), cfg, src, sets)
    suffixed = plain.with_suffix(["quiet", "river"])
    assert [q.question for q in suffixed.scorers["forget"].questions] == \
        [q.question + " quiet river" for q in plain.scorers["forget"].questions]
    box = model_black_box(model, plain.encoder, cfg)
    questions = suffixed.scorers["forget"].questions
    got = box([Query(q.question, q.options, q.image) for q in questions])
    scorer = suffixed.scorers["forget"]
    letters = [replied_letter(r, q.options) for r, q in zip(got, questions)]
    assert letters == [p.predicted for p in scorer(model)]
    # under mllmu the reply is the generated text itself, as an API returns it; else the letter
    assert got == (scorer.replies if scoring == "mllmu" else letters)


@pytest.mark.parametrize("scoring", ["likelihood", "logits", "mllmu"])
def test_sigkill_after_the_first_operation_resumes_byte_identically(config, cache, tmp_path, scoring):
    # with a holdout, so search.csv's holdout_retain column is resumed too
    args = [config, f"scoring={scoring}", "method_params.blackbox_dirichlet.holdout=10",
            "method_params.blackbox_dirichlet.finalists=2", "method_params.blackbox_dirichlet.budget=150"]
    reference = tmp_path / "whole"
    assert pulse("run", *args, "--out", reference, "--cache", cache) == 0
    assert any(r["holdout_retain"] != "" for r in rows(reference / "search.csv"))
    out = tmp_path / "killed"
    run_killed_once(out / "resume" / "sequential" / "blackbox_dirichlet--llm" / "op-1.json",
                    ["run", *map(str, args), "--out", str(out), "--cache", str(cache)])
    assert pulse("run", *args, "--out", out, "--cache", cache) == 0
    for name in FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_a_holdout_rechecks_the_finalists_and_picks_the_suffix(config, cache, tmp_path):
    out = tmp_path / "holdout"
    assert pulse("run", config, "method_params.blackbox_dirichlet.holdout=10",
                 "method_params.blackbox_dirichlet.finalists=2", "method_params.blackbox_dirichlet.budget=150",
                 "--out", out, "--cache", cache) == 0
    search, ops = rows(out / "search.csv"), rows(out / "operations.csv")
    for op in ops:
        asked = [r for r in search if (r["scenario"], r["operation"]) == (op["scenario"], op["operation"])]
        assert len(asked) == 6 and int(op["queries"]) == 6 * 20 + 3 * 10  # the search, then 3 re-checks
        ranked = sorted((r for r in asked[1:]), key=lambda r: -float(r["objective"]))  # stable: first asked first
        checked = [r for r in asked if r["holdout_retain"] != ""]
        assert {r["asked"] for r in checked} == {asked[0]["asked"], *(r["asked"] for r in ranked[:2])}
        r0, h0 = float(asked[0]["retain"]), float(asked[0]["holdout_retain"])
        judged = [1 - float(r["forget"]) - 10 * max(0.0, r0 - 0.05 - float(r["retain"]),
                                                      h0 - 0.05 - float(r["holdout_retain"]))
                  for r in (asked[0], *ranked[:2])]
        assert op["suffix"] == (asked[0], *ranked[:2])[judged.index(max(judged))]["suffix"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["method_params.blackbox_dirichlet.budget=30"],
     "method_params.blackbox_dirichlet.budget=30 must be at least 2 x (feedback_forget + feedback_retain) = 40"),
    (["method_params.blackbox_dirichlet.holdout=20"],
     "budget=120 must be at least 2 x (feedback_forget + feedback_retain) + (finalists + 1) x holdout = 160"),
    (["method_params.blackbox_dirichlet.vocabulary=/nonexistent/words.txt"], "vocabulary /nonexistent/words.txt: "),
    (["method_params.blackbox_dirichlet.elite=0"], "method_params.blackbox_dirichlet.elite"),
    (["method_params.blackbox_greedy.length=0"], "method_params.blackbox_greedy.length"),
    (["method_params.blackbox_dirichlet.finalists=0"], "method_params.blackbox_dirichlet.finalists"),
    (["method_params.blackbox_dirichlet.holdout=-1"], "method_params.blackbox_dirichlet.holdout"),
])
def test_bad_search_parameters_are_one_line_and_nothing_is_written(config, cache, tmp_path, overrides, message):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main(["run", str(config), *overrides, "--out", str(tmp_path / "out"), "--cache", str(cache)])
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("pulse: error: ")]
    assert status == 2 and errors == lines[-1:] and message in errors[0], lines
    assert not (tmp_path / "out").exists()


def test_the_report_shows_the_suffixes_the_curve_and_says_a_guardrail_is_not_removal(whole, tmp_path):
    from pulse_unlearn import load_run
    from pulse_unlearn.report.build import build_report, findings_text

    build_report(whole, tmp_path / "report")
    tables = (tmp_path / "report" / "tables.md").read_text()
    block = tables.split("## black-box suffixes")[1].split("## ")[0]
    ops = rows(whole / "operations.csv")
    for op in ops:
        assert f"| {op['scenario']} | blackbox_dirichlet | {op['operation']} | '{op['suffix']}' | {op['queries']} |" \
            in block
    assert (tmp_path / "report" / "queries.png").is_file()
    assert not (tmp_path / "report" / "suffix_lengths.png").exists()  # one length: no length figure
    assert "a guardrail and not removal" in findings_text(whole)
    run = load_run(whole)
    assert run.search.suffix.fillna("").tolist() == [r["suffix"] for r in rows(whole / "search.csv")]


def test_compared_runs_at_two_lengths_plot_accuracy_against_the_length(whole, tmp_path):
    import shutil

    import yaml

    from pulse_unlearn.report.suffix_search import length_points
    from pulse_unlearn.report.build import build_compare
    from pulse_unlearn.report.runs import read_run

    other = tmp_path / "length3"
    shutil.copytree(whole, other, ignore=shutil.ignore_patterns("report"))
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["method_params"]["blackbox_dirichlet"]["length"] = 3
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    # after each unit's last operation (finetuned: 1, sequential: 2), all questions
    summary = rows(whole / "summary.csv")
    want = {split: sorted(float(r["accuracy"]) for r in summary
                          if (r["scenario"], r["step"]) in {("finetuned", "1"), ("sequential", "2")}
                          and r["method"] == "blackbox_dirichlet" and r["split"] == split
                          and r["modality"] == "all" and r["request"] == "all")
            for split in ("forget", "retain")}
    points = length_points([read_run(whole), read_run(other)])
    assert set(points) == {"blackbox_dirichlet"} and set(points["blackbox_dirichlet"]) == {2, 3}
    for length in (2, 3):
        assert {k: sorted(v) for k, v in points["blackbox_dirichlet"][length].items()} == want
    build_compare([whole, other], tmp_path / "cmp")
    assert (tmp_path / "cmp" / "suffix_lengths.png").is_file()
