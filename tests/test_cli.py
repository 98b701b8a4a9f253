"""The `pulse` command: bad input is one clear line and exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pulse_unlearn.cli import main
from pulse_unlearn.config import load_config
from pulse_unlearn.errors import PulseError


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pulse_unlearn.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={"HF_HUB_OFFLINE": "1", "PULSE_QUIET": "1", "PATH": "/usr/bin:/bin"})


def test_world_build_cli(tmp_path):
    r = run_cli("world", "build", "--preset", "tiny", "--out", str(tmp_path / "w"), "--cache", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "w" / "MLLMU-Bench" / "Full_Set" / "train-00000-of-00001.parquet").exists()
    assert r.stdout.strip() == str(tmp_path / "w")


@pytest.mark.parametrize("args, message", [
    (["world", "build", "--preset", "huge"], "unknown world preset"),
    (["run", "nope.yaml"], "config file not found"),
    (["demo", "--preset", "huge"], "unknown demo preset"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    r = run_cli(*args, "--cache", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr


@pytest.mark.parametrize("text, overrides, message", [
    ("name: x\nunlearn: {lrr: 1}\n", [], "unlearn.lrr: unknown key"),
    ("grid: [{scenarios: [finetuned], methods: [gaa]}]\n", [], "unknown method 'gaa'"),
    ("name: x\n", ["scenario=pretraind"], "unknown scenario"),
    ("name: x\n", ["unlearn.lr=fast"], "unlearn.lr"),
    ("name: x\n", ["update=everything"], "unknown update"),
    ("[1, 2]\n", [], "top level must be a mapping"),
    ("name: [\n", [], "not valid YAML"),
])
def test_config_errors(tmp_path, text, overrides, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(PulseError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(path, overrides)


def test_overrides_set_nested_values_and_grid(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\n")
    cfg = load_config(path, ["unlearn.lr=2e-4", "method=[ga, npo]", "scenario=sequential",
                             "method_params.npo.beta=0.5"])
    assert cfg.unlearn.lr == 2e-4 and cfg.method_params["npo"]["beta"] == 0.5
    # sequential brings its one-shot comparison along
    assert cfg.units() == [("finetuned", "ga", "llm"), ("finetuned", "npo", "llm"), ("sequential", "ga", "llm"),
                           ("sequential", "npo", "llm")]


def test_main_returns_2_on_pulse_error(capsys, tmp_path):
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
