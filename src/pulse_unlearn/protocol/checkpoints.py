"""What a run has finished, kept so that the same command resumes it after a crash.

    resume/key                                   fingerprint of config, data, models, versions, device
    resume/<scenario>/start.json                 step 0: the sets, the starting model's predictions (and probe,
                                                 its trajectory points per request, the attacks' baseline)
    resume/<scenario>/<method>--<update>/op-<k>.json     operation k's summary, prediction and operation rows
    resume/<scenario>/<method>--<update>/op-<k>.adapter/ its LoRA adapter (peft layout), until the unit is done

Every file is written under a temporary name and renamed, the adapter before its record: a
record exists only once everything it needs does, so a process killed at any moment (SIGKILL
included) leaves either a finished operation or none. A resumed run replays the records and
rebuilds a unit's model by loading the starting model and merging the saved adapters 1..k in
order (the same arithmetic as the first time, so the same weights), then goes on training.

The runner asks for a finished step by its key and hands in how to compute it otherwise:
``start(scenario, compute)`` for step 0, ``unit(unit, n).operation(k, compute)`` for operation
k; what is computed is saved before it is returned.

Records are reused only under the same key: when the data files, a model's files, the
library versions or the device differ from those of the first attempt, ``resume/`` is
discarded and the run starts over (the run folder's config is checked by ``RunStore``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation.predictions import from_record, to_record
from ..runs.atomic import atomic_folder, atomic_write
from ..records import Unit
from .records import Result, Start
from .sets import Sets


# The layout of the records themselves (predictions by kind, people by subject key): records of
# another layout are never read back.
RECORD_FORMAT = 6


def resume_key(parts: dict) -> str:
    parts = {**parts, "record_format": RECORD_FORMAT}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _preds_to_json(preds: dict[str, list]) -> dict:
    return {split: [to_record(p) for p in ps] for split, ps in preds.items()}


def _preds_from_json(obj: dict) -> dict[str, list]:
    return {split: [from_record(p) for p in ps] for split, ps in obj.items()}


class Checkpoints:
    """Finished work of one run folder, under one key. With several processes only the first
    writes (``write``); all of them read."""

    def __init__(self, folder: Path, key: str, log=print, write: bool = True):
        self.folder, self.key, self.write, self.log = Path(folder), key, write, log
        marker = self.folder / "key"
        if not write:
            return
        if self.folder.exists():
            old = marker.read_text().strip() if marker.is_file() else ""
            if old != key:
                log(f"resume: the finished results in {self.folder} were made with other data, models, library "
                    "versions or device; starting over")
                shutil.rmtree(self.folder)
        if not marker.is_file():
            atomic_write(marker, key + "\n")

    def start(self, scenario: str, compute: Callable[[], Start]) -> Start:
        """Step 0 of ``scenario``: read back, else ``compute()``d and saved."""
        path = self.folder / scenario / "start.json"
        obj = self._read(path)
        if obj is not None:
            self.log(f"[{scenario}] step 0: read back from the interrupted run")
            sets = Sets(requests=tuple(tuple(r) for r in obj["requests"]), retain=tuple(obj["retain"]))
            return Start(sets, _preds_from_json(obj["preds"]), obj.get("probe_rows"), obj.get("note"),
                         obj.get("starting"), obj.get("attacks", []))
        start = compute()
        self._write(path, {"requests": [list(r) for r in start.sets.requests], "retain": list(start.sets.retain),
                           "preds": _preds_to_json(start.preds), "probe_rows": start.probe_rows, "note": start.note,
                           "starting": start.starting, "attacks": start.attacks})
        return start

    def unit(self, unit: Unit, n: int) -> UnitCheckpoints:
        """The finished operations of a unit of ``n`` operations."""
        return UnitCheckpoints(self, self.folder / unit.scenario / f"{unit.method}--{unit.update}", n)

    def _read(self, path: Path) -> dict | None:
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return obj["data"] if isinstance(obj, dict) and obj.get("key") == self.key else None

    def _write(self, path: Path, data: dict) -> None:
        if self.write:
            # Keys in their order: a record's splits are in the order the summary rows are.
            atomic_write(path, json.dumps({"key": self.key, "data": data}))


@dataclass
class UnitCheckpoints:
    """One unit's operation records 1..k (summary, prediction and operation rows) and, while the
    unit is unfinished, their adapters. ``finished`` holds the records of an interrupted run that
    can be built on: all of them when the unit was finished, else those whose adapters are there
    too (without them the unit starts over)."""

    owner: Checkpoints
    folder: Path
    n: int
    finished: list[Result] = field(default_factory=list)

    def __post_init__(self):
        while len(self.finished) < self.n:
            record = self.owner._read(self.folder / f"op-{len(self.finished) + 1}.json")
            if record is None:
                break
            self.finished.append(Result.from_json(record))
        if len(self.finished) < self.n and not all(p.is_dir() for p in self.adapters()):
            self.finished = []

    def adapters(self) -> list[Path]:
        """The saved adapters of the finished operations, in order."""
        return [self.adapter(k) for k in range(1, len(self.finished) + 1)]

    def adapter(self, k: int) -> Path:
        return self.folder / f"op-{k}.adapter"

    def operation(self, k: int, compute: Callable[[], Result]) -> Result:
        """Operation k's record: read back, else ``compute()``d and saved (after its adapter)."""
        if k <= len(self.finished):
            return self.finished[k - 1]
        result = compute()
        self.owner._write(self.folder / f"op-{k}.json", result.to_json())
        return result

    def save_adapter(self, k: int, peft_model) -> None:
        """Operation k's trained adapter (peft's ``default``; stacked earlier ones have files of
        their own), before it is merged (peft's layout, safetensors)."""
        if not self.owner.write:
            return
        with atomic_folder(self.adapter(k)) as tmp:
            peft_model.save_pretrained(tmp, safe_serialization=True, selected_adapters=["default"])

    def adapter_states(self) -> list[dict]:
        """The saved adapters of the finished operations as state dicts, in order (stacked adapters
        are rebuilt from them, not merged)."""
        from safetensors.torch import load_file

        return [load_file(str(path / "adapter_model.safetensors")) for path in self.adapters()]

    def done(self) -> None:
        """A finished unit's records are all a resume needs: drop its adapters (a 13B model's
        are tens of MB each)."""
        if self.owner.write:
            for path in self.folder.glob("*op-*.adapter*"):
                shutil.rmtree(path, ignore_errors=True)


def apply_adapters(model, paths: list[Path]):
    """Merge saved adapters into ``model`` one after the other, as the operations did."""
    from peft import PeftModel

    for path in paths:
        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    return model
