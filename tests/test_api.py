"""The Python API: ``pulse_unlearn.run`` and ``pulse_unlearn.load_run``, and the README's example."""

from __future__ import annotations

import contextlib
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pulse_unlearn
from pulse_unlearn.cli import main
from pulse_unlearn.errors import PulseError
from pulse_unlearn.protocol.catalog import units

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The first Python block of the README's "Python API" section."""
    section = README.read_text().split("### Python API\n", 1)[1].split("\n### ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_import_loads_neither_torch_nor_pandas():
    code = "import sys, pulse_unlearn; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    assert callable(pulse_unlearn.run) and callable(pulse_unlearn.load_run)


def test_readme_example_runs_and_matches_the_cli(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PULSE_CACHE", str(cache))
    scope: dict = {}
    exec(compile(readme_example(), str(README), "exec"), scope)
    printed = capsys.readouterr().out
    run, folder = scope["run"], tmp_path / "runs" / "api-example"
    assert run.folder == Path("runs/api-example") and (folder / "run.log").is_file()
    assert "start model evaluated" in (folder / "run.log").read_text()  # logged like `pulse run`
    summary = run.summary
    assert set(summary.method) == {"ga"} and set(summary.scenario) == {"finetuned"}
    assert sorted(set(summary.step)) == [0, 1]
    assert run.config["grid"] == [{"scenarios": ["finetuned"], "methods": ["ga"], "updates": ["llm"]}]
    assert "_config_hash" not in run.config and run.probe is None
    assert list(run.sets) == ["finetuned"] and run.environment["fingerprints"]["config"]
    assert len(run.operations) == 1 and run.operations.steps[0] > 0
    assert "seconds" not in run.operations and list(run.timings.columns) == [
        "scenario", "method", "update", "operation", "seconds"] and run.timings.seconds[0] > 0
    # The printed group means are the summary's own accuracies (one row per step and modality).
    forget = summary[summary.split == "forget"].set_index(["step", "modality"]).accuracy
    shown = lambda v: f"{v:.2f}".rstrip("0")  # noqa: E731  (pandas prints 0.40 as 0.4 in a column of 2-decimal values)
    assert shown(forget[(1, "multimodal")]) in printed and shown(forget[(0, "text")]) in printed
    # predictions: identifiers stay text; the forget accuracy is the share of correct forget answers
    preds = run.predictions
    assert preds.subject.map(type).eq(str).all()
    at_end = preds[(preds.step == 1) & (preds.split == "forget") & (preds.modality == "text")]
    assert math.isclose(at_end.correct.mean(), forget[(1, "text")], abs_tol=1e-4)
    # `pulse run` goes through the same API: the same command on the same folder finds it done.
    before = {p.name: p.read_bytes() for p in folder.glob("*.csv")}
    config = str(Path(pulse_unlearn.__file__).parent / "configs" / "demo_tiny.yaml")
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", config, "scenario=finetuned", "method=ga", "--out", "runs/api-example"]) == 0
    assert capsys.readouterr().out.strip() == "results: runs/api-example/summary.csv (report: pulse report " \
                                              "runs/api-example)"
    assert {p.name: p.read_bytes() for p in folder.glob("*.csv")} == before


def _write_run(folder: Path) -> Path:
    """A run folder written by hand: one summary row, two predictions (one a generation item)."""
    folder.mkdir()
    (folder / "config.yaml").write_text("name: hand\nseed: 3\n_config_hash: abc\n")
    (folder / "summary.csv").write_text(
        "scenario,method,update,step,request,split,modality,n,accuracy,scoring,rouge1,rouge2,rougeL,bleu\n"
        "finetuned,ga,llm,0,all,forget,text,2,0.5,mllmu,,,,\n")
    (folder / "predictions.csv").write_text(
        "scenario,method,update,step,split,qid,subject,modality,answer,predicted,correct,rouge1,rouge2,rougeL,bleu\n"
        "finetuned,ga,llm,0,forget,007/text/0,007,text,B,None,0,,,,\n"
        "finetuned,ga,llm,0,forget_generation,007/text/g0,007,text,In 1950.,NA,0.25,0.5,0.0,0.25,0.1\n")
    return folder


def test_load_run_keeps_identifiers_as_text(tmp_path):
    run = pulse_unlearn.load_run(_write_run(tmp_path / "r"))
    assert run.config == {"name": "hand", "seed": 3}
    assert run.environment == {} and run.sets == {} and run.probe is None and run.operations.empty
    assert list(run.predictions.subject) == ["007", "007"]  # not the number 7
    assert list(run.predictions.predicted) == ["None", "NA"]  # an answer, not a missing value
    assert math.isnan(run.predictions.rouge1[0]) and run.predictions.rouge1[1] == 0.5
    assert run.summary.accuracy.tolist() == [0.5] and run.summary.step.tolist() == [0]


@pytest.mark.parametrize("kind", ["absent", "empty", "summary only", "config only"])
def test_load_run_refuses_a_folder_that_is_no_run(tmp_path, kind):
    folder = tmp_path / "r"
    if kind != "absent":
        folder.mkdir()
    if kind == "summary only":
        (folder / "summary.csv").write_text("scenario\n")
    if kind == "config only":
        (folder / "config.yaml").write_text("name: x\n")
    with pytest.raises(PulseError, match="not a pulse run folder") as e:
        pulse_unlearn.load_run(folder)
    assert "\n" not in str(e.value)


def test_run_checks_a_dict_config_before_writing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(PulseError, match=r"config: unlearn.lrr: unknown key") as e:
        pulse_unlearn.run({"name": "x", "unlearn": {"lrr": 1}}, out=out, cache=tmp_path)
    assert "\n" not in str(e.value)
    with pytest.raises(PulseError, match="unknown method 'gaa'"):
        pulse_unlearn.run({"name": "x"}, ["method=gaa"], out=out, cache=tmp_path)
    assert not out.exists()


def test_resolve_config_takes_every_form(tmp_path):
    from pulse_unlearn.api import resolve_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "c", "unlearn": {"lr": 0.01}}))
    from_file = resolve_config(path, ["method=npo"])
    from_dict = resolve_config({"name": "c", "unlearn": {"lr": 0.01}}, ["method=npo"])
    from_object = resolve_config(resolve_config(path, []), ["method=npo"])
    assert from_file == from_dict == from_object
    assert from_file.unlearn.lr == 0.01 and units(from_file) == [("finetuned", "npo", "llm")]
    assert resolve_config(from_file, []) is from_file
