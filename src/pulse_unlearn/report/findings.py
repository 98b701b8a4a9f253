"""The main table and the paper's three findings, computed from summary rows alone.

Rows are dicts as in ``summary.csv`` (values may be strings when read back from the file).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from ..errors import PulseError
from ..evaluation.metrics import extra as extra_metrics
from .scenarios import is_sequential, one_shot_of, with_knowledge

TABLE_SPLITS = ("forget", "retain", "general")
MODS = ("multimodal", "text")


REQUIRED = ("scenario", "method", "update", "step", "request", "split", "modality", "accuracy")


def read_summary(path: Path) -> list[dict]:
    """The rows of a ``summary.csv``, checked: a report built from a truncated or hand-edited file
    should fail on the line at fault, not draw a wrong plot."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise PulseError(f"{path}: not a PULSE summary (missing column(s) {', '.join(missing)})")
            rows = []
            for line, r in enumerate(reader, start=2):
                rows.append(_checked_row(path, line, r))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise PulseError(f"{path}: cannot read ({e})") from None
    if not rows:
        raise PulseError(f"{path}: no rows")
    return rows


def _checked_row(path: Path, line: int, r: dict) -> dict:
    if None in r or any(r.get(c) in (None, "") for c in REQUIRED):
        raise PulseError(f"{path}:{line}: wrong number of fields or an empty value")
    try:
        step, acc = int(r["step"]), float(r["accuracy"])
    except ValueError:
        raise PulseError(f"{path}:{line}: step must be an integer and accuracy a number") from None
    if not 0.0 <= acc <= 1.0:
        raise PulseError(f"{path}:{line}: accuracy {acc} is outside [0, 1]")
    return {**r, "step": step, "accuracy": acc}


class Summary:
    """Lookup of accuracies by (scenario, method, update, step, request, split, modality).

    Rows averaged over several runs (``pulse compare``) also carry ``std`` and ``runs``; a single
    run's rows have neither, and ``spread`` is then None."""

    def __init__(self, rows: Iterable[dict]):
        self.acc: dict[tuple, float] = {}
        self.metrics: dict[tuple, dict[str, float]] = {}  # the registered metrics beyond accuracy, where filled
        self.std: dict[tuple, tuple[float, int]] = {}
        self.metric_std: dict[tuple, tuple[float, int]] = {}  # (*key, metric) -> as ``std``
        self.last_step: dict[tuple, int] = {}
        self.stop: dict[tuple, str] = {}  # unit -> summary.csv's stopping-rule label, where it has one
        for r in rows:
            key = (r["scenario"], r["method"], r["update"], int(r["step"]), str(r["request"]), r["split"],
                   r["modality"])
            self.acc[key] = float(r["accuracy"])
            metrics = {m.name: float(r[m.name]) for m in extra_metrics() if r.get(m.name) not in (None, "")}
            if metrics:
                self.metrics[key] = metrics
            if r.get("std") not in (None, ""):
                self.std[key] = (float(r["std"]), int(r["runs"]))
            for m in metrics:
                if r.get(f"{m}_std") not in (None, ""):
                    self.metric_std[(*key, m)] = (float(r[f"{m}_std"]), int(r["runs"]))
            unit = (r["scenario"], r["method"], r["update"])
            self.last_step[unit] = max(self.last_step.get(unit, 0), int(r["step"]))
            if r.get("stop"):
                self.stop[unit] = r["stop"]

    def get(self, unit, step, split, modality, request="all", metric="accuracy") -> float | None:
        """The accuracy, or another registered metric (``rouge1``, ...) where the row has it."""
        key = (*unit, step, request, split, modality)
        return self.acc.get(key) if metric == "accuracy" else self.metrics.get(key, {}).get(metric)

    def spread(self, unit, step, split, modality, request="all", metric="accuracy") -> tuple[float, int] | None:
        """(standard deviation, number of runs) of an averaged accuracy or generation metric, or None."""
        key = (*unit, step, request, split, modality)
        return self.std.get(key) if metric == "accuracy" else self.metric_std.get((*key, metric))

    def units(self) -> list[tuple[str, str, str]]:
        return list(self.last_step)

    def requests(self, unit) -> list[str]:
        """The sequential scenario's numbered requests present for ``unit``, in order."""
        found = {k[4] for k in self.acc if k[:3] == tuple(unit) and k[4].isdigit()}
        return sorted(found, key=int)


def is_oracle(stop: str) -> bool:
    return "oracle" in stop


def stopping_note(s: Summary) -> str:
    """The stopping rules the results were reached with, as a sentence; an oracle rule (one that
    looked at the forget split's evaluation questions) is said to be one. Empty when the summary
    does not say (runs from before stopping rules were recorded)."""
    labels = sorted(set(s.stop.values()))
    if not labels:
        return ""
    out = f"Stopping rule: {'; '.join(labels)}."
    if any(is_oracle(x) for x in labels):
        out += (" ORACLE: a rule marked oracle stopped on the forget split's evaluation questions, which a real "
                "unlearner does not have; its results show what the method can reach, not what it would.")
    return out


def _pct(x: float | None) -> str:
    return "  -  " if x is None else f"{100 * x:5.1f}"


def main_table(s: Summary) -> str:
    """Per unit: start -> end accuracy on forget / retain / general, multimodal and text-only."""
    head = f"{'scenario':<11}{'method':<9}{'update':<14}{'ops':>4}  " + "  ".join(
        f"{sp + ' ' + ('mm' if m == 'multimodal' else 'txt'):>16}" for sp in TABLE_SPLITS for m in MODS)
    lines = [head, "-" * len(head)]
    for unit in s.units():
        end = s.last_step[unit]
        cells = []
        for sp in TABLE_SPLITS:
            for m in MODS:
                cells.append(f"{_pct(s.get(unit, 0, sp, m))} -> {_pct(s.get(unit, end, sp, m))}".rjust(16))
        lines.append(f"{unit[0]:<11}{unit[1]:<9}{unit[2]:<14}{end:>4}  " + "  ".join(cells))
    return "\n".join(lines)


def _drop(s: Summary, unit, split, modality, step=None) -> float | None:
    start, end = s.get(unit, 0, split, modality), s.get(unit, s.last_step[unit] if step is None else step, split,
                                                         modality)
    return None if start is None or end is None else start - end


def findings(s: Summary) -> str:
    """The paper's three findings next to what this run measured. A *drop* is start minus end
    accuracy in absolute percentage points (negative: it rose)."""
    out = []
    methods = sorted({u[1] for u in s.units()})

    out.append("1. Pre-trained vs fine-tuned knowledge (paper: unlearning fine-tuned knowledge costs up to ~10% "
               "of MMBench; pre-trained knowledge costs > 90% and also hurts retain).")
    ft_name, pt_name = with_knowledge("fine-tuned"), with_knowledge("pre-trained")
    for m in methods:
        ft, pt = (ft_name, m, "llm"), (pt_name, m, "llm")
        if ft in s.last_step and pt in s.last_step:
            g_ft, g_pt = _drop(s, ft, "general", "all"), _drop(s, pt, "general", "all")
            r_ft, r_pt = _drop(s, ft, "retain", "all"), _drop(s, pt, "retain", "all")
            said = verdict(None if g_pt is None or g_ft is None else g_pt - g_ft)
            out.append(f"   {m:<8} general drop: finetuned {_pts(g_ft)}, pretrained {_pts(g_pt)}; "
                       f"retain drop: finetuned {_pts(r_ft)}, pretrained {_pts(r_pt)}  -> {said}")

    out.append("2. Sequential unlearning (paper: after 5 operations generality is almost entirely lost, even for "
               "methods that do well in one shot).")
    sequential = [n for n in dict.fromkeys(u[0] for u in s.units()) if is_sequential(n)]
    for m, name in ((m, name) for m in methods for name in sequential):
        seq, one = (name, m, "llm"), (one_shot_of(name), m, "llm")
        if seq in s.last_step and one in s.last_step:
            parts = []
            for split in ("retain", "general"):
                parts.append(f"{split} {_pct(s.get(one, s.last_step[one], split, 'all')).strip()}% one-shot vs "
                             f"{_pct(s.get(seq, s.last_step[seq], split, 'all')).strip()}% after "
                             f"{s.last_step[seq]} ops")
            g_one = s.get(one, s.last_step[one], "general", "all")
            g_seq = s.get(seq, s.last_step[seq], "general", "all")
            said = verdict(None if g_one is None or g_seq is None else g_one - g_seq)
            out.append(f"   {m:<8} " + "; ".join(parts) + f"  -> {said}")

    out.append("3. Text-only vs multimodal forgetting (paper, projector + LLM: multimodal 78.0% -> 9.6%, text-only "
               "76.8% -> 35.2%: text-only questions resist unlearning). Compared: the share of the starting "
               f"accuracy above chance ({CHANCE:.0%}, four options) each modality keeps.")
    for unit in s.units():
        if is_sequential(unit[0]):
            continue
        end = s.last_step[unit]
        mm = (s.get(unit, 0, "forget", "multimodal"), s.get(unit, end, "forget", "multimodal"))
        txt = (s.get(unit, 0, "forget", "text"), s.get(unit, end, "forget", "text"))
        if None in mm + txt:
            continue
        if mm[0] <= CHANCE or txt[0] <= CHANCE:
            continue  # nothing above chance to forget
        kept_mm, kept_txt = _kept(*mm), _kept(*txt)
        out.append(f"   {'/'.join(unit):<30} forget: multimodal {_pct(mm[0]).strip()}% -> {_pct(mm[1]).strip()}% "
                   f"(keeps {kept_mm:.0%}), text-only {_pct(txt[0]).strip()}% -> {_pct(txt[1]).strip()}% "
                   f"(keeps {kept_txt:.0%})  -> {verdict(kept_txt - kept_mm)}")
    return "\n".join(out)


MARGIN = 0.05  # differences under 5 points are not read as a finding either way
CHANCE = 0.25  # MLLMU-Bench's (and the world's) questions have four options


def _kept(start: float, end: float) -> float:
    """The share of the knowledge above chance that is left: 1 = nothing forgotten, 0 = at (or
    below) chance. A model at chance has forgotten everything, however it got there."""
    return max(0.0, (end - CHANCE) / (start - CHANCE))


def verdict(diff: float | None) -> str:
    """``diff`` > 0 is the paper's direction."""
    if diff is None:
        return "not measured"
    if abs(diff) < MARGIN:
        return f"no clear difference (< {100 * MARGIN:.0f} pts)"
    return "reproduced" if diff > 0 else "not reproduced (the opposite)"


def _pts(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} pts"
