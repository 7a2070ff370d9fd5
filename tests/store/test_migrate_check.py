"""A store that has every migration starts without the migration's lock: each worker's start checks the
versions with one read, so workers starting together do not queue for the writer (SQLite) or the advisory lock
(PostgreSQL). A database that lacks a version still gets it."""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from storekit import PG_URL, Backend

from ductape_jobs.errors import StoreError
from ductape_jobs.store import Store
from ductape_jobs.store.sql import migration_versions


@contextmanager
def migration_lock_held(backend: Backend) -> Iterator[None]:
    """Another process holds what a migration takes: SQLite's write lock, or PostgreSQL's migration lock."""
    if backend.path is not None:
        db = sqlite3.connect(backend.path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")
            db.close()
        return
    import psycopg

    key = zlib.crc32(f"ductape_jobs:migrate:{backend.schema or ''}".encode())
    with psycopg.connect(PG_URL) as conn:  # a transaction is open until the block ends
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [key])
        yield
        conn.rollback()


def migrating(store: Store) -> threading.Event:
    """``store.migrate()`` in a thread: set when it returns."""
    done = threading.Event()

    def go() -> None:
        store.migrate()
        done.set()

    threading.Thread(target=go, daemon=True).start()
    return done


def migrate_within(store: Store, seconds: float) -> bool:
    """``store.migrate()`` in a thread: did it return within ``seconds``?"""
    return migrating(store).wait(seconds)


def test_a_migrated_database_opens_without_the_migration_lock(backend: Backend) -> None:
    backend.open()  # migrated
    again = backend.open(migrate=False)
    with migration_lock_held(backend):
        assert migrate_within(again, 10)
    assert again.list_jobs() == []


def test_a_database_that_lacks_a_version_still_waits_for_the_lock_and_gets_it(backend: Backend) -> None:
    latest = max(migration_versions(f"ductape_jobs.store.{backend.name}.migrations"))
    backend.migrate_to(latest - 1)
    store = backend.open(migrate=False)
    with migration_lock_held(backend):
        waiting = migrating(store)
        assert not waiting.wait(0.5)  # it needs the lock: it waits
    assert waiting.wait(30)  # the lock is free, and the waiting call got it
    assert backend.snapshot()["versions"][-1] == latest


def test_a_store_a_newer_release_migrated_is_refused_saying_so(backend: Backend) -> None:
    """A process of an older release started on a store a newer one had upgraded (a rolling deploy, a node left
    behind) and ran half-working: every claim failed on a unique index it did not know, its webhooks' events were
    delivered twice or to none. It now refuses at once, saying why."""
    backend.open()
    latest = max(migration_versions(f"ductape_jobs.store.{backend.name}.migrations"))
    backend.execute(f"INSERT INTO schema_migrations VALUES ({latest + 1}, 0)", {})  # as the next release will
    with pytest.raises(StoreError) as err:
        backend.open()
    assert str(err.value) == (
        f"the store's schema is at version {latest + 1}, newer than this release of ductape-jobs knows ({latest}): "
        "a newer release upgraded it; upgrade this one (pip install -U ductape-jobs)"
    )


def test_a_newer_release_that_migrates_while_an_older_one_waits_for_the_lock_is_refused_too(
    backend: Backend,
) -> None:
    """An older process found a version missing and waited for the migration's lock while a newer release, holding
    it, migrated past it: it then found nothing left to apply and started. It is refused, as at once."""
    package = f"ductape_jobs.store.{backend.name}.migrations"
    latest = max(migration_versions(package))
    backend.migrate_to(latest - 1)
    store = backend.open(migrate=False)
    raised: list[BaseException] = []

    def migrate() -> None:
        try:
            store.migrate()
        except BaseException as exc:
            raised.append(exc)

    waiting = threading.Thread(target=migrate)
    if backend.path is not None:
        db = sqlite3.connect(backend.path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")  # the newer release's migration holds the writer
        waiting.start()
        waiting.join(0.5)
        db.execute(f"INSERT INTO schema_migrations VALUES ({latest}, 0), ({latest + 1}, 0)")  # (their scripts aside)
        db.execute("COMMIT")
        db.close()
    else:
        import psycopg

        key = zlib.crc32(f"ductape_jobs:migrate:{backend.schema or ''}".encode())
        with psycopg.connect(PG_URL, options=f"-c search_path={backend.schema}") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [key])
            waiting.start()
            waiting.join(0.5)
            conn.execute(f"INSERT INTO schema_migrations VALUES ({latest}, 0), ({latest + 1}, 0)")
            conn.commit()
    waiting.join(30)
    assert len(raised) == 1 and isinstance(raised[0], StoreError), raised
    assert f"schema is at version {latest + 1}, newer than this release" in str(raised[0])


def test_a_schema_migrations_table_of_another_tool_is_refused_saying_so(backend: Backend) -> None:
    """Another tool's table of the same name (text versions: Rails, dbmate) was a TypeError from the version check."""
    backend.execute("CREATE TABLE schema_migrations (version VARCHAR(255) PRIMARY KEY)", {})
    backend.execute("INSERT INTO schema_migrations VALUES ('20240101000000')", {})
    with pytest.raises(StoreError, match="schema_migrations here is not ductape-jobs'"):
        backend.open()
