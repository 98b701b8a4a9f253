"""The attacks' own input files: where an attack finds one, and reading JSON lines with every
problem as one ``PulseError`` line naming the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ...errors import PulseError


def side_file(file: str | None, src, name: str) -> Path | None:
    """``file`` when given; else ``name`` in the data's MLLMU-Bench folder where it is (the
    embedded world writes its attacks' files there); None where neither is."""
    if file is not None:
        return Path(file)
    own = Path(src.mllmu) / name if getattr(src, "mllmu", None) is not None else None
    return own if own is not None and own.is_file() else None


def json_lines(path: Path, what: str, attack: str) -> Iterator[tuple[str, object]]:
    """(``file:line``, the parsed value) for each non-blank line of ``path``; a missing or unreadable
    file, or a line that is not JSON, is a ``PulseError``. ``what`` names the file in messages,
    ``attack`` the attack whose ``file`` it is."""
    path = Path(path)
    if not path.is_file():
        raise PulseError(f"{path}: {what} file not found (attack {attack}, file)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PulseError(f"{path}: cannot read the {what} ({type(e).__name__})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{n}", json.loads(line)
        except json.JSONDecodeError as e:
            raise PulseError(f"{path}:{n}: not JSON ({e.msg} at column {e.colno})") from None
