"""Imports point one way: ``store/`` uses only what lies below it (models, inputs, errors, limits, ids, extras,
retention, lifecycle, resources)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ductape_jobs

PACKAGE = Path(ductape_jobs.__file__).parent
BELOW_STORE = {
    "ductape_jobs.models",
    "ductape_jobs.inputs",  # the input models (pydantic): models, errors, limits, lifecycle, resources, timing
    "ductape_jobs.errors",
    "ductape_jobs.limits",
    "ductape_jobs.ids",
    "ductape_jobs.extras",
    "ductape_jobs.retention",
    "ductape_jobs.redaction",
    "ductape_jobs.timing.backoff",
    "ductape_jobs.lifecycle",  # the outbox's event records and stream positions: standard library and errors
    "ductape_jobs.resources",
    "ductape_jobs.logs",  # Repeats: an outage said once, not at each try (it imports limits and redaction only)
}


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


def test_both_dialects_name_the_same_queries() -> None:
    """The core runs queries by name: each backend's ``.sql`` files define the same names (PostgreSQL's
    ``notify`` and ``server_time``, and SQLite's ``insert_attempt`` and ``limited_due`` of its multi-statement
    claim, aside: PostgreSQL's ``acquire_runs`` does all three in one statement; and each dialect's own
    ``Tx.sync_outbox_triggers``: PostgreSQL calls a function, SQLite creates or drops each trigger; and
    ``Tx.add_schedules``: one statement on PostgreSQL, SQLite's checks and inserts in turn; and SQLite's bound
    forms of two queries it sends as JSON lists, for rows of a large text)."""
    from ductape_jobs.store.postgres.dialect import Q as POSTGRES
    from ductape_jobs.store.sqlite.dialect import OUTBOX_TRIGGERS
    from ductape_jobs.store.sqlite.dialect import Q as SQLITE

    triggers = {f"{verb}_{name}" for verb in ("create", "drop") for name in OUTBOX_TRIGGERS}
    stored = {"check_jobs", "insert_schedule", "set_feature_key", "insert_first_run"}  # Tx.add_schedules' steps
    assert set(POSTGRES) - set(SQLITE) == {"notify", "server_time", "sync_outbox_triggers", "add_schedules"}
    bound = {"complete_run_bound", "finish_attempt_bound"}
    assert set(SQLITE) - set(POSTGRES) == {"insert_attempt", "limited_due", "outbox_wanted", *triggers, *stored, *bound}


def test_each_backend_is_every_narrow_part_of_the_contract() -> None:
    from ductape_jobs.store import AccessStore, FeatureStore, RetentionStore, SchedulingStore, StatsStore, Store
    from ductape_jobs.store.core import SQLStore
    from ductape_jobs.store.limits import LimitsStore
    from ductape_jobs.store.postgres import PostgresStore
    from ductape_jobs.store.sqlite import SQLiteStore

    for backend in (SQLiteStore, PostgresStore):
        assert issubclass(backend, SQLStore) and issubclass(backend, Store)
        for part in (SchedulingStore, FeatureStore, AccessStore, StatsStore, RetentionStore, LimitsStore):
            assert issubclass(backend, part)


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle inside a layer either (the layers themselves are ``lint-imports``' contract in
    pyproject.toml, which ``make test`` runs): the strongly connected parts of grimp's import graph."""
    import grimp

    graph = grimp.build_graph("ductape_jobs")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            part = []
            while (top := stack.pop()) != module:
                part.append(top)
            if part:
                cycles.append(sorted([module, *part]))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize(
    "module",
    [
        "ductape_jobs.features.plan",  # once: products/registry -> features/plan -> products (partially initialised)
        "ductape_jobs.products.feature_plan",
        "ductape_jobs.piping.functions",  # once: functions <-> grammar
        "ductape_jobs.piping.grammar",
        "ductape_jobs.products.admission",
        "ductape_jobs.executors.feature",
        "ductape_jobs.jobs",
        "ductape_jobs.features.api",
    ],
)
def test_a_module_imported_first_loads(module: str) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
