"""Progress bars for long loops: shown on a terminal, quiet in CI and in pipes."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def quiet() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("PULSE_QUIET") == "1" or not sys.stderr.isatty()


def bar(total: int, desc: str):
    return tqdm(total=total, desc=desc, disable=quiet(), leave=False, dynamic_ncols=True)
