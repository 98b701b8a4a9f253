"""What a run has finished, kept so that the same command resumes it after a crash.

    resume/key                                   fingerprint of config, data, models, versions, device
    resume/<scenario>/start.json                 step 0: the sets, the starting model's predictions (and probe)
    resume/<scenario>/<method>--<update>/op-<k>.json     operation k's summary, prediction and operation rows
    resume/<scenario>/<method>--<update>/op-<k>.adapter/ its LoRA adapter (peft layout), until the unit is done

Every file is written under a temporary name and renamed, the adapter before its record: a
record exists only once everything it needs does, so a process killed at any moment (SIGKILL
included) leaves either a finished operation or none. A resumed run replays the records and
rebuilds a unit's model by loading the starting model and merging the saved adapters 1..k in
order (the same arithmetic as the first time, so the same weights), then goes on training.

Records are reused only under the same key: when the data files, a model's files, the
library versions or the device differ from those of the first attempt, ``resume/`` is
discarded and the run starts over (the run folder's config is checked by ``RunStore``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..evaluation.predictions import from_record, to_record
from ..scenarios.splits import Sets
from .store import atomic_write


# The layout of the records themselves (predictions by kind, people by subject key): records of
# another layout are never read back.
RECORD_FORMAT = 2


def resume_key(parts: dict) -> str:
    parts = {**parts, "record_format": RECORD_FORMAT}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Start:
    """A scenario's step 0: its sets, the starting model's predictions, and the probe (pretrained)."""

    sets: Sets
    preds: dict[str, list]  # split -> predictions of any kind
    probe_rows: list[dict] | None = None
    note: str | None = None


def _preds_to_json(preds: dict[str, list]) -> dict:
    return {split: [to_record(p) for p in ps] for split, ps in preds.items()}


def _preds_from_json(obj: dict) -> dict[str, list]:
    return {split: [from_record(p) for p in ps] for split, ps in obj.items()}


class Resume:
    """Finished work of one run folder, under one key. With several processes only the first
    writes (``write``); all of them read."""

    def __init__(self, folder: Path, key: str, log=print, write: bool = True):
        self.folder, self.key, self.write = Path(folder), key, write
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

    # --- step 0 -----------------------------------------------------------------------
    def start(self, scenario: str) -> Start | None:
        obj = self._read(self.folder / scenario / "start.json")
        if obj is None:
            return None
        sets = Sets(requests=tuple(tuple(r) for r in obj["requests"]), retain=tuple(obj["retain"]))
        return Start(sets, _preds_from_json(obj["preds"]), obj.get("probe_rows"), obj.get("note"))

    def save_start(self, scenario: str, start: Start) -> None:
        self._write(self.folder / scenario / "start.json", {
            "requests": [list(r) for r in start.sets.requests], "retain": list(start.sets.retain),
            "preds": _preds_to_json(start.preds), "probe_rows": start.probe_rows, "note": start.note})

    # --- operations -------------------------------------------------------------------
    def _unit_dir(self, unit: dict) -> Path:
        return self.folder / unit["scenario"] / f"{unit['method']}--{unit['update']}"

    def operations(self, unit: dict, n: int) -> list[dict]:
        """The unit's finished operations 1..k of ``n``, in order (each: summary, predictions,
        operation rows). A unit left unfinished needs the adapters too; without them it starts over."""
        out = []
        while len(out) < n and (rec := self._read(self._unit_dir(unit) / f"op-{len(out) + 1}.json")) is not None:
            out.append(rec)
        if len(out) < n and not all(self.adapter(unit, k).is_dir() for k in range(1, len(out) + 1)):
            return []
        return out

    def adapter(self, unit: dict, k: int) -> Path:
        return self._unit_dir(unit) / f"op-{k}.adapter"

    def save_adapter(self, unit: dict, k: int, peft_model) -> None:
        """Operation k's trained adapter, before it is merged (peft's layout, safetensors)."""
        if not self.write:
            return
        target = self.adapter(unit, k)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        peft_model.save_pretrained(tmp, safe_serialization=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)

    def save_operation(self, unit: dict, k: int, record: dict) -> None:
        """The record that says operation k is finished (written after its adapter)."""
        self._write(self._unit_dir(unit) / f"op-{k}.json", record)

    def unit_done(self, unit: dict) -> None:
        """A finished unit's records are all a resume needs: drop its adapters (a 13B model's
        are tens of MB each)."""
        if not self.write:
            return
        folder = self._unit_dir(unit)
        for path in folder.glob("*op-*.adapter*"):
            shutil.rmtree(path, ignore_errors=True)

    # --- files --------------------------------------------------------------------------
    def _read(self, path: Path) -> dict | None:
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return obj["data"] if isinstance(obj, dict) and obj.get("key") == self.key else None

    def _write(self, path: Path, data: dict) -> None:
        if not self.write:
            return
        # Keys in their order: a record's splits are in the order the summary rows are.
        atomic_write(path, json.dumps({"key": self.key, "data": data}))


def apply_adapters(model, paths: list[Path]):
    """Merge saved adapters into ``model`` one after the other, as the operations did."""
    from peft import PeftModel

    for path in paths:
        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    return model
