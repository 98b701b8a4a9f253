"""The tiny demo's numbers are those of the recorded run in ``tests/golden/demo_tiny/VENDOR``.

Recorded before the evaluation layer was redesigned (and again, by that same code, once the
suite pinned one thread and the AVX2 code paths: tests/conftest.py), so a refactor that changes
any number, any prediction or any operation's steps fails here. Only the wall time of an
operation (``seconds``) is left out; the losses, printed to 6 decimals, may differ in the last
one between CPUs (seen: 1e-6 between two AMD EPYC models with every accuracy and prediction
equal), so they are compared to a relative 1e-5; and columns added since the recording
(``population``, ``stop``, ...) are compared on the recorded columns only, and rows added since
(the general benchmark's per-category summary rows) are left out.

The tiny models are trained from scratch, and under the same pinned code paths an Intel and an
AMD CPU still train them to different weights (the math libraries' kernels differ by vendor), so
there is one recording per CPU vendor, each made by the same code (``pulse demo --preset tiny``
under tests/conftest.py's environment; the Intel one from commit 4701040, whose tiny demo equals
the AMD recording's on AMD). A CPU of another vendor has no recording: the test says so and skips.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

RECORDED = Path(__file__).parent / "golden" / "demo_tiny"


def cpu_vendor() -> str:
    """``GenuineIntel``, ``AuthenticAMD``, ... as the kernel reports it; else the platform's processor name."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


GOLDEN = RECORDED / cpu_vendor()


def _read(path: Path) -> list[dict]:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return list(csv.DictReader(io.StringIO(text)))


def _project(rows: list[dict], columns: list[str]) -> list[tuple]:
    return [tuple(r[c] for c in columns) for r in rows]


LOSSES = ("first_loss", "last_loss")


def _same(columns: list[str], recorded: tuple, got: tuple) -> bool:
    for c, a, b in zip(columns, recorded, got):
        if c in LOSSES and a and b:
            if float(b) != pytest.approx(float(a), rel=1e-5, abs=1e-6):
                return False
        elif a != b:
            return False
    return True


@pytest.mark.parametrize("name", ["summary.csv", "predictions.csv", "operations.csv"])
def test_tiny_demo_matches_the_recorded_run(tiny_demo, name):
    if not GOLDEN.is_dir():
        pytest.skip(f"no recorded run for CPU vendor {GOLDEN.name!r} (recorded: "
                    f"{', '.join(sorted(p.name for p in RECORDED.iterdir()))}): the tiny models train differently")
    out, _ = tiny_demo
    golden_path = GOLDEN / name if (GOLDEN / name).exists() else GOLDEN / f"{name}.gz"
    golden, got = _read(golden_path), _read(out / name)
    if name == "summary.csv":  # per-category rows came after the recording
        got = [r for r in got if r["category"] == "all"]
    columns = [c for c in golden[0] if c != "seconds"]
    assert set(columns) <= set(got[0]), f"{name}: recorded columns missing: {set(columns) - set(got[0])}"
    assert len(got) == len(golden)
    mismatch = [(i, g, o) for i, (g, o) in enumerate(zip(_project(golden, columns), _project(got, columns)))
                if not _same(columns, g, o)]
    assert not mismatch, f"{name}: {len(mismatch)} rows differ, first: row {mismatch[0][0]}: " \
                         f"{dict(zip(columns, mismatch[0][1]))} != {dict(zip(columns, mismatch[0][2]))}"
