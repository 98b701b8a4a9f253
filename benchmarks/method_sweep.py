"""A method's parameters swept on the demo's finetuned scenario (one operation on the 50 forget
people, the demo's stopping rule: the training facts kept at or below 20% of the starting
model's on both modalities, or 5 epochs): forget, retain and general accuracy at the end, the
steps taken and why the operation stopped, per combination of the values given.

    python benchmarks/method_sweep.py --method rmu --set alpha=1,10,100 --set steering=20
        [--config demo] [--world-seed 0] [--scenario finetuned] [--cache DIR] [--out DIR]

Every combination is one ``pulse run demo`` (or ``--config``) with the overrides ``scenario=``, ``method=`` and
``method_params.<method>.<key>=<value>``; the world and its models come from the cache.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path


def read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def end_accuracy(run: Path) -> dict[str, float]:
    summary = read(run / "summary.csv")
    last = max(int(r["step"]) for r in summary)
    return {f"{r['split']} {r['modality'][:4]}": float(r["accuracy"]) for r in summary
            if int(r["step"]) == last and r["request"] == "all" and r["split"] in ("forget", "retain", "general")
            and r["modality"] in ("multimodal", "text")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                    help="a parameter and its values (repeatable; every combination runs)")
    ap.add_argument("--config", default="demo", help="a shipped config or a file (demo_tiny: a smoke test)")
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument("--scenario", default="finetuned", choices=["finetuned", "pretrained", "sequential"])
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark-sweep"))
    args = ap.parse_args()
    grid = {}
    for item in args.set:
        key, sep, values = item.partition("=")
        if not sep or not values:
            ap.error(f"--set {item!r}: expected KEY=V1,V2")
        grid[key] = values.split(",")
    env = {**os.environ, "PULSE_QUIET": "1"}
    rows = []
    for values in itertools.product(*grid.values()) if grid else [()]:
        params = dict(zip(grid, values, strict=True))
        tag = "-".join(f"{k}{v}" for k, v in params.items()) or "defaults"
        out = args.out / f"{args.method}-seed{args.world_seed}-{args.scenario}-{tag}"
        cmd = [sys.executable, "-m", "pulse_unlearn.cli", "run", args.config, f"scenario={args.scenario}",
               f"method={args.method}", f"model.world_seed={args.world_seed}",
               *(f"method_params.{args.method}.{k}={v}" for k, v in params.items()), "--out", str(out)]
        if args.cache:
            cmd += ["--cache", str(args.cache)]
        t0 = time.time()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        op = read(out / "operations.csv")[-1]
        rows.append({"params": tag, **end_accuracy(out), "steps": op["steps"], "stop": op["reason"],
                     "seconds": f"{time.time() - t0:.0f}"})
        print(f"{tag}: {rows[-1]}", flush=True)
    cols = list(rows[0])
    print(f"\n{args.method}, world seed {args.world_seed}, scenario {args.scenario}")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
