"""The configs shipped inside the package (``pulse_unlearn/configs/``), runnable by name.

``pulse run demo_tiny`` works from any folder of an installed copy: a config argument that is
not an existing file is looked up here, with or without ``.yaml``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..errors import PulseError


def shipped_configs() -> dict[str, Path]:
    """Name (the file's stem) -> path, sorted by name."""
    folder = Path(str(files("pulse_unlearn") / "configs"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def demo_attacks() -> list[dict]:
    """The attacks ``pulse demo --attacks`` adds (``configs/attacks/demo.yaml``)."""
    import yaml

    path = Path(str(files("pulse_unlearn") / "configs")) / "attacks" / "demo.yaml"
    return yaml.safe_load(path.read_text())["attacks"]


def first_comment(path: Path) -> str:
    """The file's first comment line, which says what the config is for."""
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def resolve_config(path: str | Path) -> Path:
    """An existing file as it is; else a bare name of a shipped config; else one line saying so."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    name = path.name.removesuffix(".yaml")
    if path.parent == Path(".") and name in shipped:
        return shipped[name]
    raise PulseError(f"{path}: config file not found, nor a shipped config (shipped: {', '.join(shipped)}; "
                     "`pulse configs` describes them)")
