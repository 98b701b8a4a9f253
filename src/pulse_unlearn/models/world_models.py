"""The embedded world's two models: the *base* model (pre-trained from scratch on the
world's corpus) and the *fine-tuned* model (the base plus LoRA on the fictitious people,
merged). Both are written with ``save_pretrained`` in the llava-hf layout and cached under
a key that hashes the world's fingerprint and every training setting, so a second run
loads them instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ..core.names import unknown_name
from .. import draws
from ..config.schema import Count, LoraRecipe
from ..data.batches import Encoder
from ..data.mllmu import load_facts, load_people
from ..data.pebench import concept_key, load_pebench
from ..records import Example
from ..runs.atomic import atomic_folder
from ..world.build import PEBENCH
from ..world.events import CAPTION_PROMPTS as EVENT_CAPTIONS
from ..world.people import CAPTION_PROMPTS as PERSON_CAPTIONS
from .tiny import TinyModelConfig, build_model, build_processor, train_tokenizer
from .train import TrainConfig, train

CAPTIONS = set(PERSON_CAPTIONS) | set(EVENT_CAPTIONS)  # image -> name: the caption stage

# Bump a part's version when the code changes what its config produces.
VERSIONS = {"base": 4, "finetuned": 5}  # 4/5: the shift augmentation pads edges instead of rolling


class LoraSettings(LoraRecipe):
    """The fine-tuned world model's adapter: the LoRA recipe, larger, on the modules ``target`` matches."""

    rank: Count = 48
    alpha: Count = 96
    # Regex over full module names: the language model's linear layers (and optionally the
    # projector), never the vision tower, whose layers share the names q_proj/v_proj.
    target: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


class WorldModelsConfig(BaseModel):
    """How the world's base and fine-tuned models are made."""

    model_config = ConfigDict(extra="forbid")

    model: TinyModelConfig = Field(default_factory=TinyModelConfig)
    # Packed rows and every sequence weighted alike (models/train.py); measured in
    # benchmarks/README.md: world + base <= 300 s and fine-tuning about 2 minutes on two CPU cores.
    pretrain: TrainConfig = Field(default_factory=lambda: TrainConfig(
        steps=2000, lr=1.5e-3, caption_stage=0.25, pack_len=128, weighting="sequence"))
    # 1920 steps with half as many replayed examples as facts. Replay at 0.5 halves the general
    # benchmark's loss against 10% (benchmarks/finetune_start.py); 1920 steps rather than 960 learn
    # the people firmly enough that forgetting one sequential request leaves the next ones to
    # forget (world_quality.py --selectivity; both in benchmarks/README.md).
    finetune: TrainConfig = Field(default_factory=lambda: TrainConfig(
        steps=1920, lr=2.5e-3, caption_stage=0.15, warmup=20, pack_len=128, weighting="sequence"))
    lora: LoraSettings = Field(default_factory=LoraSettings)
    finetune_people: int = 100  # how many fictitious people the fine-tuned model learns (seeded choice)
    # Pre-training examples mixed into fine-tuning, as a share of the fine-tuning examples:
    # a 1M-parameter model otherwise loses its general skills while learning new people.
    replay: float = 0.5
    # A world with events fine-tunes on about 2.5x the examples (the same people, plus their event
    # images and the events): its steps grow by this factor, to the 2400 at which people in event
    # images reached 0.48 multimodal and the portraits 0.69 (960 steps: 0.40 and 0.50;
    # benchmarks/README.md, "Concepts").
    events_step_scale: float = Field(1.25, ge=1.0, le=10.0)
    seed: int = 0

    def for_world(self, world: Path) -> "WorldModelsConfig":
        """The config that trains ``world``'s models: ``events_step_scale`` folded into the
        fine-tuning steps where the world has events, the config itself otherwise."""
        if not (Path(world) / PEBENCH).is_dir() or self.events_step_scale == 1.0:
            return self
        steps = round(self.finetune.steps * self.events_step_scale)
        return self.model_copy(update={"finetune": self.finetune.model_copy(update={"steps": steps}),
                                       "events_step_scale": 1.0})

    def settings(self, include: set[str] | None = None) -> dict:
        """What trained the models, as recorded and hashed: ``events_step_scale`` is left out, as
        ``for_world`` has folded it into the steps (a world without events keeps its keys)."""
        return self.model_dump(include=include, exclude={"events_step_scale"})

    def key(self, world_fingerprint: str, part: str) -> str:
        """Cache key of the base model (its architecture, pre-training and seed) or of the
        fine-tuned model (everything), so changing fine-tuning never retrains the base."""
        fields = {"model", "pretrain", "seed"} if part == "base" else None
        blob = json.dumps({"v": VERSIONS[part], "world": world_fingerprint, "part": part,
                           **self.settings(fields)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


MODEL_PRESETS: dict[str, dict] = {
    "tiny": dict(model=dict(text_hidden=64, text_intermediate=256, vision_hidden=32, vision_layers=2,
                            vision_heads=2, text_heads=2, vocab_size=600),
                 pretrain=dict(steps=120, lr=3e-3, caption_stage=0.25, batch_size=16, pack_len=128,
                               weighting="sequence"),
                 finetune=dict(steps=40, lr=2e-3, caption_stage=0.25, batch_size=16, warmup=5, pack_len=128,
                               weighting="sequence"),
                 replay=0.1, events_step_scale=1.0),
    "default": {},
}


def models_config(preset: str = "default", **overrides) -> WorldModelsConfig:
    if preset not in MODEL_PRESETS:
        raise ValueError(unknown_name("model preset", preset, sorted(MODEL_PRESETS)))
    return WorldModelsConfig(**{**MODEL_PRESETS[preset], **overrides})


def read_corpus(world: Path, without: Collection[str] = ()) -> list[Example]:
    """The pre-training corpus, less the mentions of the celebrities ``without`` (Retain_Set IDs)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(Path(world) / "corpus" / "pretrain.parquet").to_pylist()
    return [Example(r["prompt"], r["answer"], r["image"], r["source"]) for r in rows if r["subject"] not in without]


def same_passes(train_cfg: TrainConfig, kept: int, full: int) -> TrainConfig:
    """The recipe for ``kept`` of the ``full`` examples it was set for: the steps scaled by
    ``kept / full`` (at least 1), so each remaining example is seen as often. The retrain oracle
    is the starting model's recipe without the forget people, not more epochs on the others."""
    if kept == full:
        return train_cfg
    return train_cfg.model_copy(update={"steps": max(1, round(train_cfg.steps * kept / full))})


def _without_key(key: str, without: Collection[str]) -> str:
    """A model's cache key, extended by the people its training left out (none: the key itself)."""
    if not without:
        return key
    return hashlib.sha256(f"{key}:without:{','.join(sorted(without))}".encode()).hexdigest()[:16]


def finetune_examples(world: Path, cfg: WorldModelsConfig) -> tuple[list[str], list[Example]]:
    """The seeded choice of fictitious people the fine-tuned model learns, and their facts."""
    from ..draws import finetune_people

    people = load_people(Path(world) / "MLLMU-Bench", "Full_Set")
    chosen = finetune_people([p.id for p in people], min(cfg.finetune_people, len(people)), cfg.seed)
    return chosen, facts_of(world, chosen)


def facts_of(world: Path, people: list[str]) -> list[Example]:
    """What a model learning ``people`` (Full_Set IDs) is fine-tuned on: their ft_Data facts and,
    in a world with events, its PEBench-style facts about them, their images and the events."""
    facts = load_facts(Path(world) / "MLLMU-Bench")
    out = [ex for pid in people for ex in facts[pid]]
    if (Path(world) / PEBENCH).is_dir():
        out += load_pebench(Path(world) / PEBENCH).facts_with({concept_key("person", pid) for pid in people})
    return out


def _world_texts(world: Path, encoder_like_template: str) -> list[str]:
    """Everything the tokenizer should see: the corpus, fine-tuning text and evaluation wording."""
    texts = [f"USER: {ex.prompt} ASSISTANT: {ex.answer}</s>" for ex in read_corpus(world)]
    for subset in ("Full_Set", "Retain_Set"):
        for p in load_people(Path(world) / "MLLMU-Bench", subset):
            texts.append(p.biography)
            texts += [q.question + " " + " ".join(q.options.values()) for q in p.questions]
    texts += [f"{ex.prompt} {ex.answer}" for exs in load_facts(Path(world) / "MLLMU-Bench").values() for ex in exs]
    if (Path(world) / PEBENCH).is_dir():
        concepts = load_pebench(Path(world) / PEBENCH)
        texts += [f"{f.example.prompt} {f.example.answer}" for f in concepts.facts]
        texts += [q.question + " " + " ".join(q.options.values()) for q in concepts.questions]
    return texts + [encoder_like_template]


def _save(model, processor, out: Path, meta: dict) -> None:
    """Write atomically: a temporary folder renamed into place, so a crash leaves no half model."""
    with atomic_folder(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        (tmp / "pulse_model.json").write_text(json.dumps(meta, indent=1, sort_keys=True))


def build_base(world: Path, world_fingerprint: str, cfg: WorldModelsConfig, cache: Path, log=print,
               without: Collection[str] = ()) -> Path:
    """Pre-train the base model from scratch on the world's corpus (cached). ``without``: celebrities
    (Retain_Set IDs) whose mentions are left out, at the same passes over the rest (the pretrained
    scenario's retrain oracle); the tokenizer and the initial weights are the base model's."""
    out = Path(cache) / f"base-{_without_key(cfg.key(world_fingerprint, 'base'), without)}"
    what = f"base model without {len(without)} celebrities" if without else "base model"
    if (out / "model.safetensors").exists():
        log(f"{what}: cached at {out}")
        return out
    t0 = time.time()
    tokenizer = train_tokenizer(_world_texts(world, "USER: <image>\nA B C D ASSISTANT: A</s>"), cfg.model.vocab_size)
    processor = build_processor(tokenizer, cfg.model)
    model = build_model(tokenizer, cfg.model, seed=cfg.seed)
    corpus = read_corpus(world, set(without))
    recipe = same_passes(cfg.pretrain, len(corpus), len(read_corpus(world))) if without else cfg.pretrain
    losses = train(model, Encoder(processor), corpus, recipe, desc=f"pre-training {what}")
    _save(model, processor, out, {"kind": "base", "world": world_fingerprint, "config": cfg.settings(),
                                  "without": sorted(without), "steps": recipe.steps,
                                  "final_loss": float(np.mean(losses[-20:])), "seconds": time.time() - t0})
    log(f"{what}: pre-trained in {time.time() - t0:.0f} s (final loss {np.mean(losses[-20:]):.3f}) -> {out}")
    return out


def finetune(base: Path, examples: list[Example], cfg: WorldModelsConfig, out: Path, meta: dict, log=print) -> Path:
    """LoRA fine-tuning of ``base`` on ``examples``, merged and saved to ``out`` (cached there).

    Facts are marked as captions (image -> name) when their question is a caption prompt, so
    the caption stage can run first."""
    from .load import load_model
    from .lora import attach_lora

    if (out / "model.safetensors").exists():
        log(f"fine-tuned model: cached at {out}")
        return out
    t0 = time.time()
    model, processor = load_model(base, dtype="float32", device="cpu")
    examples = [Example(ex.prompt, ex.answer, ex.image, "caption" if ex.prompt in CAPTIONS else ex.source)
                for ex in examples]
    torch.manual_seed(cfg.seed)  # LoRA's A matrices are drawn here: seed them, or reruns differ
    peft_model = attach_lora(model, cfg.lora, cfg.lora.target)
    losses = train(peft_model, Encoder(processor), examples, cfg.finetune, desc="fine-tuning (LoRA)")
    merged = peft_model.merge_and_unload()
    _save(merged, processor, out, {**meta, "kind": "finetuned", "config": cfg.settings(),
                                   "final_loss": float(np.mean(losses[-20:])), "seconds": time.time() - t0})
    log(f"fine-tuned model: {len(examples)} examples in {time.time() - t0:.0f} s "
        f"(final loss {np.mean(losses[-20:]):.3f}) -> {out}")
    return out


def finetuned_dir(cache: Path, cfg: WorldModelsConfig, world_fingerprint: str, people: list[str]) -> Path:
    key = hashlib.sha256(f"{cfg.key(world_fingerprint, 'finetuned')}:{','.join(sorted(people))}".encode())
    return Path(cache) / f"finetuned-{key.hexdigest()[:16]}"


def build_finetuned(world: Path, world_fingerprint: str, cfg: WorldModelsConfig, cache: Path, log=print,
                    people: list[str] | None = None, passes_of: list[str] | None = None) -> Path:
    """The base model fine-tuned on fictitious people (default: the seeded choice), cached.
    ``passes_of``: the people whose fine-tuning the steps are set for; fewer ``people`` (the retrain
    oracle: those people less the forgotten ones) get the steps that give each fact as many passes."""
    cfg = cfg.for_world(world)
    chosen, examples = finetune_examples(world, cfg)
    if people is not None and sorted(people) != sorted(chosen):
        chosen = sorted(people)
        examples = facts_of(world, chosen)
    if passes_of is not None and sorted(passes_of) != sorted(chosen):
        full = len(facts_of(world, sorted(passes_of)))
        cfg = cfg.model_copy(update={"finetune": same_passes(cfg.finetune, len(examples), full)})
    out = finetuned_dir(cache, cfg, world_fingerprint, chosen)
    if (out / "model.safetensors").exists():
        log(f"fine-tuned model: cached at {out}")
        return out
    base = build_base(world, world_fingerprint, cfg, cache, log)
    if cfg.replay:
        corpus = read_corpus(world)
        pick = draws.rng(cfg.seed, "world_replay").choice(len(corpus), int(cfg.replay * len(examples)), replace=False)
        examples = examples + [corpus[i] for i in sorted(pick)]
    return finetune(base, examples, cfg, out, {"world": world_fingerprint, "people": chosen}, log)
