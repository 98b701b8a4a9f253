"""The concepts scenarios through ``pulse run`` on the tiny world with 4 events: each kind of
request forgets what it names, the scope split holds the other concept of the forget images, the
files name concepts by kind; bad sizes are one line before anything is written; a run SIGKILLed
in the second scenario resumes byte for byte."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from processes import pulse, rows, run_killed_once

from pulse_unlearn.cli import main
from pulse_unlearn.data.pebench import load_pebench
from pulse_unlearn.world.build import PEBENCH

CONFIG = """name: concepts
model: {source: world, preset: tiny, events: 4}
splits: {finetune_people: 10, concept_people: 3, concept_events: 1}
grid: [{scenarios: [concepts], methods: [grad_diff], updates: [llm]}]
unlearn: {lr: 3.0e-3, batch_size: 8, lora: {rank: 8, alpha: 16}, epochs: 1}
scoring: likelihood
"""
FILES = ("summary.csv", "predictions.csv", "operations.csv", "sets.json")


@pytest.fixture(scope="module")
def events_world(cache):
    from pulse_unlearn.pipeline import ensure_models

    return ensure_models("tiny", cache, log=lambda *_: None, events=4)["world"]


@pytest.fixture(scope="module")
def config(tmp_path_factory, events_world):
    path = tmp_path_factory.mktemp("cfg") / "concepts.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def whole(config, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "concepts"
    assert pulse("run", config, "--out", out, "--cache", cache) == 0
    return out


def test_each_kind_forgets_what_it_names_and_scope_is_the_other_concept_of_its_images(whole, events_world):
    data = load_pebench(events_world / PEBENCH)
    sets = json.loads((whole / "sets.json").read_text())
    kinds = {"concepts-person": {"person": 3}, "concepts-event": {"event": 1},
             "concepts-both": {"person": 3, "event": 1}}
    assert set(sets) == set(kinds)
    for scenario, counts in kinds.items():
        forget = sets[scenario]["forget_requests"][0]
        assert sets[scenario]["population"] == "concepts"
        assert {k: sum(f.startswith(k + ":") for f in forget) for k in counts} == counts
        assert len(forget) == sum(counts.values())
        gone = set(forget)
        scope = [q for q in data.questions if q.subject not in gone and gone & set(data.shown_with(q.image))]
        summary = [r for r in rows(whole / "summary.csv") if r["scenario"] == scenario and r["step"] == "1"]
        (n,) = [r["n"] for r in summary if r["split"] == "scope" and r["modality"] == "all"]
        assert int(n) == len(scope) > 0
        assert {r["split"] for r in summary} == {"forget", "scope", "retain", "general"}
    assert set(sets["concepts-both"]["forget_requests"][0]) == \
        set(sets["concepts-person"]["forget_requests"][0]) | set(sets["concepts-event"]["forget_requests"][0])
    preds = rows(whole / "predictions.csv")
    assert {r["population"] for r in preds if r["split"] == "scope"} <= {"person", "event"}
    assert {r["population"] for r in preds if r["split"] == "general"} == {""}
    ops = rows(whole / "operations.csv")
    assert {o["scenario"] for o in ops} == set(kinds) and all(int(o["steps"]) > 0 for o in ops)


@pytest.mark.parametrize(("overrides", "message"), [
    (["splits.concept_events=4"], "4 events; splits.concept_events=4 must leave 1 or more to retain"),
    (["splits.concept_people=10", "scenario=concepts-person"],
     "10 people; splits.concept_people=10 must leave 1 or more to retain"),
    (["splits.finetune_people=5"], "the concepts scenarios start from a model fine-tuned on every person"),
    (["model.events=0"], "the concepts scenarios need people and events: set model.events"),
    (["data.pebench=/nonexistent/PEBench"], "/nonexistent/PEBench: PEBench-style folder not found"),
])
def test_bad_concept_sizes_are_one_line_and_nothing_is_written(config, cache, tmp_path, overrides, message):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main(["run", str(config), *overrides, "--out", str(tmp_path / "out"), "--cache", str(cache)])
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("pulse: error: ")]  # after the world's "cached at" lines
    assert status == 2 and errors == lines[-1:] and message in errors[0], lines
    assert not (tmp_path / "out").exists()


def test_sigkill_in_the_second_scenario_resumes_byte_identically(whole, config, cache, tmp_path):
    out = tmp_path / "killed"
    first = out / "resume" / "concepts-event" / "grad_diff--llm" / "op-1.json"
    run_killed_once(first, ["run", str(config), "--out", str(out), "--cache", str(cache)])
    assert pulse("run", config, "--out", out, "--cache", cache) == 0
    for name in FILES:
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name


def test_the_report_shows_the_scope_and_the_interference_of_every_concepts_unit(whole, tmp_path):
    from pulse_unlearn.report.build import build_report, findings_text

    build_report(whole, tmp_path / "report")
    tables = (tmp_path / "report" / "tables.md").read_text()
    assert "## concepts: cross-concept interference" in tables
    block = tables.split("## concepts: cross-concept interference")[1].split("## ")[0]
    for scenario in ("concepts-person", "concepts-event", "concepts-both"):
        assert f"| {scenario} | grad_diff | llm |" in block
        assert f"## {scenario}: after unlearning" in tables
    assert "scope mm" in tables.split("## concepts-person: after unlearning")[1].split("\n\n")[2]
    assert "Cross-concept interference" in findings_text(whole)


def test_balanced_batches_give_the_joint_request_one_step_per_share_of_its_largest_kind(config, cache, tmp_path,
                                                                                       events_world):
    """unlearn.balance=concepts on concepts-both: one epoch is as many batches as the largest kind
    of each modality needs at batch_size / 2 rows a batch (the other kind cycled)."""
    out = tmp_path / "balanced"
    assert pulse("run", config, "scenario=concepts-both", "unlearn.balance=concepts", "--out", out,
                 "--cache", cache) == 0
    data = load_pebench(events_world / PEBENCH)
    forget = json.loads((out / "sets.json").read_text())["concepts-both"]["forget_requests"][0]
    counts: dict[tuple, int] = {}
    for f in data.facts:
        if f.about in forget:
            key = (f.about.split(":")[0], f.example.image is not None)
            counts[key] = counts.get(key, 0) + 1
    per = 8 // 2  # the config's batch_size, two kinds
    expected = sum(-(-max(counts[(k, image)] for k in ("person", "event")) // per) for image in (False, True))
    (op,) = rows(out / "operations.csv")
    assert int(op["steps"]) == expected


@pytest.mark.parametrize("scoring", ["logits", "mllmu"])
def test_the_concepts_splits_under_every_scoring_and_a_generating_run_resumes(whole, config, cache, tmp_path,
                                                                             scoring):
    """The event request under the other two scorings: the same questions in every split as under
    likelihood; under mllmu's generation a run SIGKILLed after its operation resumes byte for byte."""
    args = [config, "scenario=concepts-event", f"scoring={scoring}"]
    out = tmp_path / scoring
    assert pulse("run", *args, "--out", out, "--cache", cache) == 0

    def sizes(run):
        return {(r["step"], r["split"], r["modality"]): r["n"] for r in rows(run / "summary.csv")
                if r["scenario"] == "concepts-event" and r["request"] == "all"}

    assert sizes(out) == sizes(whole) and ("1", "scope", "multimodal") in sizes(out)
    if scoring == "mllmu":
        killed = tmp_path / "killed"
        run_killed_once(killed / "resume" / "concepts-event" / "grad_diff--llm" / "op-1.json",
                        ["run", *map(str, args), "--out", str(killed), "--cache", str(cache)])
        assert pulse("run", *args, "--out", killed, "--cache", cache) == 0
        for name in FILES:
            assert (killed / name).read_bytes() == (out / name).read_bytes(), name
