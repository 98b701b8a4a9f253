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
    # config looks method parameters and split names up in the methods and splits registries only
    # inside its validators, so that importing it imports no torch (tests/test_cli.py checks that);
    # it imports nothing else of ours
    "config": {"protocol", "runs", "report", "models", "data", "world"},
    "runs": {"evaluation", "protocol", "methods", "report"},
    "evaluation": {"methods", "protocol", "report"},
    "models": {"protocol", "evaluation", "report", "methods"},
    "world": {"protocol", "evaluation", "report", "methods", "models"},
    "data": {"protocol", "evaluation", "report", "methods", "runs"},
    "methods": {"protocol", "report"},
}


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


def _imported_packages(path: Path) -> set[str]:
    """The top-level subpackages of pulse_unlearn that ``path`` imports (absolute or relative)."""
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
            out |= {n[0] for n in names if n}
    return out


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
    assert {"data", "registry", "draws"} <= _imported_packages(path)
    assert "records" in _imported_packages(PACKAGE / "evaluation" / "summary.py")
