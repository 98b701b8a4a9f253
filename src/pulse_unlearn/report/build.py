"""``pulse report`` and ``pulse compare``: write tables, plots and the HTML report to a folder.

Every file is written under a temporary name and renamed (``runs/atomic.py``), like the run's
own files, so a report folder never holds a half-written file; text is UTF-8 whatever the
locale (the tables hold ± and the HTML declares utf-8).
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import pandas as pd

from ..errors import PulseError
from ..runs.atomic import atomic_write
from . import plots as P
from .attacks import attack_tables, pool_attacks, recovery_plot, residual_findings
from .suffix_search import blackbox_findings, length_plot, queries_plot, search_table
from .findings import Summary, judged_of, stopping_note
from .html import page
from .interference import interference_findings, interference_table
from .matched import combined, matched_tables, pool_matched
from .matched_findings import both_findings
from .pooled_findings import agreement_line, pooled_verdicts
from .runs import RunFiles, read_run, pool, variants
from .sensitivity import sensitivity_table
from .tables import category_tables, open_task_tables, scenario_tables, stopping_table, to_latex, to_markdown


def _divergence_md(runs: list[RunFiles]) -> str:
    bad = [(r, op, what) for r in runs for op, what in r.troubled()]
    if not bad:
        return ""
    lines = ["## Divergence", "", "Unlearning operations whose loss went NaN/inf or whose model's answers collapsed "
             "onto one letter (their results are still in the tables above):", ""]
    for r, op, what in bad:
        lines.append(f"- {r.name}: {op.get('scenario')} / {op.get('method')} / {op.get('update')}, operation "
                     f"{op.get('operation')}: {what}")
    return "\n".join(lines) + "\n"


def _judged(runs: list[RunFiles]):
    """One run's verdicts (its findings.csv)."""
    if len(runs) == 1 and runs[0].findings is not None:
        return judged_of(runs[0].findings.to_dict("records"))
    return None


def _kept(run: RunFiles) -> float | None:
    compare = ((run.config.get("trajectory") or {}).get("compare") or {})
    return float(compare["kept"]) if compare.get("rule") == "kept" and "kept" in compare else None


def _write(out: Path, title: str, subtitle: str, s: Summary, runs: list[RunFiles], runs_table: str = "",
           runs_md: str = "", judged=None, sensitivity=None) -> Path:
    """``sensitivity``: the pooled sensitivity.csv's rows of several runs (one run: its own file)."""
    out.mkdir(parents=True, exist_ok=True)
    matched = pool_matched(runs)
    attacks = pool_attacks(combined(runs, "attacks"))
    stopping = stopping_table([(r.name, op) for r in runs for op in r.operations])
    interference, suffixes = interference_table(s), search_table(s, runs)
    kept = {_kept(r) for r in runs}
    frame = runs[0].sensitivity if len(runs) == 1 else None if sensitivity is None else pd.DataFrame(sensitivity)
    sensitivity = sensitivity_table(frame, kept.pop() if len(kept) == 1 else None)
    tables = (scenario_tables(s) + [t for t in (interference, suffixes) if t] + open_task_tables(s) + category_tables(s)
              + (matched_tables(matched, s.stop) if matched else []) + ([sensitivity] if sensitivity else [])
              + ([stopping] if stopping else []) + attack_tables(attacks))
    rule = stopping_note(s)
    atomic_write(out / "tables.md", f"# {title}\n\n{subtitle}\n\n" + (f"{rule}\n\n" if rule else "") + runs_md
                 + to_markdown(tables) + _divergence_md(runs))
    atomic_write(out / "tables.tex", to_latex(tables))
    figures = P.all_plots(s, combined(runs, "trajectory"), combined(runs, "matched"))
    recovered = recovery_plot(attacks)
    if recovered is not None:
        figures.append(P.Plot("recovery", "Recovery attacks", "Recovery of the forget split's accuracy under each "
                              "attack after each unit's last attacked operation (dashed: hidden at or above, dotted: "
                              "removed at or below).", recovered))
    curve = queries_plot(runs)
    if curve is not None:
        figures.append(P.Plot("queries", "Queries to target", "Black-box units: the best objective so far against "
                              "the questions asked, each operation's search.", curve))
    lengths = length_plot(runs)
    if lengths is not None:
        figures.append(P.Plot("suffix_lengths", "Suffix length", "Black-box units: forget (solid) and retain "
                              "(dashed) accuracy after the last operation, the suffix on every prompt, against the "
                              "suffix length each run declares; the mean over runs at a length.", lengths))
    embedded = []
    try:
        for p in figures:
            png = io.BytesIO()
            p.figure.savefig(png, format="png", dpi=110, metadata={"Software": None})
            p.figure.set_layout_engine("none")  # laid out once already: the SVG keeps that layout, faster
            svg = io.BytesIO()
            p.figure.savefig(svg, format="svg", metadata={"Date": None})
            atomic_write(out / f"{p.name}.png", png.getvalue())
            atomic_write(out / f"{p.name}.svg", svg.getvalue())
            embedded.append((p.title, p.caption, png.getvalue()))
    finally:
        P.close(figures)
    report = out / "report.html"
    judged = judged if judged is not None else _judged(runs)
    findings_block = _joined(both_findings(s, matched, judged), interference_findings(s),
                             residual_findings(attacks), blackbox_findings(runs))
    atomic_write(report, page(title, subtitle, tables, embedded, findings_block,
                              runs, runs_table, rule))
    return report


def findings_text(run_dir: Path) -> str:
    """The paper's findings for a run folder as the report states them: at the run's budget and,
    where the run has ``matched.csv``, at matched forgetting (for ``pulse demo`` to print)."""
    run = read_run(Path(run_dir))
    s = Summary(run.rows)
    return _joined(both_findings(s, pool_matched([run]), _judged([run])), interference_findings(s),
                   residual_findings(pool_attacks(combined([run], "attacks"))), blackbox_findings([run]))


def _joined(*blocks: str) -> str:
    return "\n".join(b.rstrip("\n") for b in blocks if b)


def _scoring(rows: list[dict]) -> str:
    return ", ".join(sorted({r.get("scoring") or "?" for r in rows}))


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """The report of one run folder, in ``out`` (default ``RUN_DIR/report``); returns report.html."""
    run = read_run(Path(run_dir))
    out = Path(out) if out else run.folder / "report"
    subtitle = (f"Run {run.folder}, {_scoring(run.rows)} scoring. Accuracy in %; changes in points from the "
                "starting model (step 0).")
    return _write(out, f"PULSE report: {run.name}", subtitle, Summary(run.rows), [run])


def build_compare(run_dirs: list[Path], out: Path, log=lambda line: None) -> Path:
    """Several runs side by side: units of the same variant in several runs (seeds) are averaged,
    shown as mean ± sample standard deviation; the verdicts pooled over the runs (``log`` gets
    how far the runs' own verdicts agree)."""
    seen, runs = set(), []
    for d in run_dirs:
        key = Path(d).resolve()
        if key not in seen:
            seen.add(key)
            runs.append(read_run(Path(d)))
    if not runs:
        raise PulseError("compare: give at least one run folder")
    labels = variants(runs)
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # same config name: tell them apart by folder
        names = [str(r.folder) for r in runs]
    head = "<tr><th>run</th><th>folder</th><th>seed</th><th>world seed</th><th>variant</th><th>units</th></tr>"
    body, md = [], ["Runs:", ""]
    for r, name, label in zip(runs, names, labels):
        units = len({(x["scenario"], x["method"], x["update"]) for x in r.rows})
        world = (r.config.get("model") or {}).get("world_seed", "?")
        cells = (name, r.folder, r.seed if r.seed is not None else "?", world, label or "-", units)
        body.append("<tr>" + "".join(f"<td class='label'>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        where = "" if name == str(r.folder) else f" ({r.folder})"
        md.append(f"- {name}{where}: seed {cells[2]}, world seed {world}, {units} unit(s)"
                  + (f", {label}" if label else ""))
    subtitle = (f"{len(runs)} runs, {_scoring([x for r in runs for x in r.rows])} scoring. Accuracy in %: mean ± "
                "sample standard deviation where a unit was run several times (seeds); changes in points from the "
                "starting model.")
    pooled, sensitivity = pooled_verdicts(runs, Path(out))
    if pooled is not None:
        agreement = agreement_line(pooled)
        subtitle += (" Verdicts: each comparison pooled over the runs (worlds resampled, then people; "
                     f"findings.csv). {agreement}")
        md.append(agreement + "\n")
        log(agreement)
    return _write(Path(out), "PULSE comparison", subtitle, Summary(pool(runs)), runs,
                  runs_table=f"<table>{head}{''.join(body)}</table>", runs_md="\n".join(md) + "\n\n",
                  judged=judged_of(pooled) if pooled is not None else None,
                  sensitivity=sensitivity)
