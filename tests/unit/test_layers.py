"""Imports point one way: ``store/`` uses only what lies below it (models, errors, limits, ids)."""

from __future__ import annotations

import ast
from pathlib import Path

import ductape_jobs

PACKAGE = Path(ductape_jobs.__file__).parent
BELOW_STORE = {"ductape_jobs.models", "ductape_jobs.errors", "ductape_jobs.limits", "ductape_jobs.ids"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_store_imports_nothing_above_it() -> None:
    offenders = []
    for path in sorted((PACKAGE / "store").rglob("*.py")):
        for module in _imports(path):
            if not module.startswith("ductape_jobs.") or module.startswith("ductape_jobs.store"):
                continue
            if module not in BELOW_STORE:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert offenders == []
