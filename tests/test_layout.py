"""The house rules of the source tree, read from the code itself: modules and functions stay
small, and nothing lower imports anything higher."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pulse_unlearn

PACKAGE = Path(pulse_unlearn.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))

# package -> the packages of this project it must never import (directly or by relative import)
LOWER_THAN = {
    # the statistics: plain numbers in, intervals out
    "stats": {"core", "config", "protocol", "runs", "report", "models", "data", "world", "evaluation", "methods",
              "blackbox"},
    # the bottom layer: the generic registry, the strict-parameters base, the one-line messages
    "core": {"config", "protocol", "runs", "report", "models", "data", "world", "evaluation", "methods", "blackbox"},
    # config knows no registry (the catalog, protocol/catalog.py, checks the names a config gives),
    # so that importing it imports no torch (tests/test_cli.py checks that)
    "config": {"protocol", "runs", "report", "models", "data", "world", "evaluation", "methods", "blackbox"},
    "runs": {"evaluation", "protocol", "methods", "report", "blackbox"},
    "evaluation": {"methods", "protocol", "report"},
    "models": {"protocol", "evaluation", "report", "methods", "blackbox"},
    "world": {"protocol", "evaluation", "report", "methods", "models", "blackbox"},
    "data": {"protocol", "evaluation", "report", "methods", "runs", "blackbox"},
    "methods": {"protocol", "report", "blackbox"},
    # the suffix searches see only answers: nothing of the models, the evaluation or the methods
    "blackbox": {"protocol", "report", "evaluation", "methods", "models", "runs"},
}


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


def _imported_modules(path: Path) -> set[tuple[str, ...]]:
    """The modules of pulse_unlearn (as paths of names below it) that ``path`` imports, absolute or
    relative, at the top or inside a function."""
    tree, parts = ast.parse(path.read_text()), path.relative_to(PACKAGE).parts
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[:-1])[: len(parts) - node.level]
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [a.name] for a in node.names] if not node.module else [target]
            elif node.module and node.module.startswith("pulse_unlearn."):
                names = [node.module.split(".")[1:]]
            else:
                continue
            out |= {tuple(n) for n in names if n}
    return out


def _imported_packages(path: Path) -> set[str]:
    """The top-level subpackages of pulse_unlearn that ``path`` imports (absolute or relative)."""
    return {n[0] for n in _imported_modules(path)}


def _module(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _resolved(name: tuple[str, ...], modules: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The module an imported name lives in (``from .x import y``: module ``x.y``, else ``x``)."""
    while name and name not in modules:
        name = name[:-1]
    return name or None


def _cycle(graph: dict) -> list | None:
    """One cycle of the directed graph (node -> set of nodes), or None."""
    state: dict = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def _module_graph() -> dict:
    modules = {_module(p) for p in MODULES}
    graph = {}
    for p in MODULES:
        me = _module(p)
        graph[me] = {m for n in _imported_modules(p) if (m := _resolved(n, modules)) not in (None, me)}
    return graph


def test_no_import_circle_between_modules():
    """A package's ``__init__`` may import its modules, but then they import what they need from
    the module that defines it, never back from the package."""
    cycle = _cycle(_module_graph())
    assert cycle is None, "import circle: " + " -> ".join(".".join(m) or "pulse_unlearn" for m in cycle)


def test_no_import_circle_between_packages():
    graph: dict = {}
    for me, imported in _module_graph().items():
        for other in imported:
            if len(me) > 1 and len(other) > 1 and me[0] != other[0]:
                graph.setdefault(me[0], set()).add(other[0])
    cycle = _cycle(graph)
    assert cycle is None, "import circle between packages: " + " -> ".join(cycle)


def test_the_circle_finder_finds_circles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_and_functions_stay_small(path):
    source = path.read_text()
    assert source.count("\n") <= 400, f"{_name(path)}: {source.count(chr(10))} lines (at most 400)"
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60]
    assert not long, f"{_name(path)}: functions over 60 lines: {long}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in LOWER_THAN], ids=_name)
def test_nothing_lower_imports_anything_higher(path):
    package = path.relative_to(PACKAGE).parts[0]
    wrong = _imported_packages(path) & LOWER_THAN[package]
    assert not wrong, f"{_name(path)} ({package}) imports {sorted(wrong)}"


def test_the_import_reader_sees_relative_and_absolute_imports(tmp_path, monkeypatch):
    """The check above would pass vacuously if it read no imports: it reads both forms."""
    path = PACKAGE / "evaluation" / "evaluator.py"
    assert {"data", "core", "draws"} <= _imported_packages(path)
    assert "records" in _imported_packages(PACKAGE / "evaluation" / "summary.py")
