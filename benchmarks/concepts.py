"""People and events in one image (issue 16, PEBench): the concepts scenarios on the embedded world
with 12 events, every kind of request, a few methods, under the demo's stopping rule.

Prints what the fine-tuned model knows at the start (forget, scope and retain of each kind, both
modalities), the report's cross-concept interference table (the drop of forget, scope and retain,
multimodal; interference = drop(scope) - drop(retain), points) and its findings, beside PEBench's
figures. ``--preset tiny`` is a smoke test of the script (4 events, one epoch), not a result.

    python benchmarks/concepts.py [--preset default|tiny] [--world-seed 0] [--methods ga grad_diff ...]
                                  [--balance none|concepts] [--cache DIR] [--out DIR]

The joint case with the balanced variant against plain GD and GA+KL on the same data: run it
twice, ``--methods grad_diff ga_klr`` with and without ``--balance concepts``; the control at a
fixed step count is ``pulse run benchmarks/results/concepts-seed0-plain-2epochs.yaml``
(``python -c "import concepts; concepts.joint_table(Path(RUN))"`` prints its table).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from pulse_runs import pulse_run

METHODS = ["ga", "grad_diff", "ga_klr", "npo", "simnpo"]


def config(preset: str, seed: int, methods: list[str], balance: str = "none") -> dict:
    if preset == "tiny":
        splits = {"finetune_people": 10, "concept_people": 3, "concept_events": 1}
        unlearn = {"lr": 3e-3, "batch_size": 8, "lora": {"rank": 8, "alpha": 16}, "epochs": 1}
        events = 4
    else:
        splits = {"finetune_people": 100, "concept_people": 10, "concept_events": 2}
        unlearn = {"lr": 1.5e-3, "batch_size": 16, "lora": {"rank": 16, "alpha": 32}, "stop": "target",
                   "max_epochs": 5, "eval_every": 0.34,
                   "target": {"sees": "training", "rule": "kept", "kept": 0.2, "modality": "both"}}
        events = 12
    unlearn["balance"] = balance
    return {"name": f"concepts-seed{seed}" + ("-balanced" if balance != "none" else ""), "seed": seed,
            "model": {"source": "world", "preset": preset, "world_seed": seed, "events": events},
            "splits": splits, "grid": [{"scenarios": ["concepts"], "methods": methods, "updates": ["llm"]}],
            "unlearn": unlearn, "scoring": "likelihood"}


def start_table(run: Path) -> None:
    """Step 0 (the fine-tuned model) on each kind's splits, both modalities."""
    with open(run / "summary.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["step"] == "0" and r["request"] == "all"]
    print("\nthe fine-tuned model at the start (accuracy; n):")
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        first = next(r["method"] for r in rows if r["scenario"] == scenario)
        cells = [f"{r['split']} {r['modality'][:4]} {float(r['accuracy']):.2f} ({r['n']})" for r in rows
                 if r["scenario"] == scenario and r["method"] == first and r["modality"] != "all"]
        print(f"  {scenario:<16} " + "  ".join(cells))


def joint_table(run: Path) -> None:
    """The joint request (concepts-both) after its operation, multimodal unless said: retain,
    general, the forgotten events, the forgotten people by name and in their images."""
    import pandas as pd

    preds = pd.read_csv(run / "predictions.csv", dtype={"subject": str}, keep_default_na=False)
    ops = pd.read_csv(run / "operations.csv")
    both = preds[preds.scenario == "concepts-both"]
    if both.empty:
        return
    print(f"\n{run.name}, the joint request (accuracy):")
    print("| method | steps | stop | retain mm | general mm | events forgotten mm | people forgotten text | people "
          "forgotten mm |")
    print("|---|---|---|---|---|---|---|---|")
    for method in dict.fromkeys(both.method):
        rows = both[both.method == method]
        last = rows[rows.step == rows.step.max()]
        forget = last[last.split == "forget"]
        op = ops[(ops.scenario == "concepts-both") & (ops.method == method)].iloc[0]
        cells = [last[(last.split == split) & (last.modality == "multimodal")] for split in ("retain", "general")]
        cells += [forget[(forget.population == "event") & (forget.modality == "multimodal")],
                  forget[(forget.population == "person") & (forget.modality == "text")],
                  forget[(forget.population == "person") & (forget.modality == "multimodal")]]
        print(f"| {method} | {op.steps} | {op.reason} | " + " | ".join(f"{c.correct.mean():.3f}" for c in cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default", choices=["default", "tiny"])
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--balance", default="none", choices=["none", "concepts"],
                    help="unlearn.balance (concepts: people's and events' facts in equal shares of each forget "
                         "batch; changes only the joint request)")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark-concepts"))
    args = ap.parse_args()
    run, seconds = pulse_run(config(args.preset, args.world_seed, args.methods, args.balance), args.out, args.cache)
    print(f"world seed {args.world_seed}, preset {args.preset}: {', '.join(args.methods)} in {seconds:.0f} s")
    start_table(run)

    from pulse_unlearn.report.build import findings_text
    from pulse_unlearn.report.findings import Summary
    from pulse_unlearn.report.interference import interference_table
    from pulse_unlearn.report.runs import read_run
    from pulse_unlearn.report.tables import to_markdown

    table = interference_table(Summary(read_run(run).rows))
    print("\n" + to_markdown([table]) if table else "\nno concepts units")
    print(findings_text(run))
    joint_table(run)


if __name__ == "__main__":
    main()
