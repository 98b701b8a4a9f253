"""The demo's findings over several worlds and run seeds (issue 30): how sure are the verdicts?

Runs the shipped demo config (``pulse demo``'s) once per world seed x run seed, each into its own
folder (a killed benchmark resumes from them), then pools them as ``pulse compare`` does (each
run's comparisons resampled again from its items; a world's runs averaged; the worlds resampled,
then the people; Holm over the pooled comparisons). Prints, per finding and method, the pooled
estimate, its Holm-level interval, the verdict and how many per-run verdicts agree.

    python benchmarks/findings.py [--preset default|tiny] [--world-seeds 0 1 2 3 4] [--run-seeds 0 1]
                                  [--runs DIR] [--cache DIR] [--out benchmarks/results] [--pool-only]

Writes ``findings-pooled.csv`` (the pooled rows), ``findings-sensitivity.csv`` (the matched
comparisons pooled again at each ``kept`` of ``trajectory.sensitivity``), ``findings-runs.csv``
(every run's own rows, with its world and run seed) and ``findings-meta.json`` (machine, versions,
commit, seeds, minutes) under ``--out``; ``benchmarks/render.py`` turns them into the READMEs'
tables. ``--pool-only`` pools the runs already in ``--runs`` again without running anything (their
minutes are kept from the earlier meta file, and the meta says when they were pooled).
``--preset tiny`` is a smoke test of the script (the tiny demo), not a result.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import time
from importlib.resources import files
from pathlib import Path

import yaml

from pulse_runs import pulse_run, read

CONFIG = {"default": "demo.yaml", "tiny": "demo_tiny.yaml"}


def config(preset: str, world: int, seed: int) -> dict:
    cfg = yaml.safe_load((files("pulse_unlearn") / "configs" / CONFIG[preset]).read_text())
    cfg["name"] = f"{cfg['name']}-world{world}-seed{seed}"
    cfg["seed"] = seed
    cfg["model"]["world_seed"] = world
    return cfg


def machine() -> dict:
    def out(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    cpu = next((line.split(":", 1)[1].strip() for line in out("lscpu").splitlines()
                if line.startswith("Model name")), platform.processor())
    import torch
    import transformers

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__,
            "commit": out("git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(CONFIG), default="default")
    ap.add_argument("--world-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--run-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--runs", type=Path, default=Path("runs") / "bench-findings", help="the runs' folders")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--pool-only", action="store_true", help="pool the runs in --runs again; run nothing")
    args = ap.parse_args()

    from pulse_unlearn.report.build import build_compare

    tag = "" if args.preset == "default" else f"-{args.preset}"
    t0, folders, minutes = time.time(), [], {}
    earlier = args.out / f"findings-meta{tag}.json"
    earlier = json.loads(earlier.read_text()) if args.pool_only and earlier.is_file() else {}
    for world in args.world_seeds:
        for seed in args.run_seeds:
            if args.pool_only:
                run = args.runs / config(args.preset, world, seed)["name"]
                if not (run / "summary.csv").is_file():
                    raise SystemExit(f"--pool-only: {run} holds no finished run")
                folders.append(run)
                minutes[run.name] = earlier.get("minutes", {}).get(run.name)
                continue
            run, seconds = pulse_run(config(args.preset, world, seed), args.runs, args.cache)
            folders.append(run)
            minutes[run.name] = round(seconds / 60, 2)
            print(f"world {world} seed {seed}: {seconds / 60:.1f} min", flush=True)
    lines = []
    build_compare(folders, args.runs / "compare", log=lines.append)
    pooled = read(args.runs / "compare" / "findings.csv")
    sensitivity = read(args.runs / "compare" / "sensitivity.csv") if (args.runs / "compare" /
                                                                      "sensitivity.csv").is_file() else []
    per_run = []
    for run in folders:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        per_run += [{"world": cfg["model"]["world_seed"], "seed": cfg["seed"], **r} for r in read(run / "findings.csv")]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in ((f"findings-pooled{tag}.csv", pooled), (f"findings-runs{tag}.csv", per_run),
                       (f"findings-sensitivity{tag}.csv", sensitivity)):
        if not rows:
            continue
        with open(args.out / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    meta = {"preset": args.preset, "world_seeds": args.world_seeds, "run_seeds": args.run_seeds,
            "date": time.strftime("%Y-%m-%d"), "minutes": minutes, "total_minutes": round((time.time() - t0) / 60, 1),
            "agreement": lines[0] if lines else "", "machine": machine()}
    if args.pool_only and earlier:  # the runs are the earlier ones: their date, time and machine stay
        meta.update(date=earlier["date"], total_minutes=earlier["total_minutes"], machine=earlier["machine"],
                    pooled_again={"date": time.strftime("%Y-%m-%d"), "commit": machine()["commit"]})
    (args.out / f"findings-meta{tag}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(lines[0] if lines else "no pooled findings")
    for r in pooled:
        print(f"finding {r['finding']} at {r['at']:8} {r['scenarios']:26} {r['method']:7} {r['update']:13} "
              f"{r['target_modality'] or '-':10} "
              f"{float(r['estimate']):+.3f} [{float(r['ci_low']):+.3f}, {float(r['ci_high']):+.3f}] "
              f"{r['verdict']:13} agree {r['agree']}  ({r['per_run']})")
    for r in sensitivity:
        print(f"kept {float(r['kept']):.1f}: finding {r['finding']} {r['scenarios']:26} {r['method']:7} "
              f"{r['target_modality'] or '-':10} {float(r['estimate']):+.3f} "
              f"[{float(r['ci_low']):+.3f}, {float(r['ci_high']):+.3f}] {r['verdict']:13} agree {r['agree']}")


if __name__ == "__main__":
    main()
