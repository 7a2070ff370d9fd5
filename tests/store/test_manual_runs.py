"""A manual run (``trigger``, ``triggered_by=manual``) is a run of its own, while each (schedule, due time) still
becomes at most one scheduled run; and migration 7, which made it so, keeps every run. On every backend."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace
from storekit import Backend, postgres_backend, sqlite_backend
from test_contract import MIN, T0, due_run, every_minute, in_threads, job, schedule

from ductape_jobs.errors import ConflictError
from ductape_jobs.ids import new_id
from ductape_jobs.models import NewRun, Run, RunFilter, RunPhase, Schedule, TriggeredBy
from ductape_jobs.store import Store
from ductape_jobs.store.codec import ms

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
    # a trigger holds its schedule's lock (a cancel at once waits for it): a tick passes over a schedule locked so
    # (PostgreSQL, SKIP LOCKED), as over one another scheduler holds, and the next tick makes its occurrence
    a.advance_due(T0, 100, every_minute)
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


LATER_TABLES = {
    "resources",
    "resource_starts",
    "outbox",
    "outbox_consumers",
    "outbox_marks",
    "run_minutes",
    "limit_holds",
}


def _listed(store: Store, schedule_id: str) -> list[Run]:
    return store.list_runs(RunFilter(job_id=schedule_id))


def _v6_rows(backend: Backend) -> tuple[Schedule, list[str]]:
    """A job, a schedule every minute and its runs at T0 (completed, with output) and T0 + MIN (queued)."""
    s = schedule(every=MIN, next_run_at=None)
    first, second = new_id("run"), new_id("run")
    statements = [
        "INSERT INTO jobs (tag, name, event_type, event_tag, created_at, updated_at, product_tag)"
        " VALUES ('report', 'Report', 'function', 'fn-report', :t0, :t0, '')",
        "INSERT INTO schedules (id, job_tag, env, product_tag, input, retries, every_ms, status, start_at,"
        " run_count, created_at, updated_at, job_product)"
        " VALUES (:sid, 'report', 'prd', 'shop', '{\"user\": \"u1\"}', 0, 60000, 'active', :t0, 2, :t0, :t0, '')",
        "INSERT INTO runs (id, schedule_id, scheduled_at, job_tag, product_tag, env, event_type, event_tag, input,"
        " phase, available_at, triggered_by, max_retries, attempt, started_at, completed_at, duration_ms, output,"
        " created_at, updated_at) VALUES (:first, :sid, :t0, 'report', 'shop', 'prd', 'function', 'fn-report',"
        " '{}', 'completed', :t0, 'schedule', 0, 1, :t0, :t1, 5, '{\"rows\": [1, 2]}', :t0, :t1)",
        "INSERT INTO runs (id, schedule_id, scheduled_at, job_tag, product_tag, env, event_type, event_tag, input,"
        " phase, available_at, triggered_by, max_retries, created_at, updated_at) VALUES (:second, :sid, :tm,"
        " 'report', 'shop', 'prd', 'function', 'fn-report', '{}', 'queued', :tm, 'schedule', 0, :t0, :t0)",
        "INSERT INTO attempts (run_id, attempt, worker_id, started_at, finished_at, outcome)"
        " VALUES (:first, 1, 'w1', :t0, :t1, 'completed')",
    ]
    params = {"sid": s.id, "first": first, "second": second, "t0": ms(T0), "t1": ms(T0 + SEC), "tm": ms(T0 + MIN)}
    for query in statements:
        if backend.name == "postgres":
            query = re.sub(r":(\w+)", r"%(\1)s", query)
        backend.execute(query, {k: v for k, v in params.items() if f":{k}" in query or f"%({k})s" in query})
    return s, [first, second]


def test_migration_7_keeps_every_run_and_gives_the_schema_a_fresh_database_has(
    backend: Backend, tmp_path: Path
) -> None:
    backend.migrate_to(6)  # a database of the release before manual runs were set free
    old = backend.open(migrate=False)
    s, (first, second) = _v6_rows(backend)  # as that release wrote them (today's store writes later columns)
    runs = _listed(old, s.id)  # the listing reads runs alone (get_run also reads limit holds, version 18)
    assert [r.id for r in runs] == [second, first]
    before = _schema(backend)

    store = backend.open()  # migrates to the latest version
    v7 = _schema(backend)
    assert v7["versions"][-1] >= 7
    later = {  # columns and tables of later versions: 8 (retention), 9 (tracing), 10 (limits), 11 (outbox), 12 (keeps),
        # 14 (run_minutes), 17 (live streams: outbox_marks), 18 (limit_holds; runs lose waiting_on, held_until),
        # 24 (webhooks' sending_until)
        "schedules": {"pruned_runs", "pruned_completed", "pruned_failed", "trace_context", "priority", "feature_key"},
        "webhooks": {"sending_until"},
        "jobs": {"resources", "concurrency", "rate", "priority", "limit_keys", "keep_completed", "keep_failed"},
        "runs": {"trace_context", "priority", "limit_keys", "waiting_on", "held_until"},
    }
    v7_tables = {
        t: [c for c in cols if c[0] not in later.get(t, set())]
        for t, cols in v7["tables"].items()
        if t not in LATER_TABLES
    }
    assert v7_tables == before["tables"]  # runs rebuilt (SQLite) with the same columns, in the same order
    lost = {name for name, _ in before["indexes"]} - {name for name, _ in v7["indexes"]}
    # only the index of the old UNIQUE constraint (SQLite's own; PostgreSQL's, which version 22 folds into
    # runs_occurrence)
    assert lost <= {"sqlite_autoindex_runs_2", "runs_one_per_occurrence"}
    rule = dict(v7["indexes"])["runs_occurrence"]
    assert "UNIQUE" in rule and "'manual'" in rule  # the rule, for every run but manual ones
    assert _listed(store, s.id) == runs  # every column of every run kept
    assert runs[1].phase is RunPhase.COMPLETED and runs[1].output == {"rows": [1, 2]}
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
