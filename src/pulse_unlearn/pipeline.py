"""Glue for the embedded world: make (or find in the cache) the world and its models.

The cache holds ``world-<fingerprint>/`` folders and ``models/`` with the base and
fine-tuned checkpoints keyed by world + training config; each is written under a
temporary name and renamed, so an interrupted build is rebuilt, never half-used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .world.build import WorldConfig, build_world, world_config


def cache_folder(cache: Path | None = None) -> Path:
    """Where worlds and models are kept: ``cache``, else $PULSE_CACHE, else ~/.cache/pulse-unlearn."""
    if cache is not None:
        return Path(cache)
    return Path(os.environ.get("PULSE_CACHE") or Path.home() / ".cache" / "pulse-unlearn")


def ensure_world(cfg: WorldConfig, cache: Path, out: Path | None = None, log=print) -> Path:
    """The world for ``cfg``: built into ``out`` (or the cache) unless already there."""
    target = Path(out) if out else Path(cache) / f"world-{cfg.fingerprint()}"
    meta = target / "world.json"
    if meta.exists() and json.loads(meta.read_text()).get("fingerprint") == cfg.fingerprint():
        log(f"world: cached at {target}")
        return target
    if target.exists() and any(target.iterdir()):
        if not meta.exists():
            from .errors import PulseError

            raise PulseError(f"{target}: exists and is not a pulse world; choose another --out")
        shutil.rmtree(target)  # a world of another config: rebuild
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    build_world(cfg, tmp)
    if target.exists():
        target.rmdir()
    tmp.rename(target)
    log(f"world: built at {target}")
    return target


def ensure_models(preset: str, cache: Path, finetuned: bool = True, log=print) -> dict[str, Path]:
    """World, base model and (optionally) fine-tuned model for a preset."""
    from .models.world_models import build_base, build_finetuned, models_config

    wcfg, mcfg = world_config(preset), models_config(preset)
    world = ensure_world(wcfg, cache, log=log)
    paths = {"world": world, "base": build_base(world, wcfg.fingerprint(), mcfg, Path(cache) / "models", log)}
    if finetuned:
        paths["finetuned"] = build_finetuned(world, wcfg.fingerprint(), mcfg, Path(cache) / "models", log)
    return paths


def run_experiment(cfg, out: Path, cache: Path, log=print):
    """Resolve models and data for a run config (the world's, or the user's), then run it."""
    from . import distributed
    from .errors import PulseError
    from .models.world_models import build_finetuned, models_config
    from .scenarios.protocol import run

    if distributed.setup() > 1 and not distributed.is_main():
        log = lambda *_: None  # noqa: E731  (the first process logs)
    finetune = None
    if cfg.model.source == "world":
        paths = distributed.main_first(lambda: ensure_models(cfg.model.preset, cache, finetuned=False, log=log))
        world = paths["world"]
        models = {"base": paths["base"], "finetuned": Path(cfg.model.finetuned) if cfg.model.finetuned else None}

        def finetune(ids, facts=None):
            wcfg, mcfg = world_config(cfg.model.preset), models_config(cfg.model.preset)
            return distributed.main_first(lambda: build_finetuned(world, wcfg.fingerprint(), mcfg,
                                                                  Path(cache) / "models", log, people=ids))

        mllmu = cfg.data.mllmu or world / "MLLMU-Bench"
        mmbench = cfg.data.mmbench or world / "MMBench" / "mmbench_dev_en.tsv"
    else:
        if not cfg.model.base:
            raise PulseError("model.base is required when model.source is 'path'")
        if cfg.data.mllmu is None or cfg.data.mmbench is None:
            raise PulseError("data.mllmu and data.mmbench are required when model.source is 'path'")
        models = {"base": cfg.model.base, "finetuned": cfg.model.finetuned}
        mllmu, mmbench = cfg.data.mllmu, cfg.data.mmbench

        def finetune(ids, facts):
            from .models.finetune import finetune_checkpoint

            m = cfg.model
            return finetune_checkpoint(m.base, facts, cfg.finetune, Path(cache) / "models", m.dtype, m.device,
                                       m.trust_remote_code, cfg.unlearn.gradient_checkpointing, log)
    return run(cfg, out, models, Path(mllmu), Path(mmbench), finetune=finetune, log=log)
