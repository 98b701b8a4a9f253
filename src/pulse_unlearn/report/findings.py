"""The main table and the paper's three findings, computed from summary rows alone.

Rows are dicts as in ``summary.csv`` (values may be strings when read back from the file).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from ..errors import PulseError
from ..evaluation.metrics import extra as extra_metrics
from ..protocol.scenarios.declared import is_sequential, one_shot_of, with_knowledge
from ..protocol.verdicts import CHANCE, kept

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
    """Lookup of accuracies by (scenario, method, update, step, request, split, modality), over all of
    a split's items; the rows of a split per category (``summary.csv``'s ``category``) in ``categories``.

    Rows averaged over several runs (``pulse compare``) also carry ``std`` and ``runs``; a single
    run's rows have neither, and ``spread`` is then None."""

    def __init__(self, rows: Iterable[dict]):
        self.acc: dict[tuple, float] = {}
        self.metrics: dict[tuple, dict[str, float]] = {}  # the registered metrics beyond accuracy, where filled
        self.std: dict[tuple, tuple[float, int]] = {}
        self.metric_std: dict[tuple, tuple[float, int]] = {}  # (*key, metric) -> as ``std``
        self.ci: dict[tuple, tuple[float, float]] = {}  # key -> the accuracy's interval, where the row has one
        self.last_step: dict[tuple, int] = {}
        self.stop: dict[tuple, str] = {}  # unit -> summary.csv's stopping-rule label, where it has one
        # (scenario, method, update, step, split, modality) -> {category: (accuracy, interval or None)}
        self.categories: dict[tuple, dict[str, tuple[float, tuple[float, float] | None]]] = {}
        for r in rows:
            if r.get("category", "all") != "all":
                self._add_category(r)
                continue
            key = (r["scenario"], r["method"], r["update"], int(r["step"]), str(r["request"]), r["split"],
                   r["modality"])
            self.acc[key] = float(r["accuracy"])
            if r.get("ci_low") not in (None, "") and r.get("ci_high") not in (None, ""):
                self.ci[key] = (float(r["ci_low"]), float(r["ci_high"]))
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

    def _add_category(self, r: dict) -> None:
        key = (r["scenario"], r["method"], r["update"], int(r["step"]), r["split"], r["modality"])
        ci = ((float(r["ci_low"]), float(r["ci_high"])) if r.get("ci_low") not in (None, "")
              and r.get("ci_high") not in (None, "") else None)
        self.categories.setdefault(key, {})[r["category"]] = (float(r["accuracy"]), ci)

    def get(self, unit, step, split, modality, request="all", metric="accuracy") -> float | None:
        """The accuracy, or another registered metric (``rouge1``, ...) where the row has it."""
        key = (*unit, step, request, split, modality)
        return self.acc.get(key) if metric == "accuracy" else self.metrics.get(key, {}).get(metric)

    def interval(self, unit, step, split, modality, request="all") -> tuple[float, float] | None:
        """The accuracy's bootstrap interval (``ci_low``, ``ci_high``), or None where the row has none."""
        return self.ci.get((*unit, step, request, split, modality))

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
    """Per unit: start -> end accuracy on forget / retain / general, multimodal and text-only;
    under it, where the summary has them, the end accuracies' intervals."""
    head = f"{'scenario':<11}{'method':<9}{'update':<14}{'ops':>4}  " + "  ".join(
        f"{sp + ' ' + ('mm' if m == 'multimodal' else 'txt'):>16}" for sp in TABLE_SPLITS for m in MODS)
    lines = [head, "-" * len(head)]
    for unit in s.units():
        end = s.last_step[unit]
        cells, intervals = [], []
        for sp in TABLE_SPLITS:
            for m in MODS:
                cells.append(f"{_pct(s.get(unit, 0, sp, m))} -> {_pct(s.get(unit, end, sp, m))}".rjust(16))
                ci = s.interval(unit, end, sp, m)
                intervals.append(("" if ci is None else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]").rjust(16))
        lines.append(f"{unit[0]:<11}{unit[1]:<9}{unit[2]:<14}{end:>4}  " + "  ".join(cells))
        if any(x.strip() for x in intervals):
            lines.append(f"{'':<38}" + "  ".join(intervals))
    if s.ci:
        lines.append("(under each unit: the end accuracy's bootstrap interval, people resampled together; level: the "
                     "config's intervals.level)")
    return "\n".join(lines)


def _drop(s: Summary, unit, split, modality, step=None) -> float | None:
    start, end = s.get(unit, 0, split, modality), s.get(unit, s.last_step[unit] if step is None else step, split,
                                                         modality)
    return None if start is None or end is None else start - end


# (finding, at, method, update, scenarios, target modality) -> findings.csv's row
Judged = dict[tuple[str, ...], dict]


def _text(value) -> str:
    """A findings.csv cell as text (an empty cell read by pandas is nan)."""
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def judged_of(rows) -> Judged:
    """``findings.csv``'s rows (dicts or a DataFrame's records) by what they compare."""
    return {tuple(_text(r.get(k)) for k in ("finding", "at", "method", "update", "scenarios", "target_modality")): r
            for r in rows}


def said(judged: Judged | None, finding: int, method: str, update: str, scenarios: str,
         estimate: float | None, at: str = "budget", target_modality: str = "", unit: str = "pts") -> str:
    """A comparison's verdict as findings.csv states it, with its estimate and its Holm-level
    interval (``unit``: ``pts``, shares shown x 100, or ``examples``); where the file has no row
    (pooled runs, an older run), the point estimate alone and "inconclusive": a verdict needs an
    interval that excludes 0."""
    row = (judged or {}).get((str(finding), at, method, update, scenarios, target_modality))
    scale = 100 if unit == "pts" else 1
    if row is not None:
        est, low, high, level = (float(row[k]) for k in ("estimate", "ci_low", "ci_high", "level"))
        return (f"{row['verdict']} ({scale * est:+.1f} {unit}, {100 * level:.1f}% interval "
                f"[{scale * low:+.1f}, {scale * high:+.1f}])")
    return no_interval(estimate, unit)


def no_interval(estimate: float | None, unit: str = "pts") -> str:
    if estimate is None:
        return "not measured"
    return f"inconclusive (no interval; estimate {(100 if unit == 'pts' else 1) * estimate:+.1f} {unit})"


def findings(s: Summary, judged: Judged | None = None) -> str:
    """The paper's three findings next to what this run measured. A *drop* is start minus end
    accuracy in absolute percentage points (negative: it rose). Each verdict is findings.csv's
    (``judged``; protocol/verdicts.py: paired bootstrap over the shared people or items, Holm
    over the run's comparisons)."""
    pairs = [(m, u) for m in sorted({u[1] for u in s.units()}) for u in dict.fromkeys(u[2] for u in s.units())]
    out = _knowledge(s, judged, pairs) + _sequential(s, judged, pairs) + _modalities(s, judged)
    out.append(DECISION_RULE)
    if judged:
        open_ = sum(1 for r in judged.values() if r["verdict"] == "inconclusive")
        out.append(f"   {open_} of {len(judged)} comparisons of the run are inconclusive (findings.csv: at the budget "
                   "and at matched forgetting).")
    return "\n".join(out)


def _knowledge(s: Summary, judged: Judged | None, pairs) -> list[str]:
    out = []
    out.append("1. Pre-trained vs fine-tuned knowledge (paper: unlearning fine-tuned knowledge costs up to ~10% "
               "of MMBench; pre-trained knowledge costs > 90% and also hurts retain).")
    ft_name, pt_name = with_knowledge("fine-tuned"), with_knowledge("pre-trained")
    for m, u in pairs:
        ft, pt = (ft_name, m, u), (pt_name, m, u)
        if ft in s.last_step and pt in s.last_step:
            g_ft, g_pt = _drop(s, ft, "general", "all"), _drop(s, pt, "general", "all")
            r_ft, r_pt = _drop(s, ft, "retain", "all"), _drop(s, pt, "retain", "all")
            verdict = said(judged, 1, m, u, f"{pt_name} vs {ft_name}",
                           None if g_pt is None or g_ft is None else g_pt - g_ft)
            out.append(f"   {_unit_label(m, u):<8} general drop: finetuned {_pts(g_ft)}, pretrained {_pts(g_pt)}; "
                       f"retain drop: finetuned {_pts(r_ft)}, pretrained {_pts(r_pt)}  -> {verdict}")
    return out


def _sequential(s: Summary, judged: Judged | None, pairs) -> list[str]:
    out = []
    out.append("2. Sequential unlearning (paper: after 5 operations generality is almost entirely lost, even for "
               "methods that do well in one shot).")
    sequential = [n for n in dict.fromkeys(u[0] for u in s.units()) if is_sequential(n)]
    for m, u, name in ((m, u, name) for m, u in pairs for name in sequential):
        seq, one = (name, m, u), (one_shot_of(name), m, u)
        if seq in s.last_step and one in s.last_step:
            parts = []
            for split in ("retain", "general"):
                parts.append(f"{split} {_pct(s.get(one, s.last_step[one], split, 'all')).strip()}% one-shot vs "
                             f"{_pct(s.get(seq, s.last_step[seq], split, 'all')).strip()}% after "
                             f"{s.last_step[seq]} ops")
            g_one = s.get(one, s.last_step[one], "general", "all")
            g_seq = s.get(seq, s.last_step[seq], "general", "all")
            verdict = said(judged, 2, m, u, f"{one[0]} vs {name}",
                           None if g_one is None or g_seq is None else g_one - g_seq)
            out.append(f"   {_unit_label(m, u):<8} " + "; ".join(parts) + f"  -> {verdict}")
    return out


def _modalities(s: Summary, judged: Judged | None) -> list[str]:
    out = []
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
        kept_mm, kept_txt = float(kept(*mm)), float(kept(*txt))
        verdict = said(judged, 3, unit[1], unit[2], unit[0], kept_txt - kept_mm)
        out.append(f"   {'/'.join(unit):<30} forget: multimodal {_pct(mm[0]).strip()}% -> {_pct(mm[1]).strip()}% "
                   f"(keeps {kept_mm:.0%}), text-only {_pct(txt[0]).strip()}% -> {_pct(txt[1]).strip()}% "
                   f"(keeps {kept_txt:.0%})  -> {verdict}")
    return out


DECISION_RULE = ("   (A verdict: the paired bootstrap interval of the difference, people or benchmark items resampled "
                 "together, at its level after Holm's correction over the run's comparisons; \"reproduced\" or \"the "
                 "opposite\" only when it excludes 0, otherwise \"inconclusive\".)")


def _unit_label(method: str, update: str) -> str:
    return method if update == "llm" else f"{method} ({update})"


def _pts(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} pts"
