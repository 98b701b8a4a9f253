"""``pulse doctor``: what this machine has, and whether a model and a data folder are usable,
checked in seconds before a run of hours. A problem ends it with one line and exit status 2
(a ``PulseError``), like every other bad input."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import PulseError


def folder_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path``; symlinks are not followed."""
    total = count = 0
    stack = [Path(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            elif e.is_file(follow_symlinks=False):
                total += e.stat(follow_symlinks=False).st_size
                count += 1
    return total, count


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def environment(cache: Path, echo) -> None:
    import torch

    from .models.load import resolve_device, resolve_dtype
    from .runs.store import versions

    echo("versions")
    for k, v in versions().items():
        echo(f"  {k}: {v}")
    device = resolve_device("auto")
    echo("device")
    echo(f"  auto: {device} ({str(resolve_dtype('auto', device)).removeprefix('torch.')}); "
         f"{os.cpu_count()} CPU core(s), torch uses {torch.get_num_threads()} thread(s)")
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        p = torch.cuda.get_device_properties(i)
        echo(f"  cuda:{i}: {p.name}, {human(p.total_memory)}")
    echo("caches")
    from huggingface_hub import constants

    for label, path in (("pulse ($PULSE_CACHE)", Path(cache)), ("huggingface hub", Path(constants.HF_HUB_CACHE))):
        if path.is_dir():
            size, files = folder_size(path)
            echo(f"  {label}: {path} ({human(size)} in {files} file(s))")
        else:
            echo(f"  {label}: {path} (absent)")


def check_model(path: Path, trust_remote_code: bool, echo) -> None:
    """Config, safetensors weights, processor, image token: everything but the weights' values."""
    import json

    from .data.batches import Encoder
    from .models.load import load_processor

    processor = load_processor(path, trust_remote_code)
    try:
        encoder = Encoder(processor)
    except PulseError as e:
        raise PulseError(f"{path}: {e}") from None
    local = Path(path)
    detail = ""
    if local.is_dir():
        config = json.loads((local / "config.json").read_text())
        weights = sorted(local.glob("*.safetensors"))
        detail = (f"{config.get('model_type', '?')} ({', '.join(config.get('architectures') or ['?'])}), "
                  f"{len(weights)} safetensors file(s), {human(sum(w.stat().st_size for w in weights))}; ")
    echo(f"model {path}: ok: {detail}image token {encoder.image_token!r} (id {encoder.image_token_id}) "
         f"x {encoder.n_image_tokens} for a {encoder.probe_size[0]}x{encoder.probe_size[1]} image, "
         f"vocabulary {len(encoder.tokenizer)}")


def data_paths(data: Path) -> tuple[Path | None, Path | None]:
    """(MLLMU-Bench folder, MMBench TSV) in ``data``: a world folder holding both, an MLLMU-Bench
    folder, an MMBench TSV, or a hub dataset id holding either (``pipeline.hub_dataset``)."""
    data = Path(data)
    if not data.exists():
        from .pipeline import HUB_ID, hub_snapshot, mllmu_root, mmbench_tsv

        if not HUB_ID.fullmatch(str(data)):
            raise PulseError(f"{data}: no such file or folder")
        snapshot = hub_snapshot(str(data), "--data", ["*.parquet", "*.tsv"])
        root = mllmu_root(snapshot)
        return (root, None) if root else (None, mmbench_tsv(snapshot, f"--data={data}"))
    if data.is_file():
        return None, data
    if (data / "MLLMU-Bench").is_dir():
        tsv = sorted((data / "MMBench").glob("*.tsv")) if (data / "MMBench").is_dir() else []
        return data / "MLLMU-Bench", tsv[0] if tsv else None
    if any((data / s).is_dir() for s in ("Full_Set", "Retain_Set", "ft_Data")):
        return data, None
    if pebench_folder(data) is not None:
        return None, None
    raise PulseError(f"{data}: neither an MLLMU-Bench folder (Full_Set/, Retain_Set/), a PEBench-style folder "
                     "(concepts.csv, questions.jsonl) nor one holding MLLMU-Bench/")


def pebench_folder(data: Path) -> Path | None:
    """``data`` itself or its ``PEBench/`` when it is a PEBench-style folder (``data/pebench.py``)."""
    for folder in (data, data / "PEBench"):
        if (folder / "concepts.csv").is_file() or (folder / "questions.jsonl").is_file():
            return folder
    return None


def check_data(data: Path, echo) -> None:
    from .data.mllmu import load_facts, load_people
    from .data.mmbench import load_mmbench

    mllmu, mmbench = data_paths(data)
    if mllmu is not None:
        for subset in ("Full_Set", "Retain_Set"):  # numbered independently: an ID may be in both
            people = load_people(mllmu, subset)
            n = sum(len(p.questions) for p in people)
            echo(f"data {mllmu / subset}: ok: {len(people)} people ({people[0].population}), {n} questions")
        if (mllmu / "ft_Data").is_dir():
            facts = load_facts(mllmu)
            echo(f"data {mllmu / 'ft_Data'}: ok: {sum(map(len, facts.values()))} QA pairs for {len(facts)} people")
    if mmbench is not None:
        questions = load_mmbench(mmbench)
        images = sum(q.image is not None for q in questions)
        echo(f"data {mmbench}: ok: {len(questions)} questions ({images} with an image)")
    folder = pebench_folder(Path(data)) if Path(data).is_dir() else None
    if folder is not None:
        from .data.pebench import load_pebench

        c = load_pebench(folder)
        echo(f"data {folder}: ok: {len(c.keys('person'))} people, {len(c.keys('event'))} events, {len(c.shows)} "
             f"images, {len(c.questions)} questions, {len(c.facts)} facts")


def doctor(model: Path | None, data: Path | None, cache: Path, trust_remote_code: bool, echo) -> None:
    environment(cache, echo)
    if model is not None or data is not None:
        echo("checks")
    if model is not None:
        check_model(model, trust_remote_code, echo)
    if data is not None:
        check_data(data, echo)
