"""docs/extending.md's worked examples, run as written: its code blocks become a plugin package
with entry points (a ``*.dist-info`` folder on ``sys.path``, as an installed package has), and
``pulse run`` uses the plugin's method, split and metric, which then appear in summary.csv and
the report. Subprocesses: a plugin registered in this process would stay registered for the
other tests."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pulse_unlearn

DOC = Path(__file__).parents[1] / "docs" / "extending.md"
SRC = str(Path(pulse_unlearn.__file__).parents[1])


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def _entry_points() -> str:
    """The doc's pyproject entry points as an installed package's entry_points.txt."""
    (toml,) = _blocks("toml")
    return re.sub(r'\[project\.entry-points\."([^"]+)"\]', r"[\1]", toml).replace('"', "")


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    for block in _blocks("python"):
        first = block.splitlines()[0]
        if first.startswith("# file: "):
            path = root / first.removeprefix("# file: ")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block)
    (root / "pulse_plugin_example" / "__init__.py").touch()
    info = root / "pulse_plugin_example-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pulse-plugin-example\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(_entry_points())
    return root


def _python(plugin: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), SRC]), "PULSE_QUIET": "1",
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=900, **kw)


def test_the_doc_blocks_make_a_plugin(plugin):
    assert sorted(p.name for p in (plugin / "pulse_plugin_example").glob("*.py")) == [
        "__init__.py", "attacks.py", "methods.py", "metrics.py", "scenarios.py", "searches.py", "splits.py"]
    assert "[pulse_unlearn.methods]\nscaled_ga = pulse_plugin_example.methods:ScaledGA" in _entry_points()


def test_pulse_run_with_a_plugin_method_split_and_metric(plugin, tiny_models, cache, tmp_path):
    out = tmp_path / "run"
    done = _python(plugin, "-m", "pulse_unlearn.cli", "run", "demo_tiny", "scenario=finetuned", "method=scaled_ga",
                   "method_params.scaled_ga.scale=0.5", "--out", str(out), "--cache", str(cache))
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {"scaled_ga"}
    assert "answer_margin" in rows[0]
    by = {(r["step"], r["split"], r["modality"]): r for r in rows}
    assert ("1", "bystanders", "all") in by and int(by[("1", "bystanders", "all")]["n"]) > 0
    assert by[("0", "forget", "all")]["answer_margin"] != "" and by[("0", "retain", "all")]["answer_margin"] != ""
    report = _python(plugin, "-m", "pulse_unlearn.cli", "report", str(out))
    assert report.returncode == 0, report.stderr[-2000:]
    html = (out / "report" / "report.html").read_text()
    assert "further metrics" in html and "forget answer_margin" in html
    # A bad plugin parameter is caught when the config is loaded, like a built-in's.
    bad = _python(plugin, "-m", "pulse_unlearn.cli", "run", "demo_tiny", "method=scaled_ga",
                  "method_params.scaled_ga.scale=-1", "--out", str(tmp_path / "bad"), "--cache", str(cache))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "scale" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_a_plugin_scenario_runs_from_its_entry_point(plugin, tiny_models, cache, tmp_path):
    """The doc's scenario, found through its entry point: its two requests run one after the other
    beside the one-shot finetuned scenario it declares as its companion, and its size check is
    one line at load time."""
    out = tmp_path / "run"
    done = _python(plugin, "-m", "pulse_unlearn.cli", "run", "demo_tiny", "scenario=finetuned_halves", "method=ga",
                   "--out", str(out), "--cache", str(cache))
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = {}
    for r in rows:
        steps.setdefault(r["scenario"], set()).add(int(r["step"]))
    assert steps == {"finetuned": {0, 1}, "finetuned_halves": {0, 1, 2}}
    sets = json.loads((out / "sets.json").read_text())
    one_shot, halves = sets["finetuned"]["forget_requests"], sets["finetuned_halves"]["forget_requests"]
    assert [len(r) for r in halves] == [2, 3] and sorted(halves[0] + halves[1]) == sorted(one_shot[0])
    assert max(halves[0]) < min(halves[1])  # the first half by ID, then the second
    requests = {r["request"] for r in rows if r["scenario"] == "finetuned_halves" and r["split"] == "forget"}
    assert {"1", "2"} <= requests
    bad = _python(plugin, "-m", "pulse_unlearn.cli", "run", "demo_tiny", "scenario=finetuned_halves",
                  "splits.forget=1", "--out", str(tmp_path / "bad"), "--cache", str(cache))
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1
    assert "splits.forget: must be >= 2 for two requests (got 1)" in lines[0]
    assert not (tmp_path / "bad").exists()


def test_the_plugin_attack_greys_images_and_checks_its_parameters(plugin):
    code = """
import io
from PIL import Image
from pulse_unlearn.evaluation.attacks import ATTACKS, make_attack
from pulse_unlearn.records import Question
buf = io.BytesIO(); Image.new("RGB", (4, 4), (200, 20, 20)).save(buf, format="PNG")
q = Question("p/multimodal/0", "p", "multimodal", "?", {"A": "x", "B": "y"}, "A", buf.getvalue())
t = Question("p/text/0", "p", "text", "?", {"A": "x", "B": "y"}, "A")
a = make_attack({"name": "grey", "strengths": [1.0]})
(r,) = a.change([q, t], "strength=1", None)
px = Image.open(io.BytesIO(r.image)).getpixel((0, 0))
print(a.settings(), r.qid, px[0] == px[1] == px[2])
try:
    make_attack({"name": "grey", "strengths": [2.0]})
except ValueError as e:
    print(e)
"""
    done = _python(plugin, "-c", code)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()
    assert first == "['strength=1'] p/multimodal/0/strength=1 True"
    assert second == "attack grey: strengths.0: must be <= 1 (got 2.0)"


def test_the_model_family_example_lists_lora_targets(tiny_models):
    (block,) = [b for b in _blocks("python") if "lora_targets" in b]
    code = block.replace("path/to/checkpoint", str(tiny_models["base"]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": SRC})
    assert done.returncode == 0, done.stderr
    layers, projector = re.match(r"(\d+) language-model layers; (\d+) projector layers", done.stdout).groups()
    assert int(layers) > 0 and int(projector) > 0


def test_the_dataset_example_checks_a_folder_and_validates_the_run(tiny_world):
    """The doc's commands on the tiny world's MLLMU-Bench layout: ``pulse doctor --data`` passes, and
    the run command's config validates (``--check``: nothing is loaded or written)."""
    import contextlib
    import io
    import shlex

    from pulse_unlearn.cli import main

    (block,) = _blocks("bash")
    paths = {"path/to/MLLMU-Bench": str(tiny_world / "MLLMU-Bench"),
             "path/to/mmbench_dev_en.tsv": str(tiny_world / "MMBench" / "mmbench_dev_en.tsv")}
    commands = []
    for line in block.strip().splitlines():
        for placeholder, path in paths.items():
            line = line.replace(placeholder, path)
        commands.append(shlex.split(line)[1:])
    assert [c[:2] for c in commands] == [["doctor", "--data"], ["run", "mllmu_llava15"]]
    said = []
    for args in (commands[0], commands[1] + ["--check"]):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
            assert main(args) == 0, args
        said.append(printed.getvalue())
    assert "all checks passed" in said[0]
    assert "sequential  npo" in said[1]  # the run's units, listed without running them


def test_the_plugin_search_is_a_method_and_sees_only_answers(plugin):
    code = """
from pulse_unlearn.blackbox import SEARCHES, Feedback, FeedbackItem
from pulse_unlearn.protocol.catalog import approaches
items = [FeedbackItem(f"{s}{i}", {"A": "x", "B": "y"}, "A", None, s) for s in ("forget", "retain") for i in range(2)]
ask = lambda qs: ["B" if q.text.startswith("forget") and "c" in q.text.split() else "A" for q in qs]
fb = Feedback(ask, items, budget=4 * 4)
best = SEARCHES["blackbox_cycle"](length=1, stride=1)(fb, ["a", "b", "c", "d"], 0)
print("blackbox_cycle" in approaches(), best.words, best.forget, fb.used)
"""
    done = _python(plugin, "-c", code)
    assert done.returncode == 0, done.stderr
    # the empty suffix, then a, b, c: the budget of 16 questions pays for 4 rounds of 4
    assert done.stdout.strip() == "True ('c',) 0.0 16"
