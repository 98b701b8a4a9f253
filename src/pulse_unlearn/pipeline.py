"""Glue for the embedded world: make (or find in the cache) the world and its models.

The cache holds ``world-<fingerprint>/`` folders and ``models/`` with the base and
fine-tuned checkpoints keyed by world + training config; each is written under a
temporary name and renamed (``runs/atomic.py``), so an interrupted build is rebuilt, never
half-used; and built under the cache's lock (``cache_lock``), so two processes sharing a
cache (two experiments, or test workers) never build the same thing at once: the second finds
it cached.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from pathlib import Path

from .runs.atomic import atomic_folder
from .world.build import PEBENCH, WorldConfig, build_world, world_config


# A dataset value that names no local file and reads ``owner/name`` is a hub dataset id.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
LOCAL_HINT = {"data.mllmu": "/path/to/MLLMU-Bench", "data.mmbench": "/path/to/mmbench_dev_en.tsv"}


def cache_folder(cache: Path | None = None) -> Path:
    """Where worlds and models are kept: ``cache``, else $PULSE_CACHE, else ~/.cache/pulse-unlearn."""
    if cache is not None:
        return Path(cache)
    return Path(os.environ.get("PULSE_CACHE") or Path.home() / ".cache" / "pulse-unlearn")


@functools.cache
def _lock(path: str):
    from filelock import FileLock

    return FileLock(path)  # one object per path: re-entered by nested builds in this process


@contextlib.contextmanager
def cache_lock(cache: Path):
    """Held while building into ``cache`` (a lock file in it), across processes."""
    Path(cache).mkdir(parents=True, exist_ok=True)
    with _lock(str(Path(cache).resolve() / ".lock")):
        yield


def ensure_world(cfg: WorldConfig, cache: Path, out: Path | None = None, log=print) -> Path:
    """The world for ``cfg``: built into ``out`` (or the cache) unless already there."""
    if out is None:
        with cache_lock(cache):
            return _ensure_world(cfg, cache, None, log)
    return _ensure_world(cfg, cache, out, log)


def _ensure_world(cfg: WorldConfig, cache: Path, out: Path | None, log) -> Path:
    target = Path(out) if out else Path(cache) / f"world-{cfg.fingerprint()}"
    meta = target / "world.json"
    if meta.exists() and json.loads(meta.read_text()).get("fingerprint") == cfg.fingerprint():
        log(f"world: cached at {target}")
        return target
    if target.exists() and any(target.iterdir()) and not meta.exists():
        from .errors import PulseError

        raise PulseError(f"{target}: exists and is not a pulse world; choose another --out")
    with atomic_folder(target) as tmp:  # replaces an empty folder or a world of another config
        build_world(cfg, tmp)
    log(f"world: built at {target}")
    return target


def world_people(model) -> dict:
    """The run config's (``model``) fields of the world's people, as WorldConfig names them."""
    return {"attributes": model.attributes, "wordings": model.wordings, "world_skills": model.world_skills}


def ensure_models(preset: str, cache: Path, finetuned: bool = True, log=print, seed: int = 0,
                  events: int = 0, **people) -> dict[str, Path]:
    """World, base model and (optionally) fine-tuned model for a preset, world seed, number of
    events and ``people`` fields of the world config (another world has its own models)."""
    from .models.world_models import build_base, build_finetuned, models_config

    wcfg, mcfg = world_config(preset, seed=seed, n_events=events, **people), models_config(preset, seed=seed)
    with cache_lock(cache):
        world = ensure_world(wcfg, cache, log=log)
        models = Path(cache) / "models"
        paths = {"world": world, "base": build_base(world, wcfg.training_fingerprint(), mcfg, models, log)}
        if finetuned:
            paths["finetuned"] = build_finetuned(world, wcfg.training_fingerprint(), mcfg, models, log)
    return paths


def hub_dataset(value: Path | None, key: str) -> Path | None:
    """``value`` itself when it is a local path (or empty); a hub dataset id (``owner/name``) is
    fetched into the hub cache (offline: found there) and its MLLMU-Bench folder (``data.mllmu``)
    or MMBench TSV (``data.mmbench``) returned."""
    if value is None or Path(value).exists() or not HUB_ID.fullmatch(str(value)):
        return value
    if key == "data.mmbench":
        return mmbench_tsv(hub_snapshot(str(value), key, ["*.tsv"]), f"{key}={value}")
    root = mllmu_root(hub_snapshot(str(value), key, ["*.parquet"]))
    if root is None:
        from .errors import PulseError

        raise PulseError(f"{key}={value}: the hub dataset holds no Full_Set/ folder (at its root or one level "
                         f"down); pass a local MLLMU-Bench folder instead: {key}={LOCAL_HINT[key]}")
    return root


def hub_snapshot(repo_id: str, key: str, patterns: list[str]) -> Path:
    """The dataset's files matching ``patterns``, downloaded into (or, offline, found in) the hub
    cache. Unreachable and not cached: one line naming the id and the local alternative."""
    from huggingface_hub import constants, snapshot_download

    from .errors import PulseError, first_line

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns))
    except (OSError, ValueError) as e:  # the hub library's errors: offline, not found, gated, bad id
        why = first_line(e).removeprefix("Got: ")
        if constants.HF_HUB_OFFLINE:
            why = "offline (HF_HUB_OFFLINE=1) and not in the hub cache"
        raise PulseError(f"{key}={repo_id}: no such local path, and the hub dataset {repo_id!r} cannot be fetched "
                         f"({why}); pass a local copy instead: {key}={LOCAL_HINT.get(key, '/path/to/data')}") from None


def mllmu_root(folder: Path) -> Path | None:
    """The folder holding ``Full_Set/``: ``folder`` itself or one of its subfolders."""
    for candidate in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if (candidate / "Full_Set").is_dir():
            return candidate
    return None


def mmbench_tsv(folder: Path, where: str) -> Path:
    """The snapshot's one TSV; of several, ``mmbench_dev_en.tsv``, else the user chooses."""
    from .errors import PulseError

    tsvs = sorted(folder.rglob("*.tsv"))
    preferred = [p for p in tsvs if p.name == "mmbench_dev_en.tsv"]
    if len(tsvs) == 1 or len(preferred) == 1:
        return (preferred or tsvs)[0]
    if not tsvs:
        raise PulseError(f"{where}: the hub dataset holds no .tsv file; pass a local MMBench TSV instead")
    names = ", ".join(str(p.relative_to(folder)) for p in tsvs)
    raise PulseError(f"{where}: the hub dataset holds several TSVs ({names}); pass the one to use: "
                     f"data.mmbench={folder}/<one of them>")


def run_experiment(cfg, out: Path, cache: Path, log=print):
    """Resolve models and data for a run config (the world's, or the user's), then run it."""
    from . import distributed
    from .errors import PulseError
    from .models.world_models import build_base, build_finetuned, models_config
    from .protocol.runner import run
    from .protocol.scenarios import Makers

    if distributed.setup() > 1 and not distributed.is_main():
        log = lambda *_: None  # noqa: E731  (the first process logs)
    if cfg.model.source != "world" and not cfg.model.base:
        raise PulseError("model.base is required when model.source is 'path'")
    if cfg.model.source != "world" and (cfg.data.mllmu is None or cfg.data.mmbench is None):
        raise PulseError("data.mllmu and data.mmbench are required when model.source is 'path'")
    data_mllmu, data_mmbench = distributed.main_first(lambda: (hub_dataset(cfg.data.mllmu, "data.mllmu"),
                                                                 hub_dataset(cfg.data.mmbench, "data.mmbench")))
    finetune = None
    if cfg.model.source == "world":
        people = world_people(cfg.model)
        paths = distributed.main_first(lambda: ensure_models(cfg.model.preset, cache, finetuned=False, log=log,
                                                             seed=cfg.model.world_seed, events=cfg.model.events,
                                                             **people))
        world = paths["world"]
        models = {"base": paths["base"], "finetuned": Path(cfg.model.finetuned) if cfg.model.finetuned else None}

        wcfg = world_config(cfg.model.preset, seed=cfg.model.world_seed, n_events=cfg.model.events, **people)
        mcfg = models_config(cfg.model.preset, seed=cfg.model.world_seed)

        def cached(build):
            """A world model made by the first process, under the cache's lock."""
            def locked():
                with cache_lock(cache):
                    return build(world, wcfg.training_fingerprint(), mcfg, Path(cache) / "models", log)

            return distributed.main_first(locked)

        def finetune(ids, facts=None, passes_of=None):
            return cached(functools.partial(build_finetuned, people=ids, passes_of=passes_of))

        def pretrain(without):
            return cached(functools.partial(build_base, without=without))

        mllmu = data_mllmu or world / "MLLMU-Bench"
        mmbench = data_mmbench or world / "MMBench" / "mmbench_dev_en.tsv"
        pebench = cfg.data.pebench or (world / PEBENCH if cfg.model.events else None)
    else:
        models = {"base": cfg.model.base, "finetuned": cfg.model.finetuned}
        mllmu, mmbench, pebench = data_mllmu, data_mmbench, cfg.data.pebench

        pretrain = None  # a user's pre-trained model cannot be made again without some of its people

        def finetune(ids, facts, passes_of=None):
            """The recipe counts epochs, so fewer people (the retrain oracle) get as many passes each."""
            from .models.finetune import finetune_checkpoint

            m = cfg.model  # every process trains (data-parallel): no lock, which only the first could take
            return finetune_checkpoint(m.base, facts, cfg.finetune, Path(cache) / "models", m.dtype, m.device,
                                       m.trust_remote_code, cfg.unlearn.gradient_checkpointing, log)
    return run(cfg, out, models, Path(mllmu), Path(mmbench), makers=Makers(finetune, pretrain), log=log,
               pebench=pebench)
