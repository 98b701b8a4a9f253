"""The experiment schema: what a run's YAML file may say, validated with clear errors.

A run is a grid of units (scenario x method x update strategy), on one set of models and
data. ``key=value`` overrides on the command line set any field by its dotted path
(``unlearn.lr=1e-4``); the shortcuts ``scenario=``, ``method=`` and ``update=`` replace the
grid with one block, and ``model=DIR_OR_ID`` selects a checkpoint (``model.source=path``,
``model.base=DIR_OR_ID``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import PulseError
from .methods.unlearn import UPDATES, UnlearnConfig

SCENARIOS = ("finetuned", "pretrained", "sequential")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSource(Strict):
    """Where the models come from. ``world``: the embedded world's cached base model (and its
    fine-tuning); otherwise ``base`` is a llava-hf checkpoint (folder or hub id)."""

    source: Literal["world", "path"] = "world"
    preset: str = "default"  # the world preset (source=world)
    base: str | None = None  # source=path: the pre-trained model
    finetuned: str | None = None  # optional: an already fine-tuned model for scenarios 1 and 3
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 on a GPU, fp32 on CPU
    device: str = "auto"  # auto: the first GPU if any, else cpu
    trust_remote_code: bool = False


class DataSource(Strict):
    """MLLMU-Bench folder and MMBench TSV; empty means the embedded world's."""

    mllmu: Path | None = None
    mmbench: Path | None = None
    mmbench_subset: int | None = None  # a seeded subset of the general benchmark, for quick runs
    # MMBench's circular evaluation: each question asked once per rotation of its options, right
    # only if every rotation is right (the published MMBench numbers use it).
    mmbench_circular: bool = False


class FinetuneConfig(Strict):
    """In-run fine-tuning of a checkpoint (``model.source=path`` without ``model.finetuned``) on
    the chosen fictitious people's ft_Data: MLLMU-Bench's recipe (LoRA r=16, alpha=16, dropout
    0.05 on every linear layer of the language model; lr 2e-5, 5 epochs, batch 4), with the loss
    on answer tokens only. The merged result is cached, keyed by model, data and these settings."""

    lr: float = 2e-5
    epochs: int = 5
    batch_size: int = 4
    lora_rank: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    warmup: int = 0
    seed: int = 0


class ParityConfig(Strict):
    """``scoring=mllmu``: MLLMU-Bench's generate-and-parse evaluation (greedy decoding).
    ``few_shot``: precede every multiple-choice question about a person with MLLMU-Bench's
    one-person demonstration (a question of another person and its answer; its image on
    multimodal questions), as its published numbers do; the person is a seeded choice among
    the other population (a celebrity for fictitious people, and the reverse), never evaluated
    by the split."""

    mc_max_new_tokens: int = 50  # multiple choice: MLLMU-Bench's LLaVA setting
    open_max_new_tokens: int = 50  # cloze and generation
    open_tasks: bool = True  # also score the people's cloze (Mask_Task) and generation (Generation_Task) items
    few_shot: bool = True  # the one-person demonstration before each multiple-choice question


class SplitSizes(Strict):
    finetune_people: int = 100
    forget: int = 50
    requests: int = 5
    probe_threshold: float = 0.8
    pretrained_forget: int = 20
    pretrained_retain: int = 25


class GridBlock(Strict):
    scenarios: list[str]
    methods: list[str]
    updates: list[str] = Field(default_factory=lambda: ["llm"])

    @field_validator("scenarios", "methods", "updates")
    @classmethod
    def _known(cls, values, info):
        from .methods.registry import METHODS

        allowed = {"scenarios": SCENARIOS, "methods": sorted(METHODS), "updates": UPDATES}[info.field_name]
        for v in values:
            if v not in allowed:
                raise ValueError(f"unknown {info.field_name[:-1]} {v!r}; choose from {', '.join(allowed)}")
        return values


class RunConfig(Strict):
    name: str = "run"
    seed: int = 0
    model: ModelSource = Field(default_factory=ModelSource)
    data: DataSource = Field(default_factory=DataSource)
    splits: SplitSizes = Field(default_factory=SplitSizes)
    grid: list[GridBlock] = Field(default_factory=lambda: [GridBlock(scenarios=["finetuned"], methods=["ga"])])
    method_params: dict[str, dict[str, float]] = Field(default_factory=dict)
    unlearn: UnlearnConfig = Field(default_factory=UnlearnConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    parity: ParityConfig = Field(default_factory=ParityConfig)
    scoring: Literal["logits", "likelihood", "mllmu"] = "likelihood"
    eval_batch_size: int = 64
    eval_share_prefix: bool = True  # run a shared image/question prefix once (same values, less compute)

    def units(self) -> list[tuple[str, str, str]]:
        """(scenario, method, update), each once, in grid order; sequential brings its one-shot
        comparison (the finetuned scenario on the same forget set) along."""
        out: list[tuple[str, str, str]] = []
        for block in self.grid:
            for s in block.scenarios:
                for m in block.methods:
                    for u in block.updates:
                        extra = [("finetuned", m, u)] if s == "sequential" else []
                        for unit in extra + [(s, m, u)]:
                            if unit not in out:
                                out.append(unit)
        order = {s: i for i, s in enumerate(SCENARIOS)}
        return sorted(out, key=lambda x: order[x[0]])


def _set(tree: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        tree = tree.setdefault(k, {})
        if not isinstance(tree, dict):
            raise PulseError(f"override {dotted}: {k} is not a section")
    tree[keys[-1]] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """``key=value`` pairs; values are parsed as YAML (numbers, lists, booleans)."""
    raw = dict(raw)
    shortcut: dict[str, list] = {}
    for item in overrides:
        if "=" not in item:
            raise PulseError(f"override {item!r}: expected key=value")
        key, text = item.split("=", 1)
        value = yaml.safe_load(text) if text else None
        if key in ("scenario", "method", "update"):
            shortcut[key] = value if isinstance(value, list) else [value]
        elif key == "model":
            if not text:
                raise PulseError("override model=: give a checkpoint folder or hub id")
            _set(raw, "model.source", "path")
            _set(raw, "model.base", text)
        else:
            _set(raw, key, value)
    if shortcut:
        base = (raw.get("grid") or [{}])[0]
        raw["grid"] = [{"scenarios": shortcut.get("scenario", base.get("scenarios", ["finetuned"])),
                        "methods": shortcut.get("method", base.get("methods", ["ga"])),
                        "updates": shortcut.get("update", base.get("updates", ["llm"]))}]
    return raw


def load_config(path: Path | None, overrides: list[str] = ()) -> RunConfig:
    """Read, override and validate; every problem becomes one PulseError line."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise PulseError(f"{path}: config file not found")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise PulseError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise PulseError(f"{path}: the top level must be a mapping")
    raw = apply_overrides(raw, list(overrides))
    try:
        return RunConfig(**raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?)"
        raise PulseError(f"{path or 'config'}: {where}: {msg}") from None
