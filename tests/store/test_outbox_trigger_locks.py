"""PostgreSQL: changing the outbox's triggers (the first webhook or live stream creates them, the last one's end drops
them) and the first live stream's wait for writers take locks on runs and schedules. A lock request waiting behind
a long transaction would make every later writer of those tables wait behind it in turn, so the store asks for
them in short tries: other writers go on meanwhile, a drop that meets a long transaction is left for later (and
done by ``expire_streams``), and a creation keeps trying, since a webhook or a stream must not miss events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import psycopg
from storekit import PG_URL, Backend
from test_contract import T0
from test_outbox_store import hook, outbox_triggers

from ductape_jobs.lifecycle import StreamStart
from ductape_jobs.models import Webhook

STREAM_LEASE = timedelta(seconds=30)


def connect(backend: Backend, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(PG_URL, autocommit=autocommit, options=f"-c search_path={backend.schema}")


def wait_until_trying(watcher: psycopg.Connection[tuple[object, ...]], what: str) -> None:
    """Until some other session runs a statement that names ``what`` (the store's call is under way)."""
    deadline = time.monotonic() + 10
    while not watcher.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active' AND query LIKE %s",
        [f"%{what}%"],
    ).fetchone():
        assert time.monotonic() < deadline, f"no session ran {what}"
        time.sleep(0.02)


def other_writers_go_on(backend: Backend) -> None:
    """A writer of runs and of schedules, in its own session, ends within 5 s (it would wait as long as the long
    transaction lasts if it were queued behind a lock request that waits for that transaction)."""
    with connect(backend, autocommit=True) as other:
        other.execute("SET statement_timeout = '5s'")
        other.execute("UPDATE runs SET phase = phase WHERE false")  # ROW EXCLUSIVE, as an INSERT takes
        other.execute("UPDATE schedules SET status = status WHERE false")


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    done: list[object] = []
    thread = threading.Thread(target=lambda: done.append(call()))
    thread.start()
    return thread, done


def test_postgres_dropping_the_triggers_gives_way_to_a_long_transaction_and_is_done_later(pg_backend: Backend) -> None:
    store = pg_backend.open()
    made: Webhook = hook(store)
    assert outbox_triggers(pg_backend)
    reader = connect(pg_backend)
    try:
        reader.execute("SELECT count(*) FROM runs")  # a long transaction that read runs (its lock lasts until it ends)
        deleting, done = in_thread(lambda: store.delete_webhook(made.id))
        deleting.join(timeout=5)
        assert done, "deleting the last webhook waited for the long transaction"
        assert store.list_webhooks() == []
        assert outbox_triggers(pg_backend)  # they stayed: dropping them needs the strongest lock
        other_writers_go_on(pg_backend)
        assert store.expire_streams(T0) == 0  # the transaction still holds runs: it gives way again
        assert outbox_triggers(pg_backend)
    finally:
        reader.rollback()
        reader.close()
    deleting.join(timeout=10)
    assert store.expire_streams(T0) == 0  # no stream lapsed, but the triggers nobody wants go now
    assert outbox_triggers(pg_backend) == set()
    assert store.expire_streams(T0) == 0  # and then there is nothing left to do


def test_postgres_creating_the_triggers_behind_a_long_writer_lets_other_writers_through(pg_backend: Backend) -> None:
    store = pg_backend.open()
    long = connect(pg_backend)
    watcher = connect(pg_backend, autocommit=True)
    try:
        long.execute("LOCK TABLE runs IN ROW EXCLUSIVE MODE")  # a writer in a long transaction
        adding, added = in_thread(lambda: hook(store))
        wait_until_trying(watcher, "ductape_outbox_sync")
        other_writers_go_on(pg_backend)
        assert not added  # it keeps trying: a webhook must not miss events
        long.commit()
        adding.join(timeout=10)
    finally:
        long.close()
        watcher.close()
    assert added
    assert outbox_triggers(pg_backend) == {"outbox_run", "outbox_schedule"}


def test_postgres_the_first_stream_behind_a_long_writer_lets_other_writers_through(pg_backend: Backend) -> None:
    store = pg_backend.open()
    hook(store, ["job.completed"])  # the triggers exist: the first stream waits for writers in flight
    long = connect(pg_backend)
    watcher = connect(pg_backend, autocommit=True)
    try:
        long.execute("LOCK TABLE schedules IN ROW EXCLUSIVE MODE")
        opening, opened = in_thread(lambda: store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0))
        wait_until_trying(watcher, "ductape_lock_runs")
        other_writers_go_on(pg_backend)
        assert not opened
        long.commit()
        opening.join(timeout=10)
    finally:
        long.close()
        watcher.close()
    assert len(opened) == 1 and isinstance(opened[0], StreamStart)
