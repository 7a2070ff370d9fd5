"""What only the PostgreSQL store does: the ``schema`` option, connection loss and retries, error translation,
LISTEN/NOTIFY. (The contract itself is checked on both backends by ``test_contract.py``.)"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq
from storekit import PG_URL, Backend, pg_admin, require_postgres, with_query

from ductape_jobs.errors import ConflictError, StoreError, ValidationError
from ductape_jobs.inputs import JobDefinition
from ductape_jobs.models import NewRun, RunFilter, RunPhase, Schedule, ScheduleStatus, TriggeredBy
from ductape_jobs.store import Advance, DueSchedule, open_store
from ductape_jobs.store.base import Change
from ductape_jobs.store.postgres import PostgresStore
from ductape_jobs.store.postgres.connection import POOL_LINES_EVERY, Listener

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def job(tag: str = "report") -> JobDefinition:
    return JobDefinition(name=tag.title(), tag=tag, event_type="FUNCTION", event_tag=tag)


def schedule(sid: str, next_run_at: datetime | None = T0) -> Schedule:
    return Schedule(sid, "report", "prd", "shop", {}, 0, ScheduleStatus.ACTIVE, T0, next_run_at, 0, T0, every=MIN)


def run(sid: str, at: datetime = T0) -> NewRun:
    return NewRun(f"run_{secrets.token_hex(8)}", sid, at, at, RunPhase.QUEUED, TriggeredBy.SCHEDULE)


def terminate(application_name: str, state: str | None = None) -> int:
    """Kill the server processes of the store's connections (as a restart or a network cut would)."""
    query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
    params: list[str] = [application_name]
    if state is not None:
        query += " AND state = %s"
        params.append(state)
    return len(pg_admin(query, params))


def test_capabilities() -> None:
    caps = PostgresStore.capabilities
    assert (caps.listen_notify, caps.skip_locked, caps.multi_process) == (True, True, True)


def test_the_schema_option_isolates_stores_and_migrate_creates_it() -> None:
    require_postgres()
    names = [f"t_{secrets.token_hex(6)}" for _ in range(2)]
    stores = [open_store(with_query(PG_URL, schema=name)) for name in names]
    try:
        for store in stores:
            store.migrate()  # creates the schema too
        stores[0].create_job(job("only-here"), T0)
        assert stores[0].get_job("", "only-here") is not None
        assert stores[1].get_job("", "only-here") is None
        assert {
            r[0] for r in pg_admin("SELECT table_schema FROM information_schema.tables WHERE table_name = 'runs'")
        } >= set(names)
        keyword = PostgresStore(PG_URL, schema=names[1])
        try:
            assert keyword.schema == names[1] and keyword.list_jobs() == []
        finally:
            keyword.close()
    finally:
        for store in stores:
            store.close()
        for name in names:
            pg_admin(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def test_a_schema_name_must_be_a_plain_identifier() -> None:
    with pytest.raises(ValidationError, match="schema"):
        PostgresStore(with_query(PG_URL, schema="x;drop"))


def test_an_unreachable_server_is_a_store_error() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot connect") as info:
        PostgresStore("postgresql://postgres@127.0.0.1:1/test?pool_timeout=1")
    assert time.monotonic() - started < 10
    assert "Connection refused" in str(info.value)  # libpq's reason, in the message, masked
    assert info.value.__cause__ is None and info.value.__suppress_context__  # its text may quote the password


def test_driver_errors_are_translated_with_their_cause(pg_backend: Backend) -> None:
    store = pg_backend.open()
    store.create_job(job(), T0)
    with pytest.raises(ConflictError, match="report") as dup:
        store.create_job(job(), T0)
    assert isinstance(dup.value.__cause__, psycopg.errors.UniqueViolation)
    pg_admin(f"DROP TABLE {pg_backend.schema}.runs")
    with pytest.raises(StoreError) as broken:
        store.count_runs()
    assert isinstance(broken.value.__cause__, psycopg.errors.UndefinedTable)


def test_calls_survive_lost_idle_connections(pg_backend: Backend) -> None:
    store = pg_backend.open()
    store.create_job(job(), T0)
    assert terminate(pg_backend.schema or "") >= 1
    assert store.get_job("", "report") is not None  # the pool notices the dead connection and opens another
    store.add_schedules([schedule("s1", None)], [run("s1")])
    assert store.count_runs() == {RunPhase.QUEUED: 1}


def test_a_read_of_one_statement_is_sent_outside_a_transaction_block(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One round trip, not three (BEGIN, the statement, COMMIT): a worker reads when something is next due at each
    pass, and every GET of the API reads. A read of several statements stays one transaction."""
    from ductape_jobs.store.postgres.dialect import PostgresTx

    store = pg_backend.open()
    store.create_job(job(), T0)
    store.add_schedules([schedule("s1", None)], [run("s1")])
    (queued,) = store.list_runs(RunFilter())
    seen: list[tuple[str, pq.TransactionStatus]] = []
    one, every = PostgresTx.one, PostgresTx.all

    def spy_one(tx: PostgresTx, name: str, params: Any = None) -> Any:
        seen.append((name, tx._conn.info.transaction_status))
        return one(tx, name, params)

    def spy_all(tx: PostgresTx, name: str, params: Any = None) -> Any:
        seen.append((name, tx._conn.info.transaction_status))
        return every(tx, name, params)

    monkeypatch.setattr(PostgresTx, "one", spy_one)
    monkeypatch.setattr(PostgresTx, "all", spy_all)
    assert store.next_wakeup().run_due == T0
    assert store.get_schedule("s1") is not None
    assert [r.id for r in store.list_runs(RunFilter())] == [queued.id]
    assert store.get_job("", "report") is not None
    alone = {name: status for name, status in seen}
    assert alone == dict.fromkeys(["next_wakeup", "get_schedule", "list_runs", "get_job"], pq.TransactionStatus.IDLE)
    seen.clear()
    assert store.get_run(queued.id) is not None  # the run and its attempts: two statements, one transaction
    assert {status for _, status in seen} == {pq.TransactionStatus.INTRANS}


def test_a_page_is_planned_for_its_own_values_at_every_call_never_prepared(pg_backend: Backend) -> None:
    """A prepared statement may be switched to its generic plan after five calls, which guesses the page's OFFSET and
    cursor: ``GET /runs?after=`` then read every older run into a sort (80 ms a page on 100,000 runs, not 1 ms). Other
    reads are prepared, as psycopg does once a statement has run a few times."""
    import psycopg
    from psycopg.rows import dict_row

    from ductape_jobs.store.postgres.dialect import PLANNED_EACH_CALL, PostgresTx

    pages = {"list_runs", "list_runs_of_job", "list_schedules", "list_feature_runs", "list_deliveries"}
    assert pages <= PLANNED_EACH_CALL
    pg_backend.open()
    options = f"-c search_path={pg_backend.schema}"
    with psycopg.connect(PG_URL, autocommit=True, options=options, row_factory=dict_row) as conn:
        tx = PostgresTx(conn, "ductape")
        page = {"schedule_id": None, "job_tag": None, "product_tag": None, "env": None, "phase": None}
        page |= {"since": None, "until": None, "limit": 50, "offset": 0, "after_at": 2**62, "after_id": ""}
        for _ in range(10):
            tx.all("list_runs", page)
            tx.one("get_run", {"id": "run_none"})
        prepared = [r["statement"] for r in conn.execute("SELECT statement FROM pg_prepared_statements")]
    assert any("LEFT JOIN limit_holds" in text for text in prepared), prepared  # get_run: the test sees it
    assert not any("OFFSET" in text for text in prepared), prepared


def test_a_read_of_one_statement_is_retried_after_a_lost_connection(pg_backend: Backend) -> None:
    store = pg_backend.open()
    store.create_job(job(), T0)
    store.add_schedules([schedule("s1")], [])
    assert terminate(pg_backend.schema or "") >= 1
    assert store.next_wakeup().schedule_due == T0  # the pool's dead connection: tried again on a new one


def test_a_call_cut_off_before_commit_is_retried(pg_backend: Backend) -> None:
    store = pg_backend.open()
    store.create_job(job(), T0)
    store.add_schedules([schedule("s1")], [])
    calls: list[int] = []

    def planner(due: DueSchedule) -> Advance:
        calls.append(1)
        if len(calls) == 1:  # the connection dies while the transaction is open
            assert terminate(pg_backend.schema or "", state="idle in transaction") == 1
        s = due.schedule
        return Advance(s.id, T0, T0 + MIN, False, [run(s.id)], last_due_at=T0)

    created = store.advance_due(T0, 10, planner)
    assert len(calls) == 2 and len(created) == 1
    assert [r.id for r in store.list_runs(RunFilter())] == [created[0].id]
    assert store.get_schedule("s1").next_run_at == T0 + MIN  # type: ignore[union-attr]


def test_a_transaction_left_idle_is_ended_by_the_server_and_its_schedules_freed(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker paused inside a transaction (SIGSTOP, a VM's pause) held the row locks of the schedules it was
    advancing until it woke: the other workers' ticks skipped them (SKIP LOCKED) and their occurrences were missed
    while those workers ran (a probe: 22 of 500 ms in 12 s). The server ends a transaction idle past
    ``IDLE_IN_TRANSACTION``, and another worker advances the schedule; the paused one's retry finds it done."""
    from ductape_jobs.store.postgres import connection

    monkeypatch.setattr(connection, "IDLE_IN_TRANSACTION", timedelta(milliseconds=300))
    paused, other = pg_backend.open(), pg_backend.open()
    paused.create_job(job(), T0)
    paused.add_schedules([schedule("s1")], [])
    seen: list[list[str]] = []

    def advance(due: DueSchedule) -> Advance:
        return Advance(due.schedule.id, T0, T0 + MIN, False, [run(due.schedule.id)], last_due_at=T0)

    def pausing(due: DueSchedule) -> Advance:
        if not seen:  # the first try holds s1's row lock: the other worker skips it, then the server ends this one
            seen.append([r.schedule_id for r in other.advance_due(T0, 10, advance)])
            time.sleep(1.5)  # the server's timeout, not this test's clock: paused inside the transaction
            seen.append([r.schedule_id for r in other.advance_due(T0, 10, advance)])
        return advance(due)

    assert paused.advance_due(T0, 10, pausing) == []  # its retry: s1 is no longer due
    assert seen == [[], ["s1"]]
    assert paused.count_runs() == {RunPhase.QUEUED: 1}
    assert paused.get_schedule("s1").next_run_at == T0 + MIN  # type: ignore[union-attr]


def test_without_retries_a_lost_connection_is_a_store_error(pg_backend: Backend) -> None:
    store = PostgresStore(pg_backend.url, retries=0)
    pg_backend.opened.append(store)
    store.migrate()
    store.create_job(job(), T0)
    store.add_schedules([schedule("s1")], [])

    def planner(due: DueSchedule) -> Advance:
        terminate(pg_backend.schema or "", state="idle in transaction")
        return Advance("s1", T0, T0 + MIN, False, [run("s1")], last_due_at=T0)

    with pytest.raises(StoreError) as info:
        store.advance_due(T0, 10, planner)
    assert isinstance(info.value.__cause__, psycopg.OperationalError)
    assert store.count_runs() == {}  # rolled back
    assert store.get_schedule("s1").next_run_at == T0  # type: ignore[union-attr]


def test_listeners_are_notified_when_runs_become_due(pg_backend: Backend) -> None:
    listener, writer = pg_backend.open(), pg_backend.open()
    assert isinstance(listener, PostgresStore)
    writer.create_job(job(), T0)
    writer.add_schedules([schedule("s1", None)], [])
    assert listener.wait_for_change(timedelta(milliseconds=10)) is None  # listening from now on
    woke: list[Change | None] = []
    waiting = threading.Thread(target=lambda: woke.append(listener.wait_for_change(timedelta(seconds=10))))
    waiting.start()
    writer.trigger("s1", run("s1"))
    waiting.join(timeout=15)
    assert woke == [Change(due=None)]  # due now


def test_a_write_of_schedules_tells_listeners_when_the_first_of_them_falls_due(pg_backend: Backend) -> None:
    """The NOTIFY of ``add_schedules`` carries the earliest due time it wrote (a first run's, else a schedule's next
    occurrence), so that a worker does not read the store for a schedule due after its own next read."""
    listener, writer = pg_backend.open(), pg_backend.open()
    writer.create_job(job(), T0)
    assert listener.wait_for_change(timedelta(milliseconds=10)) is None  # listening from now on
    writer.add_schedules([schedule("late", T0 + 5 * MIN), schedule("later", T0 + 9 * MIN)], [])
    assert listener.wait_for_change(timedelta(seconds=10)) == Change(due=T0 + 5 * MIN)
    writer.add_schedules([schedule("now", T0 + MIN)], [run("now", T0)])  # its first run is due at T0
    assert listener.wait_for_change(timedelta(seconds=10)) == Change(due=T0)
    writer.add_schedules([schedule("done", None)], [])  # nothing falls due: said as now, as before
    assert listener.wait_for_change(timedelta(seconds=10)) == Change(due=None)
    assert listener.wait_for_change(timedelta(milliseconds=50)) is None


def test_notices_read_together_are_each_heard_the_earliest_or_now_winning(pg_backend: Backend) -> None:
    """A review: the listener kept the first notification of a read and dropped the rest, so a far schedule's notice
    read with a due-now one behind it (two commits between two waits, or a schedule_many's parts) hid the due-now
    one, and a worker ignoring the far one started the due run a poll late."""
    listener, writer = pg_backend.open(), pg_backend.open()
    writer.create_job(job(), T0)
    assert listener.wait_for_change(timedelta(milliseconds=10)) is None  # listening from now on
    writer.add_schedules([schedule("far", T0 + 60 * MIN)], [])
    writer.add_schedules([schedule("now", T0 + MIN)], [run("now", T0)])
    writer.add_schedules([schedule("soon", T0 + 5 * MIN)], [])
    time.sleep(0.3)  # all three delivered before the listener reads: one read holds them
    heard: list[Change] = []
    while (change := listener.wait_for_change(timedelta(milliseconds=300))) is not None:
        heard.append(change)
    assert heard == [Change(due=T0)]  # the earliest of the three
    writer.add_schedules([schedule("later", T0 + 9 * MIN)], [])
    writer.trigger("far", run("far", T0 + 2 * MIN))  # said as now
    time.sleep(0.3)
    assert listener.wait_for_change(timedelta(seconds=10)) == Change(due=None)


def test_a_listener_whose_server_never_answers_gives_up_within_seconds_not_libpq_s_130() -> None:
    """A review: the listener's connection had no connect_timeout, so a worker stopping while its database's host
    dropped packets waited up to libpq's 130 s to join its listener. A socket that accepts and never answers."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the handshake completes; nothing is ever said
    try:
        listener = Listener(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/test", "ductape_jobs_x")
        ended: list[BaseException | list[str]] = []

        def wait() -> None:
            try:
                ended.append(listener.wait(timedelta(milliseconds=500)))
            except BaseException as exc:
                ended.append(exc)

        waiting = threading.Thread(target=wait, daemon=True)
        waiting.start()
        waiting.join(timeout=20)
        assert not waiting.is_alive(), "the listener still waits for a server that never answers"
        assert len(ended) == 1 and isinstance(ended[0], StoreError) and "LISTEN failed" in str(ended[0])
        listener.close()
    finally:
        silent.close()


@pytest.mark.parametrize("payload", ["", "soon", "\uff11\uff12", "-5", "9" * 40, "9" * 5000])
def test_a_notification_whose_payload_names_no_time_is_taken_as_due_now(pg_backend: Backend, payload: str) -> None:
    """An older release's empty payload, or another program's text on the channel: wake now (nothing is missed)."""
    listener = pg_backend.open()
    assert isinstance(listener, PostgresStore)
    assert listener.wait_for_change(timedelta(milliseconds=10)) is None  # listening from now on
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", [listener._d.channel, payload])  # type: ignore[attr-defined]
    assert listener.wait_for_change(timedelta(seconds=10)) == Change(due=None)


HOT = [
    "due_schedules",
    "acquire_runs",
    "next_wakeup",
    "expired_leases",
    "overlap_state",
    "release_held_runs",
    "lock_buffer_one_schedules",
    "list_runs_of_schedule",
    "list_runs_of_job",
    "list_failed_runs",
    "list_feature_runs_of_feature",
    "schedule_history",
    # an operator's reads at a million schedules and runs (a probe: a seq scan and a sort spilling 200 MB to disk)
    "list_live_runs",
    "list_runs",  # newest first, from the newest or past a run (after=)
    "list_schedules",
    "list_feature_runs",  # newest first, from the newest or past a feature run (after=)
    "list_deliveries",  # a webhook's, newest first, from the newest or past a delivery (after=)
    "run_stats",
]


@pytest.mark.parametrize("name", HOT)
def test_hot_query_can_use_an_index(pg_backend: Backend, name: str) -> None:
    from ductape_jobs.store.postgres.dialect import Q

    pg_backend.open()
    params = {
        "now": 1,
        "due_by": 1,
        "limit": 10,
        "worker_id": "w",
        "lease_until": 2,
        "ids": ["s"],
        "schedule_ids": ["s"],
        "run_ids": ["r"],
        "schedule_id": "s",
        "job_tag": "j",
        "product_tag": None,
        "env": None,
        "phase": None,
        "since": None,
        "until": None,
        "offset": 0,
        "after_at": 2**62,  # a page past a run: its due time and id (list_runs)
        "after_id": "",
        "feature_tag": "f",
        "webhook_id": "w",
        "status": None,
        "job_product": None,
        "max_bytes": 8_000_000,
    }
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {pg_backend.schema}")
        conn.execute("SET enable_seqscan = off")  # a scan that remains has no index to use instead
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + Q[name], params))
    assert "Seq Scan" not in plan, plan


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("/no_such_database_here", 'database "no_such_database_here" does not exist'),
        ("/test?user=no_such_role_here", 'role "no_such_role_here" does not exist'),
        ("/test?sslmode=bogus", 'invalid sslmode value: "bogus"'),
    ],
)
def test_a_connection_refused_for_good_is_a_store_error_at_once(
    where: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With the server's (or libpq's) reason, before the pool's retries: a database, role or parameter no wait
    fixes failed only at the pool's timeout (10 s by default), after a logged retry every few seconds."""
    require_postgres()
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as refused:
        PostgresStore(PG_URL.rsplit("/", 1)[0] + where)
    assert reason in str(refused.value)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("psycopg.pool")] == []  # no retry made


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://postgres:Sup3r%zz@127.0.0.1:5432/test", "invalid percent-encoded token"),
        ("postgresql://postgres:two words@127.0.0.1:5432/test", "unexpected spaces found"),
    ],
)
def test_a_url_libpq_cannot_read_is_refused_at_once(url: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    """libpq refuses such a URL before it connects, and always will: the store logged that it was waiting for the
    server and failed only at the pool's timeout (10 s)."""
    require_postgres()
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreError, match=reason):
        PostgresStore(url)
    assert [r.getMessage() for r in caplog.records if " yet (" in r.getMessage()] == []  # no wait announced


@pytest.mark.parametrize(
    ("password", "url"),
    [
        ("Sup3r%zzStoreSecret", "postgresql://postgres:Sup3r%zzStoreSecret@127.0.0.1:5432/postgres?pool_timeout=1"),
        ("Other Store Secret", "postgresql://postgres:Other Store Secret@127.0.0.1:5432/postgres?pool_timeout=1"),
        ("ThirdStoreSecret", "postgresql://postgres:ThirdStoreSecret@[::1/postgres"),
        # an unescaped "@": libpq reads the password to the first, and named the rest as the host it could not find
        ("rd9999Secret", "postgresql://postgres:Pw@rd9999Secret@127.0.0.1:5432/postgres?pool_timeout=1"),
    ],
)
def test_the_store_urls_password_is_masked_where_libpq_quotes_it(
    password: str, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """libpq quotes a password it cannot read: the store's error and its "waiting" log line showed it, beside the
    URL redact_url had masked (an unclosed "[" was a ValueError naming nothing)."""
    require_postgres()
    with caplog.at_level(logging.DEBUG), pytest.raises((StoreError, ValidationError)) as refused:
        PostgresStore(url)
    texts = [str(refused.value)] + [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if password in t], texts
    assert "postgres:***@" in str(refused.value) or "postgresql://***@" in str(refused.value)


def test_a_password_with_an_unescaped_question_mark_is_not_quoted_as_a_parameter() -> None:
    """The authority ends at the "?": what follows read as a parameter's name, which the refusal quoted."""
    with pytest.raises(ValidationError) as refused:
        PostgresStore("postgresql://postgres:Se?cretPw99@127.0.0.1:5432/postgres")
    assert refused.value.field == "store" and "unknown parameter" in refused.value.rule
    assert "cretPw99" not in str(refused.value) and "[secret]" in str(refused.value)


def test_next_wakeup_finds_the_earliest_run_no_limit_holds_from_one_index_entry(pg_backend: Backend) -> None:
    """Not a bitmap scan of every pending run to filter ``held_until`` (the planner's choice through runs_pending
    while the new column had no statistics): ``runs_due`` holds exactly those runs, read in order."""
    from ductape_jobs.store.postgres.dialect import Q

    pg_backend.open()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {pg_backend.schema}")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + Q["next_wakeup"]))
    assert "Index Only Scan using runs_due on runs" in plan, plan
    assert "Bitmap" not in plan, plan


def test_a_server_not_up_yet_is_waited_for_saying_so_once(caplog: pytest.LogCaptureFixture) -> None:
    """psycopg_pool logged each failed try while the pool opened (``error connecting in 'ductape-jobs': ...``, five
    lines in 10 s before the error); the store says once that it waits, and the error says why it gave up."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with caplog.at_level(logging.INFO), pytest.raises(StoreError, match="Connection refused") as failed:
        PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/test?pool_timeout=3")
    assert "cannot connect to PostgreSQL" in str(failed.value)
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert [name for name, _ in lines] == ["ductape_jobs.store.postgres"], lines
    assert lines[0][1].endswith("Connection refused): waiting 3 s for it"), lines


@pytest.fixture
def limited_role() -> Iterator[str]:
    """A role that may hold two connections, and one that may not log in: made for a test, dropped after it."""
    require_postgres()
    suffix = secrets.token_hex(4)
    roles = (f"dj_two_{suffix}", f"dj_nologin_{suffix}")
    pg_admin(f"CREATE ROLE {roles[0]} LOGIN CONNECTION LIMIT 2")
    pg_admin(f"CREATE ROLE {roles[1]} NOLOGIN")
    try:
        yield suffix
    finally:
        for role in roles:
            pg_admin(f"DROP ROLE IF EXISTS {role}")


def test_why_a_pool_could_not_open_is_in_its_error(limited_role: str, caplog: pytest.LogCaptureFixture) -> None:
    """A role that may not log in is refused at once, as a missing one is (it was waited for, "not up yet"); a pool
    that a one-connection probe could not fail (four connections for a role allowed two) says the last try's
    reason in its error, the pool's own lines being quiet while it opens."""
    base = PG_URL.rsplit("/", 1)[0].replace("postgres@", "{role}@") + "/test"
    started = time.monotonic()
    with pytest.raises(StoreError, match="is not permitted to log in"):
        PostgresStore(base.format(role=f"dj_nologin_{limited_role}") + "?pool_timeout=5")
    assert time.monotonic() - started < 4
    url = base.format(role=f"dj_two_{limited_role}") + "?pool_min=4&pool_max=4&pool_timeout=2"
    with caplog.at_level(logging.INFO), pytest.raises(StoreError, match=r"the last try: .*too many connections"):
        PostgresStore(url)
    assert [r for r in caplog.records if r.name.startswith("psycopg.pool")] == []


def _forwarder() -> Any:
    """``bench/outage.py``'s TCP forwarder to the PostgreSQL on 127.0.0.1:5432 (loaded from its file, as
    test_docs loads the docs' hook): ``down()`` closes it and every connection through it, ``up()`` listens again."""
    spec = importlib.util.spec_from_file_location("bench_outage", Path(__file__).parents[2] / "bench" / "outage.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Forwarder(("127.0.0.1", 5432))


def test_a_call_that_finds_no_connection_fails_after_one_wait_of_the_pools_timeout(pg_backend: Backend) -> None:
    """A new-user probe: during an outage each API request answered 503 after 40 s, its error saying "couldn't get a
    connection after 10.00 sec": psycopg_pool's PoolTimeout is an OperationalError, and the store tried the call again
    (3 retries), each try waiting the pool's timeout again. The pool has waited: the call fails at once."""
    pg_backend.open().close()  # its schema, migrated
    forwarder = _forwarder()
    forwarder.up()
    url = with_query(PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{forwarder.port}"), schema=pg_backend.schema)
    store = PostgresStore(f"{url}&pool_timeout=1&pool_min=1&pool_max=1")
    pool = store._d._db.pool  # type: ignore[attr-defined]
    waits: list[str] = []
    checkout = pool.connection

    @contextlib.contextmanager
    def connection(*args: Any, **kwargs: Any) -> Iterator[Any]:
        waits.append("wait")
        with checkout(*args, **kwargs) as conn:
            yield conn

    try:
        store.next_wakeup()
        forwarder.down()
        with contextlib.suppress(StoreError):
            store.next_wakeup()  # its pooled connection dies: tried again, the pool finds none to make
        pool.connection = connection
        with pytest.raises(StoreError, match="no connection available"):
            store.next_wakeup()
    finally:
        pool.connection = checkout
        store.close()
        forwarder.down()
    assert waits == ["wait"]


def test_the_store_answers_again_soon_after_its_server_is_back(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """After an outage of some seconds the pool's reconnection waited on psycopg_pool's doubling backoff (1, 2, 4,
    8, 16 s ...), so a worker stayed idle long after the server was back (17 s after a 45 s outage) and the
    occurrences due meanwhile were coalesced as misfires. The pool now gives a failing connection up after the
    store's timeout, and the next call connects afresh: the first call after a 20 s outage answers (it waited its
    3 s timeout on a reconnection due 31 s after the first, and failed).

    And the outage is said once, not at each try (a worker logged 61 lines in a 20 s outage): the store's first
    failure, one line of psycopg_pool's, and that it works again."""
    pg_backend.open().close()  # its schema, migrated
    forwarder = _forwarder()
    forwarder.up()
    url = with_query(PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{forwarder.port}"), schema=pg_backend.schema)
    store = PostgresStore(f"{url}&pool_timeout=3&pool_min=1&pool_max=2")
    try:
        store.next_wakeup()
        forwarder.down()
        down = time.monotonic()
        with pytest.raises(StoreError):
            store.next_wakeup()  # the server is gone: the pool's connections die, its reconnection starts
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the outage goes on: calls fail after their timeout
            with contextlib.suppress(StoreError):
                store.next_wakeup()
        forwarder.up()
        away = time.monotonic() - down
        with caplog.at_level(logging.INFO):
            store.next_wakeup()  # the first call after the server is back answers
    finally:
        store.close()
        forwarder.down()
    lines = [(r.name, r.getMessage()) for r in caplog.records if r.name.startswith(("psycopg.pool", "ductape_jobs"))]
    store_lines = [m for name, m in lines if name == "ductape_jobs.store.postgres"]
    pool_lines = [m for name, m in lines if name == "psycopg.pool" and "connecting" in m]
    most = 1 + int(away / POOL_LINES_EVERY)  # the first, and one each 30 s
    assert store_lines[0].startswith("PostgreSQL store call failed (")
    assert all(m.startswith("PostgreSQL store call still failing after ") for m in store_lines[1:-1])
    assert store_lines[-1].startswith("PostgreSQL store call works again, after failing for ")
    assert len(store_lines) <= most + 1 and 1 <= len(pool_lines) <= most, lines
