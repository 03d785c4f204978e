"""The declared dependencies are the ones the code imports: none unused, none undeclared."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, Set

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _top_level_imports(directory: Path) -> Set[str]:
    names: Set[str] = set()
    for path in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def _declared(extra: str = "") -> Set[str]:
    """The distributions pilotid requires (with ``extra``: only that extra's)."""
    found = set()
    for requirement in metadata.requires("pilotid") or ():
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower()
        marker = re.search(r'extra\s*==\s*"([^"]+)"', requirement)
        if (marker.group(1) if marker else "") == extra:
            found.add(name)
    return found


def _distributions_of(imports: Set[str]) -> Dict[str, Set[str]]:
    """Third-party distribution -> the imported top-level names it provides."""
    provided = metadata.packages_distributions()
    found: Dict[str, Set[str]] = {}
    for name in imports:
        if name in sys.stdlib_module_names or name in ("pilotid", "tests"):
            continue
        for dist in provided.get(name, ()):
            found.setdefault(dist.lower(), set()).add(name)
    return found


def test_every_run_time_dependency_is_imported_by_pilotid():
    used = _distributions_of(_top_level_imports(ROOT / "pilotid"))
    assert _declared() - set(used) == set(), "declared in install_requires, never imported"


def test_pilotid_imports_nothing_it_does_not_declare():
    used = _distributions_of(_top_level_imports(ROOT / "pilotid"))
    assert set(used) - _declared() == set(), "imported by pilotid, not in install_requires"


@pytest.mark.parametrize("package", ["pytest", "mock", "hypothesis"])
def test_every_test_dependency_is_declared_and_imported_by_the_tests(package):
    assert package in _declared("test")
    assert package in _distributions_of(_top_level_imports(ROOT / "tests"))
