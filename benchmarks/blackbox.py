"""Strict black-box unlearning (issue 17): every suffix search at each suffix length, the same
question budget, on the default world's finetuned scenario (50 forget people, one request).

One ``pulse run`` per world seed and length, the four searches its units. Prints, per seed, a
table of search x length: the evaluation's forget, retain and general accuracy with the suffix
in place (all questions), the retain drop from the starting model, the feedback accuracies of the
suffix found and the questions asked; then the target check of issue 17 (at each length, does
the Dirichlet search reach a lower forget accuracy than greedy, genetic and random while its
retain accuracy stays within the margin of the start?). Builds ``pulse compare`` of each seed's
runs (``OUT/compare-seedN``): its ``suffix_lengths.png`` is forget and retain accuracy against the
length for each search, its ``queries.png`` the queries-to-target curves.

    python benchmarks/blackbox.py [--preset default|tiny] [--seeds 0 1] [--lengths 1 2 4 8]
                                  [--budget 6000] [--penalty P] [--holdout N] [--cache DIR] [--out DIR]

``--preset tiny`` is a smoke test of the script (few questions, a small budget), not a result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pulse_runs import pulse_run, read

SEARCHES = ["blackbox_dirichlet", "blackbox_greedy", "blackbox_genetic", "blackbox_random"]
MARGIN = 0.05  # the searches' default margin: retain may fall this much for free


def config(preset: str, seed: int, length: int, budget: int, penalty: float | None = None,
           holdout: int | None = None) -> dict:
    if preset == "tiny":
        splits = {"finetune_people": 10, "forget": 4, "requests": 1, "probe_threshold": 0.4,
                  "pretrained_forget": 3, "pretrained_retain": 3}
        feedback = {"feedback_forget": 10, "feedback_retain": 10, "holdout": 10 if holdout is None else holdout}
    else:
        splits = {"finetune_people": 100, "forget": 50, "requests": 1, "probe_threshold": 0.8,
                  "pretrained_forget": 20, "pretrained_retain": 25}
        feedback = {"feedback_forget": 60, "feedback_retain": 60}
    extra = ({} if penalty is None else {"penalty": penalty}) | ({} if holdout is None else {"holdout": holdout})
    params = {name: {"length": length, "budget": budget, "margin": MARGIN, **feedback, **extra} for name in SEARCHES}
    tag = ("" if penalty is None else f"-penalty{penalty:g}") + ("" if holdout is None else f"-holdout{holdout}")
    return {"name": f"blackbox-seed{seed}-length{length}{tag}", "seed": seed,
            "model": {"source": "world", "preset": preset, "world_seed": seed}, "splits": splits,
            "grid": [{"scenarios": ["finetuned"], "methods": SEARCHES, "updates": ["llm"]}],
            "method_params": params, "scoring": "likelihood"}


def acc(summary: list[dict], method: str, step: int, split: str) -> float:
    (row,) = [r for r in summary if (r["method"], r["step"], r["split"], r["modality"], r["request"]) ==
              (method, str(step), split, "all", "all")]
    return float(row["accuracy"])


def rows_of(run: Path, length: int) -> list[dict]:
    summary, ops, search = read(run / "summary.csv"), read(run / "operations.csv"), read(run / "search.csv")
    out = []
    for op in ops:
        m = op["method"]
        asked = [r for r in search if r["method"] == m]
        top = max(asked, key=lambda r: float(r["objective"]))  # the feedback's best: the result without a holdout
        chosen = next(r for r in asked if r["suffix"] == op["suffix"])
        held = lambda r: float(r["holdout_retain"]) if r.get("holdout_retain", "") != "" else float("nan")  # noqa: E731
        out.append({"search": m, "length": length, "forget": acc(summary, m, 1, "forget"),
                    "retain": acc(summary, m, 1, "retain"), "general": acc(summary, m, 1, "general"),
                    "retain drop": acc(summary, m, 0, "retain") - acc(summary, m, 1, "retain"),
                    "start forget": acc(summary, m, 0, "forget"),
                    "feedback forget": float(chosen["forget"]), "feedback retain": float(chosen["retain"]),
                    "holdout retain": held(chosen), "start holdout": held(asked[0]),
                    "questions": int(op["queries"]), "suffix": op["suffix"],
                    "feedback best": f"'{top['suffix']}' {float(top['retain']):.3f}/{held(top):.3f}"})
    return out


def table(rows: list[dict]) -> None:
    """One row per search and length; with a holdout, its retain accuracy for the suffix chosen and
    the feedback's best suffix with its feedback / holdout retain accuracy (what a search without
    a holdout would have returned)."""
    cols = ["search", "length", "forget", "retain", "general", "retain drop", "feedback forget", "feedback retain",
            "questions", "suffix"]
    if any(r["holdout retain"] == r["holdout retain"] for r in rows):  # not nan: the runs had a holdout
        cols[8:8] = ["holdout retain", "start holdout"]
        cols.append("feedback best")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


def target(rows: list[dict]) -> None:
    print(f"target: at each length, Dirichlet's forget below every baseline's, retain drop <= {MARGIN}:")
    for length in sorted({r["length"] for r in rows}):
        at = {r["search"]: r for r in rows if r["length"] == length}
        d = at["blackbox_dirichlet"]
        lower = all(d["forget"] < r["forget"] for name, r in at.items() if name != "blackbox_dirichlet")
        kept = d["retain drop"] <= MARGIN + 1e-9
        others = ", ".join(f"{n.split('_')[1]} {r['forget']:.3f}" for n, r in at.items() if n != "blackbox_dirichlet")
        print(f"  length {length}: dirichlet forget {d['forget']:.3f} ({others}); retain drop {d['retain drop']:.3f}"
              f" -> {'holds' if lower and kept else 'does not hold'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default", choices=["default", "tiny"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--lengths", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--budget", type=int, default=6000, help="questions per search (120 feedback questions a suffix)")
    ap.add_argument("--penalty", type=float, default=None, help="the searches' penalty (default: theirs)")
    ap.add_argument("--holdout", type=int, default=None,
                    help="retain facts that re-check the searches' finalists (default: theirs; 0: none)")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark-blackbox"))
    args = ap.parse_args()
    budget = args.budget if args.preset == "default" else min(args.budget, 200)
    from pulse_unlearn.report.build import build_compare

    for seed in args.seeds:
        rows, runs = [], []
        for length in args.lengths:
            run, seconds = pulse_run(config(args.preset, seed, length, budget, args.penalty, args.holdout), args.out,
                                     args.cache)
            print(f"seed {seed}, length {length}: {seconds:.0f} s", flush=True)
            rows += rows_of(run, length)
            runs.append(run)
        print(f"\nworld seed {seed}, preset {args.preset}, budget {budget} questions per search, penalty "
              f"{args.penalty if args.penalty is not None else 'default'}, holdout "
              f"{args.holdout if args.holdout is not None else 'default'} "
              f"(start: forget {rows[0]['start forget']:.3f}):")
        table(rows)
        target(rows)
        tag = ("" if args.penalty is None else f"-penalty{args.penalty:g}") + \
            ("" if args.holdout is None else f"-holdout{args.holdout}")
        report = build_compare(runs, args.out / f"compare-seed{seed}{tag}")
        print(f"report: {report} (suffix_lengths.png, queries.png)")


if __name__ == "__main__":
    main()
