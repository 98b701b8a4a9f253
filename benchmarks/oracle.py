"""The retrain oracle on the demo (issue #31, item 8): what forgetting that leaves everything else
alone looks like, next to the starting model and to GA+KL and NPO.

Runs the demo config with ``oracle: retrain`` (the one-shot and sequential scenarios and the
pretrained one, LoRA on the LLM, GA+KL and NPO) on each world seed named, or reads finished runs
(``--of``), and writes ``results/oracle.csv``: per world seed, scenario, operation and model (the
starting model, the oracle, each method), the accuracy of forget (the operation's own request),
pending (the sequence's later requests), retain and general, per modality, with the person-bootstrap
interval of summary.csv; ``results/oracle-meta.json`` says when, where and how long. render.py turns
them into benchmarks/README's "Retrain oracle" table.

    python benchmarks/oracle.py --world-seeds 0 [--cache DIR]
    python benchmarks/oracle.py --of RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import tempfile
import time
from pathlib import Path

from findings import machine

HERE = Path(__file__).resolve().parent
METHODS = ("ga_klr", "npo")
OVERRIDES = ["oracle=retrain", "scenario=[sequential,pretrained]", f"method=[{','.join(METHODS)}]", "update=[llm]"]
COLUMNS = ("world_seed", "scenario", "operation", "model", "split", "modality", "n", "accuracy", "ci_low", "ci_high")
SPLITS = ("forget", "pending", "retain", "general")


def rows_of(run) -> list[dict]:
    """summary.csv's figures for the table: each scenario's start (operation 0) and, after each
    operation, the oracle and the methods; forget on the operation's own request."""
    s = run.summary
    seed = run.config["model"]["world_seed"]
    out = []
    for scenario in dict.fromkeys(s.scenario):
        cell = s[s.scenario == scenario]
        sequential = (cell.request == "pending").any()
        last = int(cell[cell.method == "retrain"].step.max())
        for op in range(last + 1):
            models = ["start"] if op == 0 else ["retrain", *[m for m in METHODS if m in set(cell.method)]]
            for model in models:
                at = cell[(cell.method == ("retrain" if model == "start" else model)) & (cell.step == op)]
                for split in SPLITS:
                    if split == "pending" and not (sequential and op < last):
                        continue
                    request = {"forget": str(max(op, 1)) if sequential else "all", "pending": "pending"}.get(
                        split, "all")
                    name = "forget" if split == "pending" else split
                    for modality in (("all",) if split == "general" else ("multimodal", "text")):
                        r = at[(at.split == name) & (at.request == request) & (at.modality == modality)]
                        if len(r) == 1:
                            r = r.iloc[0]
                            out.append({"world_seed": seed, "scenario": scenario, "operation": op, "model": model,
                                        "split": split, "modality": modality, "n": int(r.n),
                                        "accuracy": round(float(r.accuracy), 4), "ci_low": round(float(r.ci_low), 4),
                                        "ci_high": round(float(r.ci_high), 4)})
    return out


def main() -> None:
    import pulse_unlearn
    from pulse_unlearn.pipeline import cache_folder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world-seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--of", nargs="+", type=Path, default=None, metavar="RUN", help="read finished runs instead")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    args = ap.parse_args()
    t0, rows = time.time(), []
    if args.of:
        runs = [pulse_unlearn.load_run(folder) for folder in args.of]
    else:
        root, runs = Path(tempfile.mkdtemp(prefix="pulse-oracle-")), []
        for seed in args.world_seeds:
            runs.append(pulse_unlearn.run("demo", [*OVERRIDES, f"model.world_seed={seed}"], out=root / f"world{seed}",
                                          cache=cache_folder(args.cache), log=print))
    for run in runs:
        rows += rows_of(run)
    args.results.mkdir(parents=True, exist_ok=True)
    with open(args.results / "oracle.csv", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    meta = {"date": datetime.date.today().isoformat(), "machine": machine(), "overrides": OVERRIDES,
            "world_seeds": sorted({r["world_seed"] for r in rows}), "run_seed": runs[0].config["seed"],
            "minutes": None if args.of else round((time.time() - t0) / 60, 1)}
    (args.results / "oracle-meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    for r in rows:
        print(f"{r['world_seed']} {r['scenario']:<11} op {r['operation']} {r['model']:<8} {r['split']:<8} "
              f"{r['modality']:<10} {r['accuracy']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]")


if __name__ == "__main__":
    main()
