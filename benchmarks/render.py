"""The READMEs' findings tables, generated from ``benchmarks/findings.py``'s output files.

    python benchmarks/render.py          # rewrite the generated blocks in README.md and benchmarks/README.md
    python benchmarks/render.py --check  # exit 1 if either block differs from what the files give

Each block sits between ``<!-- findings:begin -->`` and ``<!-- findings:end -->`` in its file; the
text around it is written by hand, the block never is. The figures come from
``results/findings-pooled.csv`` (the pooled verdicts), ``results/findings-meta.json`` (machine,
seeds, commit, minutes) and, where it exists, ``results/findings-sensitivity.csv`` (benchmarks/README
only: the matched comparisons at each ``kept`` level). benchmarks/README's block between
``<!-- selectivity:begin -->`` and ``<!-- selectivity:end -->`` comes from
``results/world-selectivity.csv`` (``world_quality.py --selectivity``: what each lever did), and the
block between ``<!-- oracle:begin -->`` and ``<!-- oracle:end -->`` from ``results/oracle.csv`` and
``results/oracle-meta.json`` (``oracle.py``: the retrain oracle beside the start and the methods).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- findings:begin -->", "<!-- findings:end -->"
SELECTIVITY, SELECTIVITY_MARKS = "world-selectivity.csv", ("<!-- selectivity:begin -->", "<!-- selectivity:end -->")
ORACLE, ORACLE_MARKS = "oracle.csv", ("<!-- oracle:begin -->", "<!-- oracle:end -->")
QUALITY, QUALITY_MARKS = "world-quality.csv", ("<!-- quality:begin -->", "<!-- quality:end -->")
ORACLE_CELLS = (("forget", "multimodal"), ("forget", "text"), ("pending", "multimodal"), ("pending", "text"),
                ("retain", "multimodal"), ("retain", "text"), ("general", "all"))
FINDINGS = {"1": "pre-trained vs fine-tuned knowledge", "2": "sequential vs one-shot",
            "3": "text-only vs multimodal forgetting"}


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load(results: Path) -> tuple[list[dict], dict, list[dict]]:
    missing = [n for n in ("findings-pooled.csv", "findings-meta.json") if not (results / n).is_file()]
    if missing:
        print(f"render: {results} lacks {', '.join(missing)} (run python benchmarks/findings.py)", file=sys.stderr)
        sys.exit(2)
    sensitivity = results / "findings-sensitivity.csv"
    return (_csv(results / "findings-pooled.csv"), json.loads((results / "findings-meta.json").read_text()),
            _csv(sensitivity) if sensitivity.is_file() else [])


def _scaled(row: dict, column: str) -> str:
    value = float(row[column]) * (1 if "examples" in row["comparison"] else 100)
    digits = 0 if "examples" in row["comparison"] else 1
    return f"{round(value, digits) + 0.0:+.{digits}f}"  # + 0.0: no "-0.0" for a value that rounds to zero


def _unit(row: dict) -> str:
    return "examples" if "examples" in row["comparison"] else "pts"


def provenance(meta: dict) -> str:
    m = meta["machine"]
    runs = len(meta["world_seeds"]) * len(meta["run_seeds"])
    return (f"`benchmarks/findings.py`, {meta['date']}, commit {m['commit']}: the demo config (`pulse demo`'s) on "
            f"world seeds {', '.join(map(str, meta['world_seeds']))} x run seeds "
            f"{', '.join(map(str, meta['run_seeds']))} ({runs} runs, {meta['total_minutes']:.0f} min) on "
            f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, transformers {m['transformers']}.")


def table(rows: list[dict]) -> list[str]:
    out = ["| finding | at | compares | method | forgotten on | estimate | Holm-level interval | verdict | "
           "per-run verdicts agreeing |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        method = r["method"] if r["update"] == "llm" else f"{r['method']} ({r['update']})"
        level = 100 * float(r["level"])
        out.append(f"| {r['finding']} | {r['at']} | {r['comparison']} | {method} | {r['target_modality'] or '-'} | "
                   f"{_scaled(r, 'estimate')} {_unit(r)} | [{_scaled(r, 'ci_low')}, {_scaled(r, 'ci_high')}] "
                   f"({level:.1f}%) | {r['verdict']} | {r['agree']} ({r['per_run']}) |")
    return out


def counts(rows: list[dict]) -> str:
    c = Counter(r["verdict"] for r in rows)
    return ", ".join(f"{c[v]} {v}" for v in ("reproduced", "the opposite", "inconclusive"))


def agreement(rows: list[dict]) -> str:
    agreed, total = (sum(int(r["agree"].split("/")[i]) for r in rows) for i in (0, 1))
    return f"{agreed} of {total} per-run verdicts agree with the pooled verdict of their comparison."


def sensitivity_table(rows: list[dict]) -> list[str]:
    """One row per matched comparison, one column per ``kept`` level: verdict, estimate, interval."""
    levels = sorted({r["kept"] for r in rows}, key=float)
    key = ("finding", "scenarios", "method", "update", "target_modality", "comparison")
    by: dict[tuple, dict] = {}
    for r in rows:
        by.setdefault(tuple(r[k] for k in key), {})[r["kept"]] = r
    out = ["| finding | compares | method | forgotten on | " + " | ".join(f"kept {k}" for k in levels) + " |",
           "|---|---|---|---|" + "---|" * len(levels)]
    for (finding, scenarios, method, update, tm, _), cells in by.items():
        said = [f"{c['verdict']} {_scaled(c, 'estimate')} [{_scaled(c, 'ci_low')}, {_scaled(c, 'ci_high')}]"
                if (c := cells.get(k)) else "-" for k in levels]
        label = method if update == "llm" else f"{method} ({update})"
        out.append(f"| {finding} | {scenarios} | {label} | {tm or '-'} | " + " | ".join(said) + " |")
    return out


def benchmarks_block(rows: list[dict], meta: dict, sensitivity: list[dict] = ()) -> str:
    lines = [provenance(meta), "",
             f"Pooled (worlds resampled, then people; Holm over the {len(rows)} pooled comparisons): {counts(rows)}. "
             f"{agreement(rows)}", "",
             "Estimates in points of accuracy (finding 3 at the budget: of the share of above-chance knowledge "
             "kept) or in forget examples; \"reproduced\": the interval lies on the paper's side of 0.", "",
             *table(rows)]
    if sensitivity:
        lines += ["", "At matched forgetting, again at each `kept` level of the target (pooled the same way, Holm "
                  f"over the budget's and that level's comparisons): {counts(sensitivity)}. Estimates in points "
                  "(finding 3: forget examples).", "", *sensitivity_table(sensitivity)]
    if meta.get("pooled_again"):
        again = meta["pooled_again"]
        lines += ["", f"(The same runs pooled again on {again['date']} at commit {again['commit']}.)"]
    return "\n".join(lines)


def readme_block(rows: list[dict], meta: dict) -> str:
    lines = [f"The demo's verdicts over {len(meta['world_seeds'])} worlds x {len(meta['run_seeds'])} run seeds "
             f"(pooled two-level bootstrap, Holm over {len(rows)} comparisons; {provenance(meta)[:-1]}):"
             f" {counts(rows)}."]
    for finding, name in FINDINGS.items():
        mine = [r for r in rows if r["finding"] == finding]
        if not mine:
            continue
        decided = [r for r in mine if r["verdict"] != "inconclusive"]
        said = "; ".join(f"{r['verdict']} for {r['method']}" + (f" on {r['target_modality']}" if r["target_modality"]
                                                                  else "")
                         + f" at {r['at']} ({_scaled(r, 'estimate')} {_unit(r)} [{_scaled(r, 'ci_low')}, "
                           f"{_scaled(r, 'ci_high')}])" for r in decided)
        lines.append(f"- Finding {finding}, {name}: {counts(mine)}" + (f"; {said}." if said else "."))
    lines.append("Every comparison with its interval and the per-run agreement: `benchmarks/README.md`.")
    return "\n".join(lines)


def selectivity_block(rows: list[dict]) -> str:
    """One row per lever set, world seed and method: the pending people's kept share after
    operation 1 (multimodal, text) with its interval, request 1 then, each operation's steps."""
    by: dict[tuple, dict] = {}
    for r in rows:
        by.setdefault((r["levers"], r["world_seed"], r["method"]), {})[r["modality"]] = r
    out = ["| levers | world seed | method | pending kept after op 1, multimodal | text | request 1 after op 1 "
           "(mm / text) | steps of ops 1-5 | selective |", "|---|---|---|---|---|---|---|---|"]
    for (levers, seed, method), cells in by.items():
        mm, text = cells["multimodal"], cells["text"]
        kept = [f"{float(c['pending_kept']):.2f} [{float(c['kept_ci_low']):.2f}, {float(c['kept_ci_high']):.2f}]"
                for c in (mm, text)]
        selective = "yes" if mm["selective"] == "True" and text["selective"] == "True" else "no"
        request1 = [f"{float(c['request1_after_op1']):.2f} [{float(c['request1_ci_low']):.2f}, "
                    f"{float(c['request1_ci_high']):.2f}]" for c in (mm, text)]
        out.append(f"| {levers} | {seed} | {method} | {kept[0]} | {kept[1]} | {request1[0]} / {request1[1]} | "
                   f"{mm['steps']} | {selective} |")
    return "\n".join(out)


def oracle_block(rows: list[dict], meta: dict) -> str:
    """One row per world seed, scenario, operation and model: accuracy (%) with its interval on
    the operation's request (forget), the later requests (pending), retain and general."""
    m = meta["machine"]
    minutes = f", {meta['minutes']} min" if meta.get("minutes") else ""
    by: dict[tuple, dict] = {}
    for r in rows:
        by.setdefault((r["world_seed"], r["scenario"], r["operation"], r["model"]), {})[(r["split"], r["modality"])] = r
    out = [f"`benchmarks/oracle.py`, {meta['date']}, commit {m['commit']}: the demo config with "
           f"`{' '.join(meta['overrides'])}`, world seed(s) {', '.join(map(str, meta['world_seeds']))}, run seed "
           f"{meta['run_seed']}; {m['cpu']}, {m['cores']} cores{minutes}.", "",
           "| world seed | scenario | op | model | forget mm | forget text | pending mm | pending text | retain mm | "
           "retain text | general |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (seed, scenario, op, model), cells in by.items():
        shown = [f"{100 * float(c['accuracy']):.0f} [{100 * float(c['ci_low']):.0f}, {100 * float(c['ci_high']):.0f}]"
                 if (c := cells.get(key)) else "-" for key in ORACLE_CELLS]
        name = {"start": "starting model", "retrain": "retrain oracle"}.get(model, model)
        out.append(f"| {seed} | {scenario} | {op} | {name} | " + " | ".join(shown) + " |")
    return "\n".join(out)


def quality_block(rows: list[dict], meta: dict) -> str:
    """One row per lever set, world seed, model and group: accuracy (%) per modality with its
    interval, or the reworded-minus-original difference (points) with its paired interval."""
    by: dict[tuple, dict] = {}
    for r in rows:
        by.setdefault((r["levers"], r["world_seed"], r["model"], r["group"], r["statistic"]), {})[r["modality"]] = r
    runs = sorted({(k, v["date"], v["machine"]["commit"], v["machine"]["cpu"], v["machine"]["cores"])
                   for k, v in meta.items()})
    out = ["`benchmarks/world_quality.py --quality-out`; likelihood scoring, 95% intervals with people resampled "
           "(a benchmark's items; a difference: paired by person). Runs: "
           + "; ".join(f"{k} ({d}, commit {c}, {cpu}, {n} cores)" for k, d, c, cpu, n in runs) + ".", "",
           "| levers | world seed | model | group | statistic | multimodal | text | all |",
           "|---|---|---|---|---|---|---|---|"]
    for (levers, seed, model, group, statistic), cells in by.items():
        sign = "+" if statistic != "accuracy" else ""
        shown = [f"{100 * float(c['value']):{sign}.1f} [{100 * float(c['ci_low']):{sign}.1f}, "
                 f"{100 * float(c['ci_high']):{sign}.1f}]" if (c := cells.get(m)) else "-"
                 for m in ("multimodal", "text", "all")]
        out.append(f"| {levers} | {seed} | {model} | {group} | {statistic} | " + " | ".join(shown) + " |")
    return "\n".join(out)


def spliced(text: str, block: str, name: str, begin: str = BEGIN, end: str = END) -> str:
    if text.count(begin) != 1 or text.count(end) != 1:
        print(f"render: {name} needs exactly one {begin} ... {end} pair", file=sys.stderr)
        sys.exit(2)
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 where a block is stale")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--root", type=Path, default=HERE.parent, help="the repository (README.md, benchmarks/)")
    args = ap.parse_args()
    rows, meta, sensitivity = load(args.results)
    bench = args.root / "benchmarks" / "README.md"
    blocks = [(args.root / "README.md", readme_block(rows, meta), BEGIN, END),
              (bench, benchmarks_block(rows, meta, sensitivity), BEGIN, END)]
    if (args.results / SELECTIVITY).is_file():
        blocks.append((bench, selectivity_block(_csv(args.results / SELECTIVITY)), *SELECTIVITY_MARKS))
    if (args.results / ORACLE).is_file():
        meta = json.loads((args.results / "oracle-meta.json").read_text())
        blocks.append((bench, oracle_block(_csv(args.results / ORACLE), meta), *ORACLE_MARKS))
    if (args.results / QUALITY).is_file():
        meta = json.loads((args.results / "world-quality-meta.json").read_text())
        blocks.append((bench, quality_block(_csv(args.results / QUALITY), meta), *QUALITY_MARKS))
    stale = []
    for path, block, begin, end in blocks:
        text = path.read_text(encoding="utf-8")
        new = spliced(text, block, path.name, begin, end)
        if new != text:
            stale += [] if path in stale else [path]
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"stale: {', '.join(map(str, stale))} (run python benchmarks/render.py)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
