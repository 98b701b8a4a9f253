"""The `pulse` command: bad input is one clear line and exit status 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

import pulse_unlearn
from pulse_unlearn.cli import main
from pulse_unlearn.config import apply_overrides
from pulse_unlearn.protocol.catalog import load_config, units
from pulse_unlearn.errors import PulseError


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pulse_unlearn.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={"HF_HUB_OFFLINE": "1", "PULSE_QUIET": "1", "PATH": "/usr/bin:/bin",
                                        "PYTHONPATH": str(Path(pulse_unlearn.__file__).parents[1])})


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
    ("name: x\nunlearn: {lrr: 1}\n", [], "unlearn.lrr: unknown key (did you mean unlearn.lr?)"),
    ("name: x\nunlearn: {lora_rank: 4}\n", [], "unlearn.lora_rank: unknown key (did you mean unlearn.lora.rank?)"),
    ("name: x\nfinetune: {lora_dropout: 0.1}\n", [], "did you mean finetune.lora.dropout?"),
    ("name: x\nunlearn: {xyzzy: 1}\n", [], "unknown key; unlearn takes lr, epochs, batch_size, lora,"),
    ("name: x\n", ["unlearn.lr=1", "unlearn.lr.x=1"], "override unlearn.lr.x: unlearn.lr is not a section"),
    ("name: x\n", ["unlearn.lr=["], "override unlearn.lr: the value '[' is not valid YAML"),
    ("name: x\n", ["=1"], "expected key=value"),
    ("grid: [{scenarios: [finetuned], methods: [ga]}]\n", ["grid.3.methods=[npo]"],
     "override grid.3.methods: grid is not a section (or has no item 3)"),
    ("name: a/b\n", [], "name: must match"),
    ("grid: [{scenarios: [finetuned], methods: [gaa]}]\n", [], "unknown method 'gaa'"),
    ("name: x\n", ["scenario=pretraind"], "unknown scenario"),
    ("name: x\n", ["unlearn.lr=fast"], "unlearn.lr"),
    ("name: x\n", ["update=everything"], "unknown update"),
    ("[1, 2]\n", [], "top level must be a mapping"),
    ("grid: [{scenarios: [finetuned], methods: []}]\n", [], "grid.0.methods: must hold at least 1 item(s)"),
    ("name: [\n", [], "not valid YAML"),
])
def test_config_errors(tmp_path, text, overrides, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(PulseError, match=re.escape(message)):
        load_config(path, overrides)


def test_overrides_set_nested_values_and_grid(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\n")
    cfg = load_config(path, ["unlearn.lr=2e-4", "method=[ga, npo]", "scenario=sequential",
                             "method_params.npo.beta=0.5"])
    assert cfg.unlearn.lr == 2e-4 and cfg.method_params["npo"]["beta"] == 0.5
    # sequential brings its one-shot comparison along
    assert units(cfg) == [("finetuned", "ga", "llm"), ("finetuned", "npo", "llm"), ("sequential", "ga", "llm"),
                           ("sequential", "npo", "llm")]


def test_overrides_reach_list_items_and_leave_the_yaml_tree_alone():
    raw = {"grid": [{"scenarios": ["finetuned"], "methods": ["ga"]}]}
    out = apply_overrides(raw, ["grid.0.methods=[npo, ga_klr]", "unlearn.lora.rank=4"])
    assert out["grid"][0]["methods"] == ["npo", "ga_klr"] and out["unlearn"] == {"lora": {"rank": 4}}
    assert raw == {"grid": [{"scenarios": ["finetuned"], "methods": ["ga"]}]}


def test_main_returns_2_on_pulse_error(capsys, tmp_path):
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_importing_the_config_imports_no_torch():
    code = "import pulse_unlearn.config, sys; assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# Defect 4: shipped configs by name, from any folder.
def _first_comment_line(path) -> str:
    return next(ln for ln in path.read_text().splitlines() if ln.startswith("#"))[1:].strip()


def test_shipped_configs_are_listed_with_their_first_comment_line(tmp_path):
    r = run_cli("configs", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    folder = Path(pulse_unlearn.__file__).parent / "configs"
    shipped = sorted(folder.glob("*.yaml"))
    assert {p.stem for p in shipped} >= {"demo", "demo_tiny", "mllmu_llava15"}
    lines = r.stdout.splitlines()
    assert len(lines) == len(shipped)
    for line, path in zip(lines, shipped):
        name, text = line.split(maxsplit=1)
        assert name == path.stem and text == _first_comment_line(path)
        load_config(name)  # every shipped config is valid


@pytest.mark.parametrize("name", ["demo_tiny", "demo_tiny.yaml", "mllmu_llava15.yaml"])
def test_run_names_a_shipped_config_from_any_folder(tmp_path, name):
    r = run_cli("run", name, "data.mllmu=DIR", "data.mmbench=mmbench_dev_en.tsv", "--check", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = load_config(name)
    assert r.stdout.splitlines()[0].startswith(f"config {cfg.name}: valid; {len(units(cfg))} unit(s)")
    assert [ln.split() for ln in r.stdout.splitlines()[1:]] == [list(u) for u in units(cfg)]
    assert not any(tmp_path.iterdir())  # --check writes nothing


def test_the_command_in_mllmu_llava15s_own_comment_is_valid(tmp_path):
    text = (Path(pulse_unlearn.__file__).parent / "configs" / "mllmu_llava15.yaml").read_text()
    command = next(ln for ln in text.splitlines() if ln.lstrip("# ").startswith("pulse run")).lstrip("# ")
    args = [a for a in command.split()[2:] if a != "\\"]
    assert args[0] == "mllmu_llava15" and "data.mllmu=DIR" in args
    r = run_cli("run", *args, "--check", cwd=tmp_path)
    assert r.returncode == 0 and "valid" in r.stdout, r.stderr


def test_an_unknown_config_name_lists_the_shipped_ones(tmp_path):
    r = run_cli("run", "demo_tinny", cwd=tmp_path)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "demo_tinny: config file not found, nor a shipped config (shipped: demo, demo_tiny, mllmu_llava15" \
        in lines[0]


def test_a_file_of_that_name_wins_over_the_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo_tiny").write_text("name: mine\n")
    assert load_config("demo_tiny").name == "mine"
    assert load_config("demo_tiny.yaml").name == "demo-tiny"


# One LoRA recipe; method parameters declared per method.
def test_one_lora_recipe_everywhere():
    from pulse_unlearn.config import FinetuneConfig, LoraRecipe, UnlearnConfig
    from pulse_unlearn.models.finetune import _flat_settings
    from pulse_unlearn.models.world_models import LoraSettings, models_config

    assert isinstance(UnlearnConfig().lora, LoraRecipe) and isinstance(FinetuneConfig().lora, LoraRecipe)
    assert issubclass(LoraSettings, LoraRecipe)
    # the world models' cache key hashes this JSON: the fields keep their names and order
    assert list(models_config("tiny").model_dump()["lora"]) == ["rank", "alpha", "dropout", "target"]
    # MLLMU-Bench's fine-tuning recipe, and the in-run fine-tuning cache key's flat names
    assert _flat_settings(FinetuneConfig()) == {"lr": 2e-5, "epochs": 5, "batch_size": 4, "lora_rank": 16,
                                                "lora_alpha": 16, "lora_dropout": 0.05, "warmup": 0, "seed": 0}
    assert load_config(None, ["finetune.lora.rank=8"]).finetune.lora.dropout == 0.05


def test_the_world_presets_are_the_configs_choices():
    from pulse_unlearn.config import PRESETS
    from pulse_unlearn.models.world_models import MODEL_PRESETS
    from pulse_unlearn.world.build import WORLD_PRESETS

    assert sorted(PRESETS) == sorted(MODEL_PRESETS) == sorted(WORLD_PRESETS)


@pytest.fixture
def typed_method(monkeypatch):
    """A test-only method whose parameters have each allowed type (registered for this test only)."""
    from pydantic import Field

    from pulse_unlearn.methods import METHODS, Method, MethodParams, get_method, register

    class Typed(get_method("ga")):
        name = "test_typed"

        class Params(MethodParams):
            steps: int = Field(2, ge=1)
            scale: float = Field(0.5, gt=0, le=1)
            flag: bool = False
            mode: Literal["a", "b"] = "a"

    assert issubclass(Typed, Method)
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    register(Typed)
    return Typed


@pytest.mark.parametrize("override, message", [
    ("steps=2.5", "method_params.test_typed.steps: must be an integer (got 2.5)"),
    ("steps=0", "method_params.test_typed.steps: must be >= 1 (got 0)"),
    ("scale=2", "method_params.test_typed.scale: must be <= 1 (got 2)"),
    ("flag=1", "method_params.test_typed.flag: must be true or false (got 1)"),
    ("mode=c", "method_params.test_typed.mode: must be 'a' or 'b' (got 'c')"),
    ("mood=a", "unknown parameter (did you mean method_params.test_typed.mode?); test_typed takes steps (int >= 1), "
               "scale (float > 0, <= 1), flag (bool), mode (one of 'a', 'b')"),
])
def test_method_parameters_are_checked_against_their_declared_types(typed_method, override, message):
    with pytest.raises(PulseError) as e:
        load_config(None, [f"method_params.test_typed.{override}"])
    assert message in str(e.value)


def test_method_parameters_read_as_attributes(typed_method):
    from pulse_unlearn.methods import make_method

    cfg = load_config(None, ["method_params.test_typed.steps=3", "method_params.test_typed.flag=true"])
    assert cfg.method_params == {"test_typed": {"steps": 3, "flag": True}}  # only what was set
    method = make_method("test_typed", **cfg.method_params["test_typed"])
    assert (method.steps, method.scale, method.flag, method.mode) == (3, 0.5, True, "a")
    with pytest.raises(AttributeError):
        method.nothing  # noqa: B018


def test_the_world_seed_reaches_the_world_and_its_models(tmp_path, monkeypatch):
    """``model.world_seed`` (``pulse demo --world-seed``) picks the world and its models: the
    pipeline asks for them with that seed, and the caches key them apart."""
    from pulse_unlearn import pipeline
    from pulse_unlearn.models.world_models import models_config
    from pulse_unlearn.world.build import world_config

    asked = []

    def fake_models(preset, cache, finetuned=True, log=print, seed=0, events=0, **people):
        asked.append((preset, seed, people))
        raise PulseError("stop here")

    monkeypatch.setattr(pipeline, "ensure_models", fake_models)
    assert main(["demo", "--preset", "tiny", "--world-seed", "3", "--out", str(tmp_path / "d"),
                 "--cache", str(tmp_path / "c")]) == 2
    assert asked == [("tiny", 3, {"attributes": 5, "wordings": 3, "world_skills": False})]
    # the world's people too: another world, asked for by the run config
    assert main(["run", "demo_tiny", "model.attributes=12", "model.wordings=6", "model.world_skills=true",
                 "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c")]) == 2
    assert asked[1][2] == {"attributes": 12, "wordings": 6, "world_skills": True}
    assert world_config("tiny", attributes=12).fingerprint() != world_config("tiny").fingerprint()
    assert world_config("tiny", seed=3).fingerprint() != world_config("tiny").fingerprint()
    assert models_config("tiny", seed=3).key("w", "base") != models_config("tiny").key("w", "base")
    assert main(["demo", "--world-seed", "-1", "--out", str(tmp_path / "e")]) == 2
    assert not (tmp_path / "e").exists()
