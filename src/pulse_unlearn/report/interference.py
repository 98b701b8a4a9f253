"""Cross-concept interference in the concepts scenarios (PEBench, arXiv 2503.12545): what unlearning
a concept takes from the other concept shown in the same images (the ``scope`` split), against
what it takes from the concepts shown in other images (``retain``).

All on multimodal questions, the only kind the scope split has: for each unit, the drop of each
split from the starting model to the last operation (in points), and
    interference = drop(scope) - drop(retain):
above 0, the images the forget concepts appear in lose more of their other concept than images
without them lose; PEBench's finding is that they do.
"""

from __future__ import annotations

from ..protocol.scenarios.declared import of_concepts
from .findings import Summary
from .tables import Cell, Table, _cell

INTERFERENCE_SPLITS = ("forget", "scope", "retain")
PEBENCH = ("PEBench (arXiv 2503.12545, Table 1), for comparison: GA on people reaches 100% efficacy but keeps "
           "3.89% of the retained people; people and events forgotten together with GD reach 55% efficacy.")


def drops(s: Summary, unit) -> dict[str, float] | None:
    """Each split's multimodal accuracy at the start minus after the unit's last operation, and
    ``interference`` = drop(scope) - drop(retain); None where a split is missing."""
    end = s.last_step[unit]
    out = {}
    for split in INTERFERENCE_SPLITS:
        start, after = s.get(unit, 0, split, "multimodal"), s.get(unit, end, split, "multimodal")
        if start is None or after is None:
            return None
        out[split] = start - after
    out["interference"] = out["scope"] - out["retain"]
    return out


def _units(s: Summary) -> list[tuple[str, str, str]]:
    return [u for u in s.units() if of_concepts(u[0]) and drops(s, u) is not None]


def interference_table(s: Summary) -> Table | None:
    units = _units(s)
    if not units:
        return None
    t = Table("concepts: cross-concept interference",
              "Multimodal accuracy (%) after the operation, in brackets the change from the starting model (points): "
              "the forget concepts, the other concept of their images (scope) and the concepts of other images "
              "(retain). interference: the scope's drop minus retain's (points; above 0: the same images lose more). "
              + PEBENCH,
              ["scenario", "method", "update", "forget mm", "scope mm", "retain mm", "interference"])
    for u in units:
        end = s.last_step[u]
        t.rows.append([u[0], u[1], u[2], *(_cell(s, u, end, split, "multimodal") for split in INTERFERENCE_SPLITS),
                       Cell(drops(s, u)["interference"])])
    return t


def interference_findings(s: Summary) -> str:
    """One line per concepts unit, then PEBench's figures; empty without concepts units."""
    lines = []
    for u in _units(s):
        d = drops(s, u)
        said = ("the same images lose more" if d["interference"] > 0 else "the same images lose no more")
        lines.append(f"- {u[0]}, {u[1]}/{u[2]}: forget {-100 * d['forget']:+.1f} points; the other concept of "
                     f"the same images {-100 * d['scope']:+.1f}, concepts of other images {-100 * d['retain']:+.1f}: "
                     f"interference {100 * d['interference']:+.1f} points ({said})")
    if not lines:
        return ""
    return "\n".join(["Cross-concept interference (concepts scenarios, multimodal):", *lines, PEBENCH]) + "\n"
