"""A manual run (``trigger``, ``triggered_by=manual``) is a run of its own, while each (schedule, due time) still
becomes at most one scheduled run; and migration 7, which made it so, keeps every run. On every backend."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from storekit import Backend, postgres_backend, sqlite_backend
from test_contract import LEASE, MIN, T0, due_run, every_minute, in_threads, job, ok, run_of, schedule, setup

from ductape_jobs.errors import ConflictError
from ductape_jobs.ids import new_id
from ductape_jobs.models import NewRun, RunFilter, RunPhase, Schedule, TriggeredBy
from ductape_jobs.store import Store

SEC = timedelta(seconds=1)


def manual(s: Schedule, at: Any = T0) -> NewRun:
    return NewRun(new_id("run"), s.id, at, at, RunPhase.QUEUED, TriggeredBy.MANUAL)


def kinds(store: Store, s: Schedule) -> list[tuple[Any, TriggeredBy]]:
    """The schedule's runs as (due time, triggered_by), sorted."""
    return sorted((r.scheduled_at, r.triggered_by) for r in store.list_runs(RunFilter(job_id=s.id)))


def test_an_occurrence_due_at_a_manual_runs_time_is_still_created_once(store: Store) -> None:
    """The scheduler makes the occurrence after a manual run took its instant (it used to be swallowed)."""
    store.create_job(job(), T0)
    s = schedule(every=MIN, next_run_at=T0)
    store.add_schedules([s], [])
    store.trigger(s.id, manual(s, T0))
    store.trigger(s.id, manual(s, T0))
    made = store.advance_due(T0, 10, every_minute)
    assert [(r.scheduled_at, r.triggered_by) for r in made] == [(T0, TriggeredBy.SCHEDULE)]
    with pytest.raises(ConflictError):
        store.trigger(s.id, due_run(s, T0))  # a second occurrence of T0 is refused
    assert kinds(store, s) == [(T0, TriggeredBy.MANUAL), (T0, TriggeredBy.MANUAL), (T0, TriggeredBy.SCHEDULE)]
    assert store.count_runs() == {RunPhase.QUEUED: 3}


def test_racing_schedulers_and_manual_triggers_keep_one_run_per_occurrence(backend: Backend) -> None:
    a, b, c = backend.open(), backend.open(), backend.open()
    a.create_job(job(), T0)
    made = [schedule(every=MIN, next_run_at=T0) for _ in range(20)]
    a.add_schedules(made, [])

    def triggers() -> None:
        for s in made:
            b.trigger(s.id, manual(s, T0))  # never refused, whoever makes the occurrence first

    in_threads(lambda: a.advance_due(T0, 100, every_minute), lambda: c.advance_due(T0, 100, every_minute), triggers)
    for s in made:
        assert kinds(a, s) == [(T0, TriggeredBy.MANUAL), (T0, TriggeredBy.SCHEDULE)], s.id
    assert a.count_runs() == {RunPhase.QUEUED: 40}


# ---------------------------------------------------------------------------------------- migration 7


def _fresh(backend: Backend, tmp_path: Path) -> AbstractContextManager[Backend]:
    if backend.name == "sqlite":
        (tmp_path / "fresh").mkdir()
        return sqlite_backend(tmp_path / "fresh")
    return postgres_backend()


def _schema(backend: Backend) -> dict[str, Any]:
    """The snapshot without the schema's own name (PostgreSQL's index definitions qualify their table)."""
    snap = backend.snapshot()
    prefix = f"{backend.schema}." if backend.schema else ""
    snap["indexes"] = sorted((name, (sql or "").replace(prefix, "")) for name, sql in snap["indexes"])
    return snap


def test_migration_7_keeps_every_run_and_gives_the_schema_a_fresh_database_has(
    backend: Backend, tmp_path: Path
) -> None:
    backend.migrate_to(6)  # a database of the release before manual runs were set free
    old = backend.open(migrate=False)
    s, (first, second) = setup(old, T0, T0 + MIN, every=MIN)
    (claimed,) = old.acquire_runs("w1", 1, LEASE, T0)
    old.finish_runs([ok(claimed, at=T0 + SEC, output={"rows": [1, 2]})], T0 + SEC)
    runs = [run_of(old, first), run_of(old, second)]
    before = _schema(backend)

    store = backend.open()  # migrates to the latest version
    v7 = _schema(backend)
    assert v7["versions"][-1] >= 7
    later = {"pruned_runs", "pruned_completed", "pruned_failed"}  # version 8 adds them to schedules (retention)
    later |= {"feature_key"}  # and version 11 this one (a feature's JOB event), with the outbox's tables
    v7_tables = {
        t: [c for c in cols if t != "schedules" or c[0] not in later]
        for t, cols in v7["tables"].items()
        if t not in ("outbox", "outbox_consumers")
    }
    assert v7_tables == before["tables"]  # runs rebuilt (SQLite) with the same columns, in the same order
    lost = {name for name, _ in before["indexes"]} - {name for name, _ in v7["indexes"]}
    assert lost <= {"sqlite_autoindex_runs_2"}  # only SQLite's index of the old UNIQUE constraint
    rule = dict(v7["indexes"])["runs_one_per_occurrence"]
    assert "UNIQUE" in rule and "'manual'" in rule  # the rule, for every run but manual ones
    assert [run_of(store, first), run_of(store, second)] == runs  # every column of every run kept
    assert runs[0].phase is RunPhase.COMPLETED and runs[0].output == {"rows": [1, 2]}
    with _fresh(backend, tmp_path) as fresh:
        fresh.open()
        assert _schema(fresh) == v7

    store.trigger(s.id, manual(s, T0 + MIN))  # the manual run at an occurrence's time is its own now
    with pytest.raises(ConflictError):
        store.trigger(s.id, replace(due_run(s, T0 + MIN), id=new_id("run")))  # the occurrence stays one
    assert kinds(store, s) == [
        (T0, TriggeredBy.SCHEDULE),
        (T0 + MIN, TriggeredBy.MANUAL),
        (T0 + MIN, TriggeredBy.SCHEDULE),
    ]
