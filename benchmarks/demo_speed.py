"""Wall time of `pulse demo`: cold (empty cache: world, base pre-training, fine-tuning, protocol)
and warm (world and models cached: the protocol alone, with its trajectories); then, warm,
`pulse demo --attacks` (the recovery attacks too). Targets: cold <= 15 min, warm <= 6 min (both).

    python benchmarks/demo_speed.py [--preset default] [--no-attacks]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(args: list[str], env: dict) -> float:
    t0 = time.time()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--no-attacks", action="store_true", help="skip the warm `pulse demo --attacks` run")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pulse-demo-speed-"))
    env = {**os.environ, "PULSE_QUIET": "1"}
    cmd = [sys.executable, "-m", "pulse_unlearn.cli", "demo", "--preset", args.preset, "--cache", str(tmp / "cache")]
    cold = timed(cmd + ["--out", str(tmp / "cold")], env)
    warm = timed(cmd + ["--out", str(tmp / "warm")], env)
    print(f"pulse demo --preset {args.preset}: cold {cold / 60:.1f} min (target 15), "
          f"warm {warm / 60:.1f} min (target 6); ratio cold/warm {cold / warm:.2f}; runs in {tmp}", flush=True)
    if not args.no_attacks:
        attacked = timed(cmd + ["--attacks", "--out", str(tmp / "attacks")], env)
        print(f"pulse demo --preset {args.preset} --attacks, warm: {attacked / 60:.1f} min (target 6); "
              f"{attacked / warm:.2f} x the warm demo")


if __name__ == "__main__":
    main()
