"""Progress bars for long loops: shown on a terminal, quiet in CI and in pipes."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm


def quiet() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("PULSE_QUIET") == "1" or not sys.stderr.isatty()


def bar(total: int, desc: str):
    return tqdm(total=total, desc=desc, disable=quiet(), leave=False, dynamic_ncols=True)


class RunLog:
    """A run's log lines: shown on stderr and appended, timestamped, to ``run.log`` in the run
    folder. Lines from before the run folder is made (world and model building) are held and
    written once it is: a run folder is recognised by its ``config.yaml``, so the log must not
    create the folder first."""

    def __init__(self, folder: Path, echo):
        self.folder, self.echo, self.pending = Path(folder), echo, []

    def __call__(self, msg: str) -> None:
        self.echo(msg)
        self.pending.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
        self.flush()

    def flush(self) -> None:
        if self.pending and (self.folder / "config.yaml").exists():
            with open(self.folder / "run.log", "a") as f:
                f.writelines(self.pending)
            self.pending.clear()
