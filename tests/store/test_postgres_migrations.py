"""PostgreSQL: an upgrade that builds an index lets writes go on meanwhile (``CREATE INDEX CONCURRENTLY``, versions
16, 22 and 26), and a build stopped half way is built again by the next try (``store/postgres/schema.py``).

Each test brings a fresh schema to version 25, as the release before 26 left it, and holds a write open on
``schedules`` in a transaction of its own (``Writer``): a plain ``CREATE INDEX`` waits for it, and every write
asked for after that waits behind the build; an index built concurrently waits for it too, but writes go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import psycopg
import pytest
from storekit import PG_URL, Backend, pg_admin, with_query

from ductape_jobs.errors import StoreError
from ductape_jobs.store.postgres.schema import concurrent_steps
from ductape_jobs.store.sql import load_migrations

HOLD = "UPDATE schedules SET reason = reason WHERE false"  # takes the table's write lock, changes nothing


class Writer:
    """A transaction that has written to ``schedules`` and stays open until ``commit()``."""

    def __init__(self, schema: str) -> None:
        self.conn = psycopg.connect(PG_URL, options=f"-c search_path={schema}")
        self.conn.execute(HOLD)

    def commit(self) -> None:
        self.conn.commit()
        self.conn.close()


@pytest.fixture
def at_25(pg_backend: Backend) -> Backend:
    pg_backend.migrate_to(25)
    return pg_backend


@pytest.fixture
def writer(at_25: Backend) -> Iterator[Writer]:
    """Closed at the end whatever the test did: a build waiting for it would hold the schema's drop."""
    assert at_25.schema is not None
    held = Writer(at_25.schema)
    yield held
    held.conn.close()


def migrating(backend: Backend) -> tuple[threading.Thread, list[BaseException]]:
    """``migrate()`` of a store opened on ``backend``, in a thread; what it raised, if anything, lands in the list."""
    store = backend.open(migrate=False)
    failed: list[BaseException] = []

    def go() -> None:
        try:
            store.migrate()
        except BaseException as exc:  # the test reads it
            failed.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, failed


def migrating_process(backend: Backend) -> subprocess.Popen[bytes]:
    """Another process migrating a store opened on ``backend``."""
    code = "import sys; from ductape_jobs.store import open_store; open_store(sys.argv[1]).migrate()"
    return subprocess.Popen([sys.executable, "-c", code, backend.url])


def upgraded(backend: Backend, thread: threading.Thread, failed: list[BaseException]) -> None:
    """The migrating thread ends without an error, version 26 recorded once, ``schedules_time`` valid."""
    thread.join(30)
    assert not thread.is_alive() and failed == []
    assert index_valid(backend.schema or "", "schedules_time") is True
    assert backend.snapshot()["versions"].count(26) == 1


def building(schema: str) -> int:
    """The server process of the store's connection that waits in ``CREATE INDEX ... schedules_time`` (it waits for
    the writer), once there is one (10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = pg_admin(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'"
            " AND query ILIKE %s",
            [schema, "%CREATE%INDEX%schedules_time%"],
        )
        if rows:
            return int(rows[0][0])
        time.sleep(0.02)
    raise AssertionError("the migration never started building schedules_time")


def index_valid(schema: str, name: str) -> bool | None:
    """Whether index ``name`` is valid (``None``: there is none)."""
    rows = pg_admin("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [f"{schema}.{name}"])
    return bool(rows[0][0]) if rows else None


def within(seconds: float, done: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.02)
    return done()


def test_writes_go_on_while_an_upgrade_builds_an_index(at_25: Backend, writer: Writer) -> None:
    schema = at_25.schema
    assert schema is not None
    thread, failed = migrating(at_25)
    building(schema)  # its build waits for the open write
    # another process writes meanwhile: a plain CREATE INDEX, queued for the table's lock, would hold it (lock_timeout)
    with psycopg.connect(PG_URL, options=f"-c search_path={schema} -c lock_timeout=2000") as other:
        other.execute(HOLD)
        other.commit()
    assert thread.is_alive()  # still waiting for the first writer, as any build must
    writer.commit()
    upgraded(at_25, thread, failed)


def test_a_build_whose_server_process_was_killed_is_dropped_and_built_again(at_25: Backend, writer: Writer) -> None:
    """The migrating connection's server process killed mid-build leaves ``schedules_time`` invalid: the store's
    retry drops it and builds it again (``IF NOT EXISTS`` alone would record version 26 over an invalid index)."""
    schema = at_25.schema
    assert schema is not None
    thread, failed = migrating(at_25)
    pid = building(schema)
    assert index_valid(schema, "schedules_time") is False  # in the catalog, not built yet
    assert pg_admin("SELECT pg_terminate_backend(%s)", [pid]) == [(True,)]
    # the retry (another connection) waits for the writer too, now to drop the invalid index
    assert within(
        10,
        lambda: bool(
            pg_admin(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock' AND pid <> %s",
                [schema, pid],
            )
        ),
    )
    writer.commit()
    upgraded(at_25, thread, failed)


def test_a_process_killed_while_it_builds_an_index_leaves_an_upgrade_the_next_process_completes(
    at_25: Backend, writer: Writer
) -> None:
    """SIGKILL of a process whose migration waits to build ``schedules_time``: its server process goes on with the
    build, holding the migration's lock, until it ends; the next process waits for it, then records the version."""
    schema = at_25.schema
    assert schema is not None
    child = migrating_process(at_25)
    try:
        building(schema)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    assert 26 not in at_25.snapshot()["versions"]
    thread, failed = migrating(at_25)
    time.sleep(0.3)
    assert thread.is_alive()  # the killed process's build still holds the lock
    writer.commit()
    upgraded(at_25, thread, failed)


def test_a_paused_process_holding_the_migration_lock_loses_it_and_the_next_process_completes(
    at_25: Backend, writer: Writer
) -> None:
    """SIGSTOP (a VM's pause) of a process that holds the migration's lock: its session, idle once its build is done,
    ends after ``IDLE_IN_TRANSACTION`` (``idle_session_timeout``), and another process applies what is left. A
    session's lock sat idle outside a transaction is not ended by ``idle_in_transaction_session_timeout``: every
    other start waited for good."""
    schema = at_25.schema
    assert schema is not None
    child = migrating_process(at_25)
    try:
        building(schema)
        os.kill(child.pid, signal.SIGSTOP)
        writer.commit()  # its build ends server-side; the paused process never sends the version's record
        thread, failed = migrating(at_25)
        upgraded(at_25, thread, failed)
    finally:
        child.kill()
        child.wait(10)


def test_a_new_store_is_made_without_waiting_for_a_transaction_elsewhere_in_the_database(pg_backend: Backend) -> None:
    """A build ``CONCURRENTLY`` waits for every older snapshot of the database (a report's, a ``pg_dump``'s), even on
    a table made a moment before: a new store's indexes are built plainly, and the same as an upgrade's."""
    with psycopg.connect(PG_URL) as report:
        report.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        report.execute("SELECT count(*) FROM pg_class")  # its snapshot holds until it ends
        thread, failed = migrating(pg_backend)
        thread.join(20)
        made = not thread.is_alive()
        report.rollback()
    thread.join(30)
    assert made and failed == []
    assert pg_backend.snapshot()["versions"] == [v for v, _ in migrations()]
    assert index_valid(pg_backend.schema or "", "schedules_time") is True


def test_a_statement_timeout_of_the_url_does_not_cancel_an_upgrades_index_build(at_25: Backend, writer: Writer) -> None:
    """A ``statement_timeout`` (here the URL's ``options``; a role's setting, ``PGOPTIONS``) shorter than the build's
    wait cancelled it, each retry again, and the upgrade failed (``canceling statement due to statement timeout``)."""
    schema = at_25.schema
    assert schema is not None
    short = replace(at_25, url=with_query(at_25.url, options="-c%20statement_timeout%3D500"), opened=[])
    thread, failed = migrating(short)
    building(schema)
    time.sleep(3)  # the build waits past the timeout, and past every retry of it
    writer.commit()
    upgraded(short, thread, failed)
    short.close_all()


def test_processes_starting_together_while_an_index_builds_take_turns_without_a_deadlock(
    at_25: Backend, writer: Writer, caplog: pytest.LogCaptureFixture
) -> None:
    """A second process waits for the first's migration lock while the first builds: the build waits for every
    transaction older than it, so a waiter blocked in one statement (``pg_advisory_lock``) would be waited for while it
    waits for the builder. Both finish, each version applied once."""
    schema = at_25.schema
    assert schema is not None
    first, first_failed = migrating(at_25)
    building(schema)
    second, second_failed = migrating(at_25)
    time.sleep(1.5)  # past deadlock_timeout (1 s): a deadlock would have been found and one of them aborted
    writer.commit()
    first.join(30)
    second.join(30)
    assert not first.is_alive() and not second.is_alive()
    assert first_failed == [] and second_failed == []
    assert not [r for r in caplog.records if "deadlock" in r.getMessage()]  # nor one broken and retried
    versions = at_25.snapshot()["versions"]
    assert versions == sorted(set(versions)) and versions[-1] == max(v for v, _ in migrations())
    assert index_valid(schema, "schedules_time") is True


def migrations() -> list[tuple[int, str]]:
    return load_migrations("ductape_jobs.store.postgres.migrations")


def test_the_index_migrations_are_applied_concurrently_and_hold_only_index_statements() -> None:
    concurrent = {v for v, script in migrations() if concurrent_steps(script) is not None}
    assert concurrent == {16, 22, 26}
    steps = concurrent_steps(dict(migrations())[22])
    assert steps is not None and [s.split()[0] for s in steps] == ["CREATE", "DROP", "DROP"]  # built before the drops


def test_a_concurrent_migration_holding_another_statement_is_refused() -> None:
    mark = "-- ductape-jobs: concurrently\n"
    script = mark + "CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON t (x);\nALTER TABLE t ADD y int;"
    with pytest.raises(StoreError, match="only index builds and drops"):
        concurrent_steps(script)
    with pytest.raises(StoreError):  # without IF NOT EXISTS a second try would fail on the first's index
        concurrent_steps(mark + "CREATE INDEX CONCURRENTLY a ON t (x);")
    assert concurrent_steps("CREATE INDEX a ON t (x);") is None  # unmarked: one transaction
