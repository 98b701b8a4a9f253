"""Trajectories in a real (tiny) run: rows at exactly the declared checkpoints, the stopping
rule's record, a run killed in the middle of an operation's trajectory resuming byte for byte,
and the trackers receiving the points (TensorBoard, offline). One run, stopping each request
at its own target on its training facts (``shared_runs.WATCHED``, shared with tests/test_attacks.py)."""

from __future__ import annotations

import json

import pytest
from processes import pulse, rows
from shared_runs import WATCHED


@pytest.fixture(scope="module")
def whole(watched):
    """shared_runs.WATCHED, run whole (its attacks are tests/test_attacks.py's)."""
    return watched


def test_checkpoints_are_exactly_the_declared_steps(whole):
    ops = rows(whole / "operations.csv")
    traj = rows(whole / "trajectory.csv")
    assert {(o["scenario"], o["operation"]) for o in ops} == {(r["scenario"], r["operation"]) for r in traj}
    for o in ops:
        key = (o["scenario"], o["operation"])
        steps = sorted({int(r["step"]) for r in traj if (r["scenario"], r["operation"]) == key})
        last = int(o["stopped_at"])
        assert steps == sorted({*range(0, last, 2), last}), o
        assert o["stop"] == "target" and o["sees"] == "training" and o["reason"] in ("target met", "budget spent")
    # a sequential operation's forget split holds its own request only, at most 8 items each
    seq = [r for r in traj if r["scenario"] == "sequential" and r["modality"] == "all"]
    # ... and all of the sequence's people together (forget_sequence), at every checkpoint
    # ... and, before the last operation, the people of the later requests (forget_pending)
    assert {r["split"] for r in seq} == {"forget", "forget_sequence", "forget_pending", "retain", "general",
                                         "forget_facts"}
    assert {r["operation"] for r in seq if r["split"] == "forget_pending"} == {"1"}
    sets = json.loads((whole / "sets.json").read_text())["sequential"]
    pending = {r["subject"] for r in rows(whole / "trajectory_predictions.csv")
               if r["scenario"] == "sequential" and r["split"] == "forget_pending"}
    assert pending and pending <= {str(pid) for pid in sets["forget_requests"][1]}
    assert all(int(r["n"]) <= 8 for r in seq)
    n = {(r["operation"], r["step"], r["split"]): int(r["n"]) for r in seq}
    assert all(n[(op, step, "forget_sequence")] >= n[(op, step, "forget")] for op, step, split in n
               if split == "forget")
    assert {r["stop"] for r in rows(whole / "summary.csv")} == {"target (training facts)"}
    # the rule reads the facts at its checkpoints; the end of an operation evaluates the questions
    assert "forget_facts" not in {r["split"] for r in rows(whole / "summary.csv")}


def test_the_end_of_an_operation_is_its_last_checkpoint(whole):
    """The last checkpoint scores the model the operation ends with: where its items are the
    full evaluation's (retain's first 8 are drawn from 5 people x 10), the two agree item by item."""
    traj = rows(whole / "trajectory.csv")
    summary = rows(whole / "summary.csv")
    matched = rows(whole / "matched.csv")
    # forget_pending is a cost at matched forgetting: what the later requests' people lost by then
    assert matched and {m["split"] for m in matched} == {"retain", "general", "forget_pending"}
    assert {m["scenario"] for m in matched if m["split"] == "forget_pending"} == {"sequential"}
    for m in matched:
        if m["reached"] == "1":
            assert float(m["cost"]) == pytest.approx(float(m["start"]) - float(m["accuracy"]), abs=1e-6)
            assert 0 < float(m["reached_share"]) <= 1  # resampled from trajectory_predictions.csv's items
            if m["cost_ci_low"]:
                assert float(m["cost_ci_low"]) <= float(m["cost_ci_high"])
    items = rows(whole / "trajectory_predictions.csv")
    assert {(r["split"], r["step"]) for r in items} >= {(r["split"], r["step"]) for r in traj}
    # step 0 of operation 1 is the starting model: its forget accuracy on the first request's
    # person equals the summary's step-0 row for request 1 when the subset keeps all of them
    first = [r for r in traj if r["scenario"] == "sequential" and r["operation"] == "1" and r["step"] == "0"
             and r["split"] == "forget" and r["modality"] == "all"]
    start = [r for r in summary if r["scenario"] == "sequential" and r["step"] == "0" and r["split"] == "forget"
             and r["request"] == "1" and r["modality"] == "all"]
    assert len(first) == 1 and len(start) == 1
    if int(start[0]["n"]) <= 8:
        assert first[0]["accuracy"] == start[0]["accuracy"]


def test_sigkill_mid_trajectory_resumes_byte_identically(whole, watched_killed):
    out, _ = watched_killed  # killed while operation 2 had a checkpoint past step 0 and no record
    for name in ("trajectory.csv", "matched.csv", "summary.csv", "predictions.csv", "operations.csv",
                 "trajectory_predictions.csv", "findings.csv", "sensitivity.csv"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name


def test_findings_and_their_sensitivity_are_the_files_judged_again(whole):
    """findings.csv and sensitivity.csv hold what protocol/verdicts.py gives on the run's own item
    files, read back; the sensitivity's levels are trajectory.sensitivity's (0.3, 0.5, 0.7) and
    compare at matched forgetting only."""
    import yaml

    from pulse_unlearn.config.schema import ForgetTarget, IntervalConfig
    from pulse_unlearn.protocol import verdicts

    raw = yaml.safe_load((whole / "config.yaml").read_text())
    intervals, compare = IntervalConfig(**raw["intervals"]), ForgetTarget(**raw["trajectory"]["compare"])
    files = [rows(whole / f) for f in ("predictions.csv", "trajectory.csv", "trajectory_predictions.csv")]
    again = verdicts.level_rows(verdicts.measured(files[0], intervals, files[1], files[2], compare,
                                                  raw["trajectory"]["sensitivity"]), intervals)
    assert again, "the watched run has comparisons at matched forgetting"
    written = rows(whole / "sensitivity.csv")
    assert [{k: str(v) for k, v in r.items()} for r in again] == written
    assert {float(r["kept"]) for r in written} == {0.3, 0.5, 0.7} and {r["at"] for r in written} == {"matched"}


def test_tensorboard_holds_the_trajectory_points(whole):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (whole / "trackers" / "tensorboard" / "watched").glob("events.out.tfevents.*")  # the scalars' file
    acc = EventAccumulator(str(events)).Reload()
    traj = [r for r in rows(whole / "trajectory.csv") if r["scenario"] == "sequential" and r["operation"] == "2"
            and r["split"] == "forget" and r["modality"] == "all"]
    logged = acc.Scalars("sequential/ga_klr/llm/op2/forget/all/accuracy")
    assert [(e.step, round(e.value, 5)) for e in logged] == [(int(r["step"]), round(float(r["accuracy"]), 5))
                                                           for r in traj]
    losses = acc.Scalars("sequential/ga_klr/llm/op2/loss")
    op2 = next(o for o in rows(whole / "operations.csv") if o["scenario"] == "sequential" and o["operation"] == "2")
    assert len(losses) == int(op2["steps"])


def test_the_rule_stops_at_the_first_checkpoint_meeting_it(whole):
    """kept 0.5 on both modalities of the training facts (chance 0): where the operation stopped
    for the target, both are at most half the starting model's value on the same facts, and at
    no earlier checkpoint were both; where the budget was spent, no checkpoint had both. The
    starting model's value is operation 1's step 0 (the same model, the same facts)."""
    traj = [r for r in rows(whole / "trajectory.csv") if r["split"] == "forget_facts" and r["modality"] != "all"]
    for r in traj:
        if r["operation"] == "1" and r["step"] == "0":
            assert r["starting_accuracy"] == r["accuracy"]
    for o in rows(whole / "operations.csv"):
        mine = [r for r in traj if (r["scenario"], r["operation"]) == (o["scenario"], o["operation"])]
        value = {(int(r["step"]), r["modality"]): float(r["accuracy"]) for r in mine}
        starting = {r["modality"]: float(r["starting_accuracy"]) for r in mine}
        steps = sorted({s for s, _ in value})

        def met(step, value=value, starting=starting):
            return all(value[step, m] <= 0.5 * starting[m] + 1e-9 for m in ("multimodal", "text"))

        stopped = int(o["stopped_at"])
        assert stopped == steps[-1]
        assert not any(met(s) for s in steps[:-1])
        assert met(stopped) == (o["reason"] == "target met")


def test_the_report_judges_the_run_at_matched_forgetting(whole, tmp_path):
    from pulse_unlearn.report.build import build_report

    html = build_report(whole, tmp_path / "report").read_text()
    assert "matched forgetting" in html.lower()
    assert "target (training facts)" in html and "ORACLE" not in html  # a training-facts rule is no oracle


def test_an_operation_met_at_step_0_reuses_the_previous_evaluation(cache, tiny_models, tmp_path, monkeypatch):
    """margin 1.0 is met by any model at step 0, so no operation trains: a unit's operation 1 evaluates
    its (unchanged) model, the later ones reuse that evaluation, and every operation's
    predictions equal the starting model's, item by item."""
    from pulse_unlearn.evaluation.evaluator import Evaluator

    calls = []
    score = Evaluator.__call__
    monkeypatch.setattr(Evaluator, "__call__", lambda self, model: calls.append(1) or score(self, model))
    path = tmp_path / "zero.yaml"
    path.write_text(WATCHED.replace("forget: 4, requests: 2", "forget: 3, requests: 3")
                    .replace("methods: [ga_klr]", "methods: [ga]")
                    .replace("rule: kept, kept: 0.5", "rule: margin, margin: 1.0")
                    .replace("log_with: [tensorboard]", "").split("attacks:")[0])
    assert pulse("run", path, "--out", tmp_path / "run", "--cache", cache) == 0
    ops = rows(tmp_path / "run" / "operations.csv")  # the sequential unit and its one-shot baseline
    assert [(o["scenario"], o["steps"], o["reason"]) for o in ops] == \
        [("finetuned", "0", "target met")] + [("sequential", "0", "target met")] * 3
    assert len(calls) == 2  # each unit's operation 1; the starting model's evaluation is not an Evaluator call
    preds = [p for p in rows(tmp_path / "run" / "predictions.csv") if p["scenario"] == "sequential"]
    by_step = {}
    for p in preds:
        by_step.setdefault(p["step"], []).append({k: v for k, v in p.items() if k not in ("step", "operation")})
    assert set(by_step) == {"0", "1", "2", "3"}
    assert by_step["1"] == by_step["0"] and by_step["2"] == by_step["0"] and by_step["3"] == by_step["0"]


def test_compare_pools_the_sensitivity_at_each_level(whole, tmp_path):
    """Two copies of the watched run as two worlds: each level's pooled estimates are the run's own."""
    import shutil

    import yaml

    from pulse_unlearn.report.build import build_compare

    other = tmp_path / "other"
    shutil.copytree(whole, other, ignore=shutil.ignore_patterns("report", "trackers", "checkpoints"))
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["model"]["world_seed"] = int(cfg["model"].get("world_seed") or 0) + 1
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    build_compare([whole, other], tmp_path / "cmp")
    pooled, own = rows(tmp_path / "cmp" / "sensitivity.csv"), rows(whole / "sensitivity.csv")
    key = ("kept", "finding", "method", "update", "scenarios", "target_modality", "comparison")
    assert sorted(tuple(r[k] for k in key) for r in pooled) == sorted(tuple(r[k] for k in key) for r in own)
    estimates = {tuple(r[k] for k in key): float(r["estimate"]) for r in own}
    for r in pooled:
        assert float(r["estimate"]) == pytest.approx(estimates[tuple(r[k] for k in key)], abs=1e-6)
        assert r["worlds"] == "2" and r["agree"].endswith("/2")
    assert "matched forgetting: sensitivity to the target" in (tmp_path / "cmp" / "tables.md").read_text()
