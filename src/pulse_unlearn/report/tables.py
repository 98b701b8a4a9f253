"""The paper's tables from summary rows: per scenario, one row per method x update strategy.

Tables are built once as cells holding numbers and rendered to Markdown, LaTeX and HTML, so
the three files cannot disagree. Accuracies are percentages; the change from the starting
model is in percentage points.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from ..evaluation.metrics import METRICS
from ..evaluation.splits import SPLITS
from .findings import Summary
from ..protocol.scenarios.declared import is_sequential

# (split, modality, column title); ``forget_test`` (the forget people's multimodal questions with a
# Test_Set image) and ``scope`` only where the run has them
COLUMNS = (("forget", "multimodal", "forget mm"), ("forget", "text", "forget text"),
           ("forget_test", "multimodal", "forget test mm"), ("scope", "multimodal", "scope mm"),
           ("retain", "multimodal", "retain mm"), ("retain", "text", "retain text"), ("general", "all", "general"))
OPTIONAL_SPLITS = ("forget_test", "scope")  # scope: the other concept of the forget images (concepts scenarios)
SEQ_COLUMNS = (("forget", "multimodal", "done", "forget done mm"), ("forget", "text", "done", "forget done text"),
               ("forget", "all", "pending", "forget pending"), ("retain", "multimodal", "all", "retain mm"),
               ("retain", "text", "all", "retain text"), ("general", "all", "all", "general"))


@dataclass
class Cell:
    value: float | None  # accuracy, 0..1
    std: float | None = None  # across runs, when several
    delta: float | None = None  # value minus the starting model's
    forget: bool = False  # a drop is the goal (the forget set's accuracy); elsewhere it is a cost
    interval: tuple[float, float] | None = None  # the value's bootstrap interval, people resampled together

    def text(self, pm: str = "±", minus: str = "-") -> str:
        if self.value is None:
            return "-"
        out = f"{100 * self.value:.1f}"
        if self.std is not None:
            out += f" {pm} {100 * self.std:.1f}"
        if self.interval is not None:
            out += f" [{100 * self.interval[0]:.1f}, {100 * self.interval[1]:.1f}]"
        if self.delta is not None:
            out += f" ({100 * self.delta:+.1f})".replace("-", minus)
        return out


@dataclass
class Table:
    title: str
    note: str
    header: list[str]
    rows: list[list] = field(default_factory=list)  # str or Cell


def _cell(s: Summary, unit, step, split, modality, request="all", with_delta=True, metric="accuracy") -> Cell:
    value = s.get(unit, step, split, modality, request, metric)
    spread = s.spread(unit, step, split, modality, request, metric)
    start = s.get(unit, 0, split, modality, request, metric)
    delta = value - start if with_delta and value is not None and start is not None and step else None
    # A drop is the goal on the forget splits, a cost elsewhere; the other way round for a metric
    # whose lower values are better.
    metric_spec = METRICS.get(metric)
    goal_is_drop = split.startswith("forget") == (metric_spec is None or metric_spec.higher_is_better)
    interval = s.interval(unit, step, split, modality, request) if metric == "accuracy" else None
    return Cell(value, None if spread is None or spread[1] < 2 else spread[0], delta, goal_is_drop, interval)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _runs(s: Summary, unit) -> str:
    n = {v[1] for k, v in s.std.items() if k[:3] == unit}
    return "/".join(str(x) for x in sorted(n)) or "1"


def scenario_tables(s: Summary) -> list[Table]:
    """One table per scenario (accuracy after the last operation, change from the start), and one
    per-operation table for the sequential scenario."""
    pooled = bool(s.std)
    tables = []
    scenarios = list(dict.fromkeys(u[0] for u in s.units()))
    for scenario in scenarios:
        units = [u for u in s.units() if u[0] == scenario]
        present = {k[5] for k in s.acc if k[0] == scenario}
        columns = [c for c in COLUMNS if c[0] not in OPTIONAL_SPLITS or c[0] in present]
        with_stop = any(u in s.stop for u in units)
        header = (["method", "update", "ops"] + (["runs"] if pooled else []) + (["stop"] if with_stop else [])
                  + [c[2] for c in columns])
        t = Table(f"{scenario}: after unlearning",
                  "Accuracy (%) after the last operation" + (", mean ± std over runs" if pooled else "")
                  + "; in square brackets its bootstrap interval (people resampled together), in round brackets "
                  "the change from the starting model (points). Lower is better on forget, "
                  "higher on retain and general." + (" stop: the rule that ended each operation." if with_stop else ""),
                  header)
        starts = {tuple(_round(s.get(u, 0, sp, m)) for sp, m, _ in columns) for u in units}  # means: float noise
        if len(starts) == 1:
            t.rows.append(["start model", "", "0"] + ([""] if pooled else []) + ([""] if with_stop else [])
                          + [_cell(s, units[0], 0, sp, m, with_delta=False) for sp, m, _ in columns])
        for u in units:
            end = s.last_step[u]
            t.rows.append([u[1], u[2], str(end)] + ([_runs(s, u)] if pooled else [])
                          + ([s.stop.get(u, "")] if with_stop else [])
                          + [_cell(s, u, end, sp, m) for sp, m, _ in columns])
        tables.append(t)
    for u in s.units():
        if not is_sequential(u[0]):
            continue
        t = Table(f"sequential: {u[1]} / {u[2]}, after each operation",
                  "Accuracy (%) after each operation on the forget requests done so far and those still pending, "
                  "on retain and general; in square brackets the bootstrap interval, in round brackets the change "
                  "from the starting model (points).",
                  ["op"] + [c[3] for c in SEQ_COLUMNS])
        for step in range(s.last_step[u] + 1):
            t.rows.append([str(step)] + [_seq_cell(s, u, step, sp, m, req) for sp, m, req, _ in SEQ_COLUMNS])
        tables.append(t)
    return tables


STOPPING = ("stop", "sees", "rule", "stopped_at", "reason")


def stopping_table(operations: list[tuple[str, dict]]) -> Table | None:
    """Where and why each operation stopped (``operations.csv``'s stopping columns), one row per
    (run name, operation); None for runs from before those columns."""
    rows = [(name, op) for name, op in operations if op.get("stop")]
    if not rows:
        return None
    several = len({name for name, _ in rows}) > 1
    t = Table("stopping: where each operation stopped",
              "The declared stopping rule of each unlearning operation, the step it stopped at and why. sees: what "
              "the rule looked at (training: the forget and retain people's training facts; oracle: the forget "
              "split's evaluation questions, which a real unlearner does not have).",
              (["run"] if several else []) + ["scenario", "method", "update", "op", *STOPPING])
    for name, op in rows:
        sees = op.get("sees") or ""
        cells = [op.get(c) or "" for c in STOPPING]
        cells[1] = "ORACLE (forget questions)" if sees == "oracle" else sees
        t.rows.append(([name] if several else []) + [op.get(c) or "" for c in ("scenario", "method", "update",
                                                                                "operation")] + cells)
    return t


def metric_columns(free_answers: bool) -> list[tuple[str, str, str]]:
    """(split, metric, column title) of the registered splits and metrics beyond the scenario
    table: for free-answer splits (cloze, generation; ``free_answers``) their metrics beyond the
    headline where they have any, else the headline (cloze hits); for multiple-choice splits the
    non-headline metrics registered for them (e.g. a plugin's)."""
    out = []
    for split in SPLITS.values():
        if (split.task != "choice") != free_answers:
            continue
        extra = [m for m in split.metrics if not m.headline]
        who = split.name.removesuffix(f"_{split.task}")
        if extra:
            out += [(split.name, m.name, f"{who} {m.name}") for m in extra]
        elif free_answers:
            out += [(split.name, m.name, split.name.replace("_", " ")) for m in split.metrics if m.headline]
    return out


TITLES = {True: ("cloze and generation (scoring=mllmu)",
                 "After the last operation, all questions: cloze hits (%) and the mean ROUGE-1/2/L F and BLEU "
                 "(x 100) of the generated answers; in brackets the change from the starting model (points)."),
          False: ("further metrics", "After the last operation, all questions: the registered metrics beyond "
                                     "accuracy (x 100); in brackets the change from the starting model.")}


def open_task_tables(s: Summary) -> list[Table]:
    """Per scenario, the metrics of the registered splits beyond the scenario table: under
    ``scoring=mllmu`` the cloze hit rate and the generation metrics (ROUGE-1/2/L F, BLEU), and
    any further metric registered for multiple-choice splits; after the last operation, with
    the change from the starting model."""
    tables = []
    for free in (True, False):
        title, note = TITLES[free]
        for scenario in dict.fromkeys(u[0] for u in s.units()):
            units = [u for u in s.units() if u[0] == scenario]
            columns = [c for c in metric_columns(free)
                       if any(s.get(u, 0, c[0], "all", metric=c[1]) is not None for u in units)]
            if not columns:
                continue
            t = Table(f"{scenario}: {title}", note, ["method", "update", "ops"] + [c[2] for c in columns])
            for u in units:
                end = s.last_step[u]
                t.rows.append([u[1], u[2], str(end)] + [_cell(s, u, end, sp, "all", metric=m) for sp, m, _ in columns])
            tables.append(t)
    return tables


def category_tables(s: Summary) -> list[Table]:
    """Per scenario, the general benchmark per category after the last operation (``summary.csv``'s
    per-category rows): whether unlearning costs the abilities that depend on the world's people
    and places more than the unrelated ones."""
    tables = []
    for scenario in dict.fromkeys(u[0] for u in s.units()):
        units = [u for u in s.units() if u[0] == scenario]
        for split in dict.fromkeys(k[4] for k in s.categories if k[0] == scenario):
            cats = list(dict.fromkeys(c for k, v in s.categories.items() if k[0] == scenario and k[4] == split
                                      for c in v))
            t = Table(f"{scenario}: {split} per category",
                      "Accuracy (%) per category of the benchmark, all modalities, at the start and after the last "
                      "operation; in square brackets the bootstrap interval (items resampled), in round brackets "
                      "the change from the starting model (points).", ["method", "update", "ops", *cats])
            first = units[0]
            t.rows.append(["start model", "", "0"] + [_category_cell(s, first, 0, split, c) for c in cats])
            for u in units:
                t.rows.append([u[1], u[2], str(s.last_step[u])]
                              + [_category_cell(s, u, s.last_step[u], split, c) for c in cats])
            tables.append(t)
    return tables


def _category_cell(s: Summary, unit, step, split, category) -> Cell:
    got = s.categories.get((*unit, step, split, "all"), {}).get(category)
    start = s.categories.get((*unit, 0, split, "all"), {}).get(category)
    if got is None:
        return Cell(None)
    delta = got[0] - start[0] if step and start is not None else None
    return Cell(got[0], None, delta, False, got[1])


def _seq_cell(s: Summary, unit, step, split, modality, request) -> Cell:
    """``done`` and ``pending`` hold other people after every operation: no change is shown for them."""
    return _cell(s, unit, step, split, modality, request, with_delta=request == "all")


def to_markdown(tables: list[Table]) -> str:
    out = []
    for t in tables:
        out += [f"## {t.title}", "", t.note, "", "| " + " | ".join(t.header) + " |",
                "|" + "|".join("---:" if isinstance(c, Cell) else "---" for c in t.rows[0]) + "|"]
        for row in t.rows:
            out.append("| " + " | ".join(c.text() if isinstance(c, Cell) else c for c in row) + " |")
        out.append("")
    return "\n".join(out)


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("[", "{[}"), ("]", "{]}")):
        text = text.replace(a, b)
    return text


def to_latex(tables: list[Table]) -> str:
    """One ``table`` environment per table; needs ``\\usepackage{booktabs}``."""
    out = ["% PULSE report tables; needs \\usepackage{booktabs}", ""]
    for t in tables:
        cols = "ll" + "r" * (len(t.header) - 2)
        out += [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
                " & ".join(_tex(h) for h in t.header) + r" \\", r"\midrule"]
        for row in t.rows:
            out.append(" & ".join(_tex(c.text(minus="$-$") if isinstance(c, Cell) else c) for c in row) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex(t.title)}. {_tex(t.note)}}}", r"\end{table}",
                ""]
    return "\n".join(out)


def to_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = []
    for row in t.rows:
        cells = []
        for c in row:
            if isinstance(c, Cell):
                cls = "" if not c.delta else (" class='good'" if (c.delta < 0) == c.forget else " class='bad'")
                cells.append(f"<td{cls}>{html.escape(c.text())}</td>")
            else:
                cells.append(f"<td class='label'>{html.escape(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<h3>{html.escape(t.title)}</h3><p class='note'>{html.escape(t.note)}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
