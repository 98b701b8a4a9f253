"""A grid that mixes a weight-unlearning method and a black-box search: one operations.csv schema
for both (a column that does not apply stays empty), and a run SIGKILLed in its second unit (the
search's) resumes to byte-identical results under every scoring (the wall times apart, in
timings.csv)."""

from __future__ import annotations

import pytest
from processes import pulse, rows, run_killed_once

from pulse_unlearn.protocol.records import OPERATION_COLUMNS

ARGS = ["demo_tiny", "scenario=finetuned", "method=[ga,blackbox_random]",
        "method_params.blackbox_random={length: 2, budget: 80, feedback_forget: 10, feedback_retain: 10, holdout: 0}"]
FILES = ("summary.csv", "predictions.csv", "operations.csv", "search.csv", "findings.csv")


@pytest.mark.parametrize("scoring", ["likelihood", "logits", "mllmu"])
def test_a_mixed_grid_runs_and_resumes_after_sigkill_in_its_second_unit(tiny_models, cache, tmp_path, scoring):
    args = [*ARGS, f"scoring={scoring}"]
    reference = tmp_path / "whole"
    assert pulse("run", *args, "--out", reference, "--cache", cache) == 0
    with open(reference / "operations.csv") as f:
        assert f.readline().strip().split(",") == list(OPERATION_COLUMNS)
    ga, search = rows(reference / "operations.csv")
    assert (ga["method"], search["method"]) == ("ga", "blackbox_random")
    assert ga["suffix"] == ga["queries"] == "" and ga["first_loss"] != ""  # a weight unlearning: losses, no suffix
    assert search["first_loss"] == search["last_loss"] == "" and int(search["queries"]) <= 80
    assert {r["method"] for r in rows(reference / "summary.csv")} == {"ga", "blackbox_random"}

    out = tmp_path / "killed"
    # killed once the first unit's operation is on disk, its wall time included (timings.csv is
    # flushed just after the operation's checkpoint, so waiting for the checkpoint alone races)
    run_killed_once(out / "timings.csv", ["run", *args, "--out", str(out), "--cache", str(cache)],
                    until=lambda p: p.exists() and len(rows(p)) == 1)
    assert (out / "resume" / "finetuned" / "ga--llm" / "op-1.json").exists()
    assert not (out / "resume" / "finetuned" / "blackbox_random--llm" / "op-1.json").exists()
    (ga_before,) = rows(out / "timings.csv")
    assert pulse("run", *args, "--out", out, "--cache", cache) == 0
    for name in FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    # the wall times, apart: read back for the finished unit, measured for the one computed after the restart
    ga, search = rows(out / "timings.csv")
    assert ga == ga_before and search["method"] == "blackbox_random" and float(search["seconds"]) > 0
