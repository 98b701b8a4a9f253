"""The demo's findings over several worlds and run seeds (issue 30): how sure are the verdicts?

Runs the shipped demo config (``pulse demo``'s) once per world seed x run seed, each into its own
folder (a killed benchmark resumes from them), then pools them as ``pulse compare`` does (each
run's comparisons resampled again from its items; a world's runs averaged; the worlds resampled,
then the people; Holm over the pooled comparisons). Prints, per finding and method, the pooled
estimate, its Holm-level interval, the verdict and how many per-run verdicts agree.

    python benchmarks/findings.py [--preset default|tiny] [--world-seeds 0 1 2 3 4] [--run-seeds 0 1]
                                  [--runs DIR] [--cache DIR] [--out benchmarks/results]

Writes ``findings-pooled.csv`` (the pooled rows), ``findings-runs.csv`` (every run's own rows,
with its world and run seed) and ``findings-meta.json`` (machine, versions, commit, seeds,
minutes) under ``--out``; ``benchmarks/render.py`` turns them into the READMEs' tables.
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
    args = ap.parse_args()

    from pulse_unlearn.report.build import build_compare

    t0, folders, minutes = time.time(), [], {}
    for world in args.world_seeds:
        for seed in args.run_seeds:
            run, seconds = pulse_run(config(args.preset, world, seed), args.runs, args.cache)
            folders.append(run)
            minutes[run.name] = round(seconds / 60, 2)
            print(f"world {world} seed {seed}: {seconds / 60:.1f} min", flush=True)
    lines = []
    build_compare(folders, args.runs / "compare", log=lines.append)
    pooled = read(args.runs / "compare" / "findings.csv")
    per_run = []
    for run in folders:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        per_run += [{"world": cfg["model"]["world_seed"], "seed": cfg["seed"], **r} for r in read(run / "findings.csv")]
    tag = "" if args.preset == "default" else f"-{args.preset}"
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in ((f"findings-pooled{tag}.csv", pooled), (f"findings-runs{tag}.csv", per_run)):
        with open(args.out / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    meta = {"preset": args.preset, "world_seeds": args.world_seeds, "run_seeds": args.run_seeds,
            "date": time.strftime("%Y-%m-%d"), "minutes": minutes, "total_minutes": round((time.time() - t0) / 60, 1),
            "agreement": lines[0] if lines else "", "machine": machine()}
    (args.out / f"findings-meta{tag}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(lines[0] if lines else "no pooled findings")
    for r in pooled:
        print(f"finding {r['finding']} at {r['at']:8} {r['scenarios']:26} {r['method']:7} {r['update']:13} "
              f"{r['target_modality'] or '-':10} "
              f"{float(r['estimate']):+.3f} [{float(r['ci_low']):+.3f}, {float(r['ci_high']):+.3f}] "
              f"{r['verdict']:13} agree {r['agree']}  ({r['per_run']})")


if __name__ == "__main__":
    main()
