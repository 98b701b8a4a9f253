"""Glue for the embedded world: make (or find in the cache) the world and its models.

The cache holds ``world-<fingerprint>/`` folders and ``models/`` with the base and
fine-tuned checkpoints keyed by world + training config; each is written under a
temporary name and renamed, so an interrupted build is rebuilt, never half-used.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .world.build import WorldConfig, build_world, world_config


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


def knowledge_table(preset: str, cache: Path, log=print) -> None:
    """What the world's models know: the base on celebrities, benchmark and unseen people,
    the fine-tuned model on its fictitious people (multimodal and text-only, logits scoring)."""
    from rich.console import Console
    from rich.table import Table

    from .data.batches import Encoder
    from .data.mllmu import load_people
    from .data.mmbench import load_mmbench
    from .metrics.scoring import accuracy, score
    from .models.load import load_model

    paths = ensure_models(preset, cache, log=log)
    world = paths["world"]
    celebs = load_people(world / "MLLMU-Bench", "Retain_Set")
    ft_ids = set(json.loads((paths["finetuned"] / "pulse_model.json").read_text())["people"])
    fictitious = [p for p in load_people(world / "MLLMU-Bench", "Full_Set") if p.id in ft_ids]
    bench = load_mmbench(world / "MMBench" / "mmbench_dev_en.tsv")
    sets = {"celebrities": [q for p in celebs for q in p.questions],
            "fictitious": [q for p in fictitious for q in p.questions], "general": bench}

    table = Table(title=f"What the embedded world's models know (preset {preset}, logits scoring)")
    table.add_column("model")
    for name in sets:
        table.add_column(f"{name} mm", justify="right")
        table.add_column(f"{name} text", justify="right")
    for label in ("base", "finetuned"):
        model, processor = load_model(paths[label])
        enc = Encoder(processor)
        cells = []
        for questions in sets.values():
            acc = accuracy(score(model, enc, questions, "logits"))
            cells += [f"{acc[m][1]:.1%}" if m in acc else "-" for m in ("multimodal", "text")]
        table.add_row(label, *cells)
    Console(stderr=False).print(table)
    print(f"cache: {cache}")


def run_experiment(cfg, out: Path, cache: Path, log=print):
    """Resolve models and data for a run config (the world's, or the user's), then run it."""
    from .errors import PulseError
    from .models.world_models import build_base, build_finetuned, models_config
    from .scenarios.protocol import run

    finetune = None
    if cfg.model.source == "world":
        wcfg, mcfg = world_config(cfg.model.preset), models_config(cfg.model.preset)
        world = ensure_world(wcfg, cache, log=log)
        models_dir = Path(cache) / "models"
        models = {"base": build_base(world, wcfg.fingerprint(), mcfg, models_dir, log),
                  "finetuned": Path(cfg.model.finetuned) if cfg.model.finetuned else None}

        def finetune(ids):
            return build_finetuned(world, wcfg.fingerprint(), mcfg, models_dir, log, people=ids)

        mllmu = cfg.data.mllmu or world / "MLLMU-Bench"
        mmbench = cfg.data.mmbench or world / "MMBench" / "mmbench_dev_en.tsv"
    else:
        if not cfg.model.base:
            raise PulseError("model.base is required when model.source is 'path'")
        if cfg.data.mllmu is None or cfg.data.mmbench is None:
            raise PulseError("data.mllmu and data.mmbench are required when model.source is 'path'")
        models = {"base": cfg.model.base, "finetuned": cfg.model.finetuned}
        mllmu, mmbench = cfg.data.mllmu, cfg.data.mmbench
    return run(cfg, out, models, Path(mllmu), Path(mmbench), finetune=finetune, log=log)
