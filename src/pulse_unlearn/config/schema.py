"""The experiment schema: every field of a run's YAML file, with its range or its choices.

A run is a grid of units (scenario x method x update strategy), on one set of models and data.
Values are checked strictly (no bool for a number, no text for a number) and finite; a value
out of range is refused when the config is loaded, before any folder is made. The names a
config gives (scenarios, methods, splits, attacks) and the parameters of the components they
name are checked against their registries by the catalog (``protocol/catalog.py``), right after
this schema, when the config is loaded; checks that need the data (enough people for the split
sizes) happen when the data are read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..core.messages import shown
from ..core.names import unknown_name
from ..core.params import STRICT

MAX_EVENTS = 12  # the embedded world's event scenes (world/events.py)
UPDATES = ("llm", "projector_llm")
PRESETS = ("tiny", "default")  # the embedded world's presets (world/build.py, models/world_models.py)

Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Count = Annotated[int, Field(ge=1)]
Rate = Annotated[float, Field(gt=0)]
Dropout = Annotated[float, Field(ge=0, lt=1)]


def key_error(key: str, message: str) -> PydanticCustomError:
    """A validation error about the dotted ``key`` (not the field its validator sits on)."""
    return PydanticCustomError("pulse_key", "{key}: {message}", {"key": key, "message": message})


class Strict(BaseModel):
    model_config = STRICT


class LoraRecipe(Strict):
    """One LoRA adapter's shape: rank, scaling alpha and dropout. Unlearning's defaults are
    those of the embedded world's demo model."""

    rank: Count = 16
    alpha: Count = 32
    dropout: Dropout = 0.0


class FinetuneLora(LoraRecipe):
    """MLLMU-Bench's fine-tuning adapter: r 16, alpha 16, dropout 0.05."""

    alpha: Count = 16
    dropout: Dropout = 0.05


Share = Annotated[float, Field(ge=0, le=1)]
Rule = Literal["margin", "kept"]


class ForgetTarget(Strict):
    """When forget accuracy counts as forgotten. ``margin``: accuracy <= chance + ``margin``;
    ``kept``: at most ``kept`` of the starting model's above-chance accuracy is left,
    accuracy - chance <= kept x (start - chance), start being the scenario's starting model's accuracy on
    the same items (a sequential request already forgotten by earlier operations meets it at step 0).
    Chance is a blind guess's score: 1/options for multiple choice, 0 for training facts."""

    rule: Rule = "kept"
    margin: Share = 0.05
    kept: Share = 0.25


class StopTarget(ForgetTarget):
    """``unlearn.stop: target``'s criterion. ``sees``: what the rule may look at, written next to
    every result: ``training``, the request's training facts (what any unlearner has; scored by
    answer-token accuracy), or ``oracle``, the forget split's evaluation questions (labelled
    oracle). ``modality``: the criterion must hold on that modality, or on both. The general
    benchmark is never used to stop."""

    sees: Literal["training", "oracle"] = "training"
    modality: Literal["multimodal", "text", "both"] = "both"


class UnlearnConfig(Strict):
    """Hyperparameters of one unlearning operation. The defaults are those of the embedded world's
    1.45M-parameter model (the demo); for LLaVA-1.5 7B/13B use MLLMU-Bench's (lr 2e-5, batch 4,
    LoRA r16 alpha16 dropout 0.05), as ``configs/mllmu_llava15.yaml`` does. README: "by model size".

    Stopping rule (``stop``): ``fixed`` trains ``epochs`` epochs over the forget request;
    ``target`` evaluates every ``eval_every`` and stops at the first checkpoint that meets
    ``target``, with ``max_epochs`` as the budget. Either way a NaN/inf loss stops the operation.
    ``eval_every``: optimizer steps (an integer) or a fraction of an epoch (a float, e.g. 0.25);
    unset, no trajectory is recorded.

    Continual-unlearning options, for any method: ``projection: gru`` (GRU, arXiv 2503.09117)
    removes from the forget gradient its component along the retain direction when the two
    conflict, the retain direction an average (weight ``gru_gamma`` on the newest step) of
    retain-NLL gradients. ``adapters``: ``merge`` merges each operation's adapter into the
    weights; ``stack`` keeps the unit's earlier adapters unmerged, active and frozen beside the
    new one; ``orthogonal`` stacks them and adds O-LoRA's penalty
    ``orthogonal_weight * sum_i ||A_i A_t^T||^2`` against them (O3, arXiv 2407.10223)."""

    lr: Rate = 5e-4
    epochs: Count = 1  # stop=fixed: the budget
    batch_size: Count = 16
    lora: LoraRecipe = Field(default_factory=LoraRecipe)
    max_grad_norm: Rate = 1.0
    seed: Seed = 0
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~1/3 more compute
    stop: Literal["fixed", "target"] = "fixed"
    max_epochs: Count = 5  # stop=target: the budget
    eval_every: int | float | None = None  # int >= 1: optimizer steps; float > 0: a fraction of an epoch
    target: StopTarget = Field(default_factory=StopTarget)
    projection: Literal["none", "gru"] = "none"
    gru_gamma: Annotated[float, Field(gt=0, le=1)] = 0.8  # weight of the newest retain gradient
    adapters: Literal["merge", "stack", "orthogonal"] = "merge"
    orthogonal_weight: Annotated[float, Field(ge=0)] = 0.5  # O-LoRA's lambda_1
    # concepts: every forget batch holds the request's people's and events' facts in equal shares
    # (data/batches.py: balanced_batch_indices), for requests of both kinds; none: as they fall
    balance: Literal["none", "concepts"] = "none"

    @field_validator("eval_every", mode="before")
    @classmethod
    def _every(cls, value):
        steps = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        fraction = isinstance(value, float) and math.isfinite(value) and value > 0
        if value is not None and not (steps or fraction):
            raise ValueError(f"must be an integer >= 1 (optimizer steps) or a number > 0 (a fraction of an epoch), "
                             f"or null (got {shown(value)})")
        return value

    @model_validator(mode="after")
    def _target_needs_checkpoints(self):
        if self.stop == "target" and self.eval_every is None:
            raise key_error("unlearn.eval_every", "must be set when unlearn.stop is target (the rule is checked at "
                            "each checkpoint)")
        return self

    @property
    def budget_epochs(self) -> int:
        return self.max_epochs if self.stop == "target" else self.epochs

    def every_steps(self, steps_per_epoch: int) -> int | None:
        """``eval_every`` in optimizer steps (at least 1), or None without a trajectory."""
        if self.eval_every is None:
            return None
        if isinstance(self.eval_every, int):
            return self.eval_every
        return max(1, round(self.eval_every * steps_per_epoch))


class TrajectoryConfig(Strict):
    """What is evaluated at each checkpoint of an operation (``unlearn.eval_every``): the
    registered ``splits`` (a forget split holds the operation's own request only), each
    a seeded ``subset`` of at most that many items, the same at every checkpoint (unset: all).
    The end of an operation is always evaluated in full as well. ``compare``: the forget
    accuracy that counts as forgotten when units are compared at matched forgetting
    (``matched.csv``); ``sensitivity``: the ``kept`` levels at which the matched comparisons
    are made again (``sensitivity.csv``, rule ``kept`` only; empty: none)."""

    splits: list[str] = Field(default_factory=lambda: ["forget", "retain", "general"], min_length=1)
    subset: Count | None = None
    compare: ForgetTarget = Field(default_factory=ForgetTarget)
    sensitivity: list[Share] = Field(default_factory=lambda: [0.3, 0.5, 0.7], max_length=9)

    @field_validator("splits")
    @classmethod
    def _once(cls, values):
        if len(set(values)) != len(values):
            raise ValueError("a split is named twice")
        return values

    @field_validator("sensitivity")
    @classmethod
    def _levels_once(cls, values):
        if len(set(values)) != len(values):
            raise ValueError("a level is named twice")
        return sorted(values)


class IntervalConfig(Strict):
    """Every reported figure's bootstrap interval (stats/bootstrap.py): ``resamples`` draws of
    the people (a person's items together; benchmark items one by one), from ``seed``, at
    confidence ``level``. The findings' comparisons use the same count and seed, paired, at
    ``level`` before Holm's correction (protocol/verdicts.py); the smallest p-value B resamples
    can give is 2 / (B + 1), so B must exceed 40 m to decide m comparisons at 95%."""

    resamples: Annotated[int, Field(ge=100, le=100_000)] = 2000
    level: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    seed: Seed = 0


class FinetuneConfig(Strict):
    """In-run fine-tuning of a checkpoint (``model.source=path`` without ``model.finetuned``) on
    the chosen fictitious people's ft_Data: MLLMU-Bench's recipe (LoRA r=16, alpha=16, dropout
    0.05 on every linear layer of the language model; lr 2e-5, 5 epochs, batch 4), with the loss
    on answer tokens only. The merged result is cached, keyed by model, data and these settings."""

    lr: Rate = 2e-5
    epochs: Count = 5
    batch_size: Count = 4
    lora: FinetuneLora = Field(default_factory=FinetuneLora)
    warmup: Annotated[int, Field(ge=0)] = 0
    seed: Seed = 0


class ModelSource(Strict):
    """Where the models come from. ``world``: the embedded world's cached base model (and its
    fine-tuning); otherwise ``base`` is a llava-hf checkpoint (folder or hub id)."""

    source: Literal["world", "path"] = "world"
    preset: Literal[PRESETS] = "default"  # the world preset (source=world)
    world_seed: Seed = 0  # the world's seed (source=world): its people, images, benchmark and models
    # the world's events (source=world; the concepts scenarios need them): its fictitious people
    # composed into that many event scenes, a PEBench-style folder; 0: none
    events: Annotated[int, Field(ge=0, le=MAX_EVENTS)] = 0
    # the world's people (source=world; world/build.py's WorldConfig): attributes per person, training
    # wordings per fact, and general-benchmark categories in the words of people's facts
    attributes: Annotated[int, Field(ge=5, le=12)] = 5
    wordings: Annotated[int, Field(ge=3, le=6)] = 3
    world_skills: bool = False
    base: Annotated[str, Field(min_length=1)] | None = None  # source=path: the pre-trained model
    finetuned: Annotated[str, Field(min_length=1)] | None = None  # an already fine-tuned model (scenarios 1, 3)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 on a GPU, fp32 on CPU
    device: Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")] = "auto"  # auto: the first GPU, else cpu
    trust_remote_code: bool = False


class DataSource(Strict):
    """MLLMU-Bench folder and MMBench TSV; empty means the embedded world's."""

    mllmu: Path | None = Field(None, strict=False)
    mmbench: Path | None = Field(None, strict=False)
    # a PEBench-style folder (data/pebench.py: people and events in one image) for the concepts
    # scenarios; empty: the world's, with model.events > 0
    pebench: Path | None = Field(None, strict=False)
    mmbench_subset: Count | None = None  # a seeded subset of the general benchmark, for quick runs
    # general-benchmark items held out of evaluation (seeded, before the subset) as replay data for
    # methods that keep general skills by replay (``simnpo_replay``, ``npo_replay``); 0: none held out
    replay: Annotated[int, Field(ge=0, le=100_000)] = 0
    # MMBench's circular evaluation: each question asked once per rotation of its options, right
    # only if every rotation is right (the published MMBench numbers use it).
    mmbench_circular: bool = False


class ParityConfig(Strict):
    """``scoring=mllmu``: MLLMU-Bench's generate-and-parse evaluation (greedy decoding).
    ``few_shot``: precede every multiple-choice question about a person with MLLMU-Bench's
    one-person demonstration (a question of another person and its answer; its image on
    multimodal questions), as its published numbers do; the person is a seeded choice among
    the other population (a celebrity for fictitious people, and the reverse), never evaluated
    by the split."""

    mc_max_new_tokens: Count = 50  # multiple choice: MLLMU-Bench's LLaVA setting
    open_max_new_tokens: Count = 50  # cloze and generation
    open_tasks: bool = True  # also score the people's cloze (Mask_Task) and generation (Generation_Task) items
    few_shot: bool = True  # the one-person demonstration before each multiple-choice question


class SplitSizes(Strict):
    finetune_people: Count = 100
    forget: Count = 50
    requests: Count = 5
    probe_threshold: Annotated[float, Field(ge=0, le=1)] = 0.8
    pretrained_forget: Count = 20
    pretrained_retain: Count = 25
    concept_people: Count = 10  # people forgotten by concepts-person and concepts-both (their events kept)
    concept_events: Count = 2  # events forgotten by concepts-event and concepts-both (their people kept)


class GridBlock(Strict):
    scenarios: list[str] = Field(min_length=1)
    methods: list[str] = Field(min_length=1)
    updates: list[str] = Field(default_factory=lambda: ["llm"], min_length=1)

    @field_validator("updates")
    @classmethod
    def _known(cls, values):
        for v in values:
            if v not in UPDATES:
                raise ValueError(unknown_name("update", v, UPDATES))
        return values


class RunConfig(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] = "run"  # also the run folder's name
    seed: Seed = 0
    model: ModelSource = Field(default_factory=ModelSource)
    data: DataSource = Field(default_factory=DataSource)
    splits: SplitSizes = Field(default_factory=SplitSizes)
    grid: list[GridBlock] = Field(default_factory=lambda: [GridBlock(scenarios=["finetuned"], methods=["ga"])],
                                  min_length=1)
    method_params: dict[str, dict[str, Any]] = Field(default_factory=dict)  # method -> its declared parameters
    unlearn: UnlearnConfig = Field(default_factory=UnlearnConfig)
    trajectory: TrajectoryConfig = Field(default_factory=TrajectoryConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    parity: ParityConfig = Field(default_factory=ParityConfig)
    intervals: IntervalConfig = Field(default_factory=IntervalConfig)
    scoring: Literal["logits", "likelihood", "mllmu"] = "likelihood"
    eval_batch_size: Count = 64
    eval_share_prefix: bool = True  # run a shared image/question prefix once (same values, less compute)
    # experiment trackers the run's scalars also go to, each at most once (optional extras:
    # pip install 'pulse-unlearn[tensorboard]'); runs/trackers.py. tracker_dir: where the local ones
    # write (TensorBoard's event files, MLflow's store, W&B's run files); null: <run folder>/trackers
    log_with: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(default_factory=list)
    tracker_dir: Annotated[str, Field(min_length=1)] | None = None
    # Recovery attacks and residual-knowledge checks (evaluation/attacks): each {name: ..., its
    # parameters}, run on the model after each unit's last operation and on the starting model
    # (the baseline); attacks_every_operation: after every operation (the sequential scenario).
    attacks: list[dict[str, Any]] = Field(default_factory=list)
    attacks_every_operation: bool = False
    # The retrain oracle (protocol/approaches.py, Retrain; each scenario's oracle_model): ``retrain``
    # scores, in each scenario and after each request, the starting model trained again without the
    # people forgotten so far (the same recipe, as many passes over each remaining person), as the
    # reference for forgetting that leaves everything else alone. Its rows carry method ``retrain``;
    # each model costs a fine-tuning (a pre-training in the pretrained scenario), cached like the
    # starting models.
    oracle: Literal["none", "retrain"] = "none"

    @field_validator("log_with")
    @classmethod
    def _trackers_once(cls, value):
        twice = sorted({name for name in value if value.count(name) > 1})
        if twice:
            raise ValueError(f"lists {', '.join(repr(n) for n in twice)} more than once")
        return value
