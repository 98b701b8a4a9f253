"""Bad input through the `pulse` command: one line naming the problem and the file, exit
status 2, and nothing written. Each case breaks a copy of the tiny world's data or models."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pulse_unlearn.cli import main


@pytest.fixture(scope="module")
def pristine(tiny_models, tmp_path_factory):
    """A copy of the tiny world's data and of its two models, for cases to copy and break."""
    root = tmp_path_factory.mktemp("pristine")
    world = tiny_models["world"]
    shutil.copytree(world / "MLLMU-Bench", root / "data" / "MLLMU-Bench")
    shutil.copytree(world / "MMBench", root / "data" / "MMBench")
    shutil.copytree(tiny_models["base"], root / "base")
    shutil.copytree(tiny_models["finetuned"], root / "finetuned")
    return root


class Case:
    """A tmp folder holding data/, base/, finetuned/ and the config to run."""

    def __init__(self, pristine: Path, tmp: Path):
        shutil.copytree(pristine, tmp, dirs_exist_ok=True)
        self.root = tmp
        self.mllmu = tmp / "data" / "MLLMU-Bench"
        self.tsv = tmp / "data" / "MMBench" / "mmbench_dev_en.tsv"
        self.config = tmp / "exp.yaml"
        self.config.write_text(
            "name: bad\n"
            f"model: {{source: path, base: {tmp / 'base'}, finetuned: {tmp / 'finetuned'}}}\n"
            f"data: {{mllmu: {self.mllmu}, mmbench: {self.tsv}}}\n"
            "splits: {finetune_people: 10, forget: 5, requests: 5, probe_threshold: 0.4, pretrained_forget: 3, "
            "pretrained_retain: 3}\n"
            "grid: [{scenarios: [finetuned, pretrained], methods: [ga]}]\n")
        self.out = tmp / "out"

    def parquet(self, subset: str) -> Path:
        return next((self.mllmu / subset).glob("*.parquet"))

    def rows(self, subset: str, edit) -> None:
        """Rewrite a subset's rows through ``edit(rows) -> rows`` (same schema)."""
        path = self.parquet(subset)
        table = pq.read_table(path)
        pq.write_table(pa.Table.from_pylist(edit(table.to_pylist()), schema=table.schema), path)

    def tsv_rows(self, edit) -> None:
        lines = self.tsv.read_text().splitlines()
        head, rows = lines[0].split("\t"), [ln.split("\t") for ln in lines[1:]]
        head, rows = edit(head, rows)
        self.tsv.write_text("\n".join("\t".join(r) for r in [head, *rows]) + "\n")


def _set_answer(rows, value):
    task = rows[0]["Classification_Task"]
    task["Image_Textual_Questions"][0]["Correct_Answer"] = value
    return rows


def _image(rows, cell):
    rows[1]["image"] = cell
    return rows


def _no_image_token(c: Case):
    path = c.root / "base" / "tokenizer.json"
    tok = json.loads(path.read_text())
    for t in tok["added_tokens"]:
        if t["content"] == "<image>":
            t["content"] = "<img>"
    tok["model"]["vocab"]["<img>"] = tok["model"]["vocab"].pop("<image>")
    path.write_text(json.dumps(tok))


def _other_config(c: Case):
    c.out.mkdir()
    (c.out / "config.yaml").write_text("name: other\n_config_hash: 0123456789abcdef\n")
    (c.out / "summary.csv").write_text("precious\n")


def _json_edit(path: Path, **changes):
    obj = json.loads(path.read_text())
    obj.update(changes)
    path.write_text(json.dumps(obj))


# (id, how to break the case, extra command-line overrides, what the one line must say, which file it names)
CASES = [
    ("unknown-key", None, ["unlearn.lrr=1"], "unlearn.lrr: unknown key (did you mean unlearn.lr?)", "exp.yaml"),
    ("misspelled-value", None, ["scenario=pretraind"], "unknown scenario 'pretraind'", "exp.yaml"),
    ("wrong-type", None, ["unlearn.epochs=many"], "unlearn.epochs: must be an integer (got 'many')", "exp.yaml"),
    ("wrong-type-list", None, ["eval_batch_size=[1, 2]"], "eval_batch_size", "exp.yaml"),
    ("misspelled-section", None, ["splits.forgett=3"], "splits.forgett: unknown key (did you mean splits.forget?)",
     "exp.yaml"),
    ("missing-key", None, ["model.base=null"], "model.base is required", "model.base"),
    ("not-yaml", lambda c: c.config.write_text("name: [\n"), [], "not valid YAML", "exp.yaml"),
    ("missing-data-folder", lambda c: shutil.rmtree(c.mllmu / "Full_Set"), [],
     "no such MLLMU-Bench subset folder", "Full_Set"),
    ("missing-mmbench", lambda c: c.tsv.unlink(), [], "MMBench TSV not found", "mmbench_dev_en.tsv"),
    ("missing-column", lambda c: pq.write_table(pq.read_table(c.parquet("Full_Set")).drop_columns(
        ["Classification_Task"]), c.parquet("Full_Set")), [], "missing column(s) Classification_Task", "Full_Set"),
    ("unreadable-parquet", lambda c: c.parquet("Retain_Set").write_bytes(b"PAR1 this is not parquet"), [],
     "cannot read parquet", "Retain_Set"),
    ("wrong-split-size", lambda c: [c.rows(sub, lambda r: r[:3]) for sub in ("Full_Set", "Test_Set")], [],
     "3 fictitious people; splits.forget=5", "Full_Set"),
    ("requests-do-not-divide", None, ["scenario=sequential", "splits.requests=3"],
     "splits.forget=5 does not split into splits.requests=3", "splits.requests"),
    ("empty-split", lambda c: c.rows("Retain_Set", lambda r: []), [], "subset 'Retain_Set' is empty", "Retain_Set"),
    ("non-image-bytes", lambda c: c.rows("Full_Set", lambda r: _image(r, {"bytes": b"GIF? no", "path": None})), [],
     "image bytes are not a readable image", "Full_Set"),
    ("image-path-escapes-root", lambda c: c.rows("Full_Set", lambda r: _image(
        r, {"bytes": None, "path": "../../../../etc/passwd"})), [], "escapes the data root", "Full_Set"),
    ("answer-not-an-option", lambda c: c.rows("Full_Set", lambda r: _set_answer(r, "Z")), [],
     "Correct_Answer 'Z' is not among the options", "Full_Set"),
    ("duplicate-ids", lambda c: c.rows("Full_Set", lambda r: r + r[:1]), [], "duplicate ID", "Full_Set"),
    ("metadata-not-json", lambda c: c.rows("ft_Data", lambda r: [{**r[0], "metadata": "{oops"}] + r[1:]), [],
     "metadata is not JSON", "ft_Data"),
    ("mmbench-answer", lambda c: c.tsv_rows(lambda h, rows: (h, [r[:7] + ["Q"] + r[8:] for r in rows])), [],
     "answer 'Q' is not among the options", "mmbench_dev_en.tsv:2"),
    ("mmbench-base64", lambda c: c.tsv_rows(lambda h, rows: (h, [r[:-1] + ["@@@"] for r in rows])), [],
     "image is not valid base64", "mmbench_dev_en.tsv:2"),
    ("mmbench-column", lambda c: c.tsv_rows(lambda h, rows: (["idx"] + h[1:], rows)), [],
     "missing column(s) index", "mmbench_dev_en.tsv"),
    ("model-without-weights", lambda c: (c.root / "base" / "model.safetensors").unlink(), [],
     "no .safetensors weights", "base"),
    ("pickle-only-weights", lambda c: (c.root / "base" / "model.safetensors").rename(
        c.root / "base" / "pytorch_model.bin"), [], "pytorch_model.bin: pickle weights are refused", "base"),
    ("model-without-processor", lambda c: [(c.root / "finetuned" / n).unlink() for n in (
        "processor_config.json", "tokenizer.json", "tokenizer_config.json")], [], "cannot load the processor",
     "finetuned"),
    ("no-image-token", _no_image_token, [], "the tokenizer has no image token '<image>'", "base"),
    ("remote-code", lambda c: _json_edit(c.root / "base" / "config.json", auto_map={"AutoModel": "x.Model"}), [],
     "needs its own code (auto_map) and model.trust_remote_code is off", "base"),
    ("not-a-model-folder", lambda c: (c.root / "finetuned" / "config.json").unlink(), [], "no config.json",
     "finetuned"),
    ("run-folder-of-another-config", _other_config, [], "holds a run of another config", "out"),
    ("rmu-layer-beyond-the-model", None, ["method=rmu", "method_params.rmu.layer=4"],
     "method_params.rmu.layer: must be below the model's 4 decoder layers (counted from 0; got 4)", "base"),
    ("replay-method-without-replay-data", None, ["method=simnpo_replay"],
     "method simnpo_replay needs general replay data: set data.replay", "data.replay"),
    ("replay-leaves-nothing-to-evaluate", None, ["method=npo_replay", "data.replay=40"],
     "40 items would leave none of the general benchmark's 40 to evaluate", "data.replay"),
]


@pytest.mark.parametrize("name, breaks, overrides, message, names", CASES, ids=[c[0] for c in CASES])
def test_bad_input(pristine, tmp_path, name, breaks, overrides, message, names):
    case = Case(pristine, tmp_path)
    if breaks:
        breaks(case)
    before = sorted(p.name for p in case.out.iterdir()) if case.out.exists() else None
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main(["run", str(case.config), *overrides, "--out", str(case.out), "--cache",
                       str(tmp_path / "cache")])
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert status == 2, err.getvalue()
    assert len(lines) == 1 and lines[0].startswith("pulse: error: "), lines
    assert message in lines[0] and names in lines[0], lines[0]
    # Nothing written: no run folder, or the existing one untouched.
    if before is None:
        assert not case.out.exists()
    else:
        assert sorted(p.name for p in case.out.iterdir()) == before
        assert (case.out / "summary.csv").read_text() == "precious\n"
    assert not (tmp_path / "cache").exists()


def test_doctor_passes_on_good_input_and_names_the_problem_otherwise(pristine, tmp_path, capsys):
    assert main(["doctor", "--model", str(pristine / "base"), "--data", str(pristine / "data"), "--cache",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for expected in ("torch:", "transformers:", "device", "auto: cpu", "pulse ($PULSE_CACHE)", "huggingface hub",
                     "image token '<image>' (id 4)", "Full_Set: ok: 10 people", "ft_Data: ok",
                     "mmbench_dev_en.tsv: ok: 40 questions", "all checks passed"):
        assert expected in out, expected
    assert main(["doctor"]) == 0 and "all checks passed" not in capsys.readouterr().out
    case = Case(pristine, tmp_path / "case")
    (case.root / "base" / "model.safetensors").rename(case.root / "base" / "model.bin")
    case.rows("Full_Set", lambda r: _set_answer(r, "Z"))
    assert main(["doctor", "--model", str(case.root / "base")]) == 2
    assert "pickle weights are refused" in capsys.readouterr().err
    assert main(["doctor", "--data", str(case.root / "data")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Full_Set" in err[0] and "Correct_Answer 'Z'" in err[0]
    assert main(["doctor", "--data", str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


# Defect 3: values out of range, of the wrong type, or unknown, refused when the config is loaded.
# (override, the key the line names, what it says)
OUT_OF_RANGE = [
    ("unlearn.lr=-1", "unlearn.lr", "must be > 0 (got -1)"),
    ("eval_batch_size=0", "eval_batch_size", "must be >= 1 (got 0)"),
    ("seed=-3", "seed", "must be >= 0 (got -3)"),
    ("unlearn.lora.rank=0", "unlearn.lora.rank", "must be >= 1 (got 0)"),
    ("unlearn.lora_rank=0", "unlearn.lora_rank", "unknown key (did you mean unlearn.lora.rank?)"),
    ("unlearn.batch_size=-4", "unlearn.batch_size", "must be >= 1 (got -4)"),
    ("unlearn.epochs=0", "unlearn.epochs", "must be >= 1 (got 0)"),
    ("data.mmbench_subset=-5", "data.mmbench_subset", "must be >= 1 (got -5)"),
    ("splits.probe_threshold=1.5", "splits.probe_threshold", "must be <= 1 (got 1.5)"),
    ("intervals.resamples=10", "intervals.resamples", "must be >= 100 (got 10)"),
    ("intervals.level=1", "intervals.level", "must be < 1 (got 1)"),
    ("intervals.level=0.3", "intervals.level", "must be >= 0.5 (got 0.3)"),
    ("trajectory.sensitivity=[0.3, 1.5]", "trajectory.sensitivity.1", "must be <= 1 (got 1.5)"),
    ("trajectory.sensitivity=[0.5, 0.5]", "trajectory.sensitivity", "a level is named twice"),
    ("method_params.npo.betta=0.5", "method_params.npo.betta",
     "unknown parameter (did you mean method_params.npo.beta?); npo takes beta (float > 0)"),
    ("method_params.npo.beta=0", "method_params.npo.beta", "must be > 0 (got 0)"),
    ("method_params.npo.beta=true", "method_params.npo.beta", "must be a number (got true)"),
    ("method_params.grad_diff.gamma=-1", "method_params.grad_diff.gamma", "must be >= 0 (got -1)"),
    ("method_params.nop.beta=1", "method_params.nop", "unknown method (did you mean method_params.npo?)"),
    ("unlearn.lr=.nan", "unlearn.lr", "must be a finite number (got nan)"),
    ("unlearn.max_grad_norm=0", "unlearn.max_grad_norm", "must be > 0 (got 0)"),
    ("finetune.lora.dropout=1", "finetune.lora.dropout", "must be < 1 (got 1)"),
    ("finetune.warmup=-1", "finetune.warmup", "must be >= 0 (got -1)"),
    ("parity.mc_max_new_tokens=0", "parity.mc_max_new_tokens", "must be >= 1 (got 0)"),
    ("splits.requests=0", "splits.requests", "must be >= 1 (got 0)"),
    ("model.preset=huge", "model.preset", "must be 'tiny' or 'default' (got 'huge')"),
    ("scoring=fast", "scoring", "must be 'logits', 'likelihood' or 'mllmu' (got 'fast')"),
    ("splits.forget=10", "splits.forget", "must be < splits.finetune_people=10"),
    ("splits.forget=4", "splits.requests", "splits.forget=4 does not split into splits.requests=5 equal requests"),
    ("log_with=[neptune]", "log_with.0", "must be 'tensorboard', 'wandb' or 'mlflow' (got 'neptune')"),
    ("log_with=[wandb, tensorboard, wandb]", "log_with", "lists 'wandb' more than once"),
    ("unlearn.projection=pcgrad", "unlearn.projection", "must be 'none' or 'gru' (got 'pcgrad')"),
    ("unlearn.gru_gamma=0", "unlearn.gru_gamma", "must be > 0 (got 0)"),
    ("unlearn.adapters=many", "unlearn.adapters", "must be 'merge', 'stack' or 'orthogonal' (got 'many')"),
    ("unlearn.orthogonal_weight=-1", "unlearn.orthogonal_weight", "must be >= 0 (got -1)"),
    ("method_params.rmu.layer=-1", "method_params.rmu.layer", "must be >= 0 (got -1)"),
    ("method_params.mmunlearner.threshold=0", "method_params.mmunlearner.threshold", "must be > 0 (got 0)"),
    ("data.replay=-1", "data.replay", "must be >= 0 (got -1)"),
    ("method_params.npo_replay.rho=-1", "method_params.npo_replay.rho", "must be >= 0 (got -1)"),
    ("model.events=13", "model.events", "must be <= 12 (got 13)"),
    ("model.attributes=13", "model.attributes", "must be <= 12 (got 13)"),
    ("model.wordings=2", "model.wordings", "must be >= 3 (got 2)"),
    ("unlearn.balance=kinds", "unlearn.balance", "must be 'none' or 'concepts' (got 'kinds')"),
    ("splits.concept_people=0", "splits.concept_people", "must be >= 1 (got 0)"),
    ("splits.concept_events=0", "splits.concept_events", "must be >= 1 (got 0)"),
    ("method_params.simnpo_replay.retain=mse", "method_params.simnpo_replay.retain", "must be 'nll' or 'kl'"),
]


@pytest.mark.parametrize("override, key, message", OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_config_values_out_of_range_are_one_line_before_anything_is_written(tmp_path, monkeypatch, override, key,
                                                                            message):
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main(["run", "demo_tiny", override, "--out", str(tmp_path / "out"), "--cache",
                       str(tmp_path / "cache")])
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert status == 2, err.getvalue()
    assert len(lines) == 1 and lines[0].startswith("pulse: error: demo_tiny: "), lines
    assert f": {key}: {message}" in lines[0], lines[0]
    assert not any(tmp_path.iterdir())  # no run folder (--out or runs/), no cache
