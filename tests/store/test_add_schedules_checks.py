"""``add_schedules``' checks of its jobs, which PostgreSQL runs in the server so that the whole call is one round
trip (BEGIN, checks, inserts, NOTIFY and COMMIT in one pipeline): a missing job, a product's own job made
meanwhile and a changed cached definition raise the same typed errors on both stores and write nothing; and on
PostgreSQL a call whose COMMIT's answer was lost is neither lost nor doubled (a TCP proxy cuts the answer)."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from msgspec.structs import replace
from storekit import PG_URL, Backend, CutProxy, pg_admin, with_query

from ductape_jobs import Ductape
from ductape_jobs.errors import NotFoundError, StaleJobError, StoreError, ValidationError
from ductape_jobs.inputs import JobDefinition
from ductape_jobs.job_scheduling import PART
from ductape_jobs.models import NewRun, RunFilter, RunPhase, Schedule, ScheduleStatus, TriggeredBy
from ductape_jobs.store import Store
from ductape_jobs.store.base import SchedulePart
from ductape_jobs.store.codec import job_params, rows_json
from ductape_jobs.store.dialect import Tx
from ductape_jobs.store.postgres import PostgresStore
from ductape_jobs.store.postgres.connection import Database, split_url
from ductape_jobs.store.postgres.dialect import PostgresDialect

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def job(tag: str, product: str | None = None, event_tag: str = "fn", priority: int = 0) -> JobDefinition:
    return JobDefinition(
        name=tag, tag=tag, event_type="FUNCTION", event_tag=event_tag, product_tag=product, priority=priority
    )


def schedule(tag: str, product: str = "shop", job_product: str = "", priority: int | None = None) -> Schedule:
    sid = f"s_{secrets.token_hex(6)}"
    return Schedule(
        sid,
        tag,
        "prd",
        product,
        {},
        0,
        ScheduleStatus.ACTIVE,
        T0,
        None,
        0,
        T0,
        job_product=job_product,
        priority=priority,
    )


def first_run(s: Schedule) -> NewRun:
    return NewRun(f"r_{secrets.token_hex(6)}", s.id, T0, T0, RunPhase.QUEUED, TriggeredBy.SCHEDULE)


def written(store: Store) -> tuple[int, int]:
    return len(store.list_schedules()), len(store.list_runs(RunFilter()))


def test_a_missing_job_is_not_found_and_nothing_is_written(store: Store) -> None:
    store.create_job(job("a"), T0)
    ok, missing = schedule("a"), schedule("ghost")
    with pytest.raises(NotFoundError, match="ghost") as info:
        store.add_schedules([ok, missing], [first_run(ok), first_run(missing)])
    assert (info.value.kind, info.value.key) == ("job", "ghost")
    assert written(store) == (0, 0)
    store.add_schedules([ok], [first_run(ok)])  # the store (PostgreSQL: its connection) is fine afterwards
    assert written(store) == (1, 1)


def test_a_missing_job_is_reported_before_a_stale_one(store: Store) -> None:
    store.create_job(job("a"), T0)
    cached = store.get_job("", "a")
    assert cached is not None
    store.update_job("", "a", {"event_tag": "other"}, T0 + MIN)
    with pytest.raises(NotFoundError, match="zzz"):
        store.add_schedules([schedule("a"), schedule("zzz")], [], planned_from={("", "a"): cached})
    with pytest.raises(StaleJobError, match="'a'"):
        store.add_schedules([schedule("a")], [], planned_from={("", "a"): cached})
    assert written(store) == (0, 0)


def test_a_stale_cached_job_is_refused_with_its_runs(store: Store) -> None:
    store.create_job(job("a"), T0)
    cached = store.get_job("", "a")
    assert cached is not None
    store.update_job("", "a", {"executions": 3}, T0)  # the same millisecond: only the fields tell
    s = schedule("a")
    with pytest.raises(StaleJobError) as info:
        store.add_schedules([s], [first_run(s)], planned_from={("", "a"): cached})
    assert info.value.tag == "a"
    assert written(store) == (0, 0)
    fresh = store.get_job("", "a")
    assert fresh is not None
    store.add_schedules([s], [first_run(s)], planned_from={("", "a"): fresh})
    assert written(store) == (1, 1)


def test_an_own_job_made_meanwhile_makes_a_shared_schedule_stale(store: Store) -> None:
    store.create_job(job("sync"), T0)
    store.create_job(job("sync", "shop"), T0)
    s = schedule("sync", "shop", job_product="")  # planned on the shared job
    with pytest.raises(StaleJobError, match="sync"):
        store.add_schedules([s], [first_run(s)])
    assert written(store) == (0, 0)
    other = schedule("sync", "blog", job_product="")  # blog has no job of its own: the shared one runs
    store.add_schedules([other], [first_run(other)])
    assert written(store) == (1, 1)


def test_texts_in_any_script_round_trip_through_the_rows_sent(store: Store) -> None:
    store.create_job(job("report"), T0)
    text = 'Zo\u00eb \u6771\u4eac "q" \\ \x00 \u2028 \U0001f600'
    s = replace(schedule("report"), input={"name": text, text: [text]})
    store.add_schedules([s], [first_run(s)], planned_from={})
    got = store.get_schedule(s.id)
    assert got is not None and got.input == {"name": text, text: [text]}
    (run,) = store.list_runs(RunFilter(job_id=s.id))
    assert run.input == s.input


class WorkerId(str):
    pass


def test_rows_sent_as_json_keep_a_lone_surrogate_as_an_escape() -> None:
    """msgspec refuses to encode a lone surrogate (UTF-8 cannot hold it) and subclasses of str, int and float; the
    rows then go through json.dumps, as they always were (a surrogate written as an escape: the server decides)."""
    rows = [{"error": "caf\udce9", "n": 1}, {"error": "Zo\u00eb", "n": None}]
    assert rows_json(rows) == json.dumps(rows, separators=(",", ":"))
    plain = [{"error": "Zo\u00eb \x00", "n": 2}]
    assert json.loads(rows_json(plain)) == plain
    subclassed = [{"worker_id": WorkerId("w-1"), "n": 3}]  # msgspec refuses a str subclass; json.dumps takes it
    assert rows_json(subclassed) == json.dumps(subclassed, separators=(",", ":"))


def test_a_first_run_takes_its_jobs_event_and_priority(store: Store) -> None:
    store.create_job(job("a", "shop", event_tag="own", priority=5), T0)
    store.create_job(job("a", event_tag="shared", priority=2), T0)
    own, shared = schedule("a", "shop", "shop"), schedule("a", "blog", "")
    chosen = schedule("a", "blog", "", priority=-3)  # a schedule's own priority comes first
    store.add_schedules([own, shared, chosen], [first_run(own), first_run(shared), first_run(chosen)])
    got = {r.job_id: (r.event_tag, r.priority) for r in store.list_runs(RunFilter())}
    assert got == {own.id: ("own", 5), shared.id: ("shared", 2), chosen.id: ("shared", -3)}


# ------------------------------------------------------------------ PostgreSQL: a COMMIT whose answer is lost


@pytest.fixture
def proxied(pg_backend: Backend) -> Iterator[tuple[Store, CutProxy]]:
    url = urlsplit(pg_backend.url)
    proxy = CutProxy(url.hostname or "127.0.0.1", url.port or 5432)
    store = PostgresStore(urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}")))
    pg_backend.opened.append(store)
    try:
        store.migrate()
        yield store, proxy
    finally:
        proxy.close()


def test_a_lost_answer_to_commit_is_settled_by_looking(
    proxied: tuple[Store, CutProxy], pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    store, proxy = proxied
    store.create_job(job("a"), T0)
    s = schedule("a")
    proxy.arm()
    store.add_schedules([s], [first_run(s)])  # committed; the answer lost; the retry finds it there: done
    assert proxy.cut.is_set() and "retrying" in caplog.text
    assert written(pg_backend.open()) == (1, 1)  # once, not twice (a second try would be a ConflictError)


def test_a_call_on_a_dead_connection_is_sent_again(
    proxied: tuple[Store, CutProxy], pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    store, _ = proxied
    store.create_job(job("a"), T0)
    killed = pg_admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [pg_backend.schema]
    )
    assert killed  # the server restarted, say: the pool's idle connection is dead, unknown to it
    s = schedule("a")
    store.add_schedules([s], [first_run(s)])  # sent, lost, not there: sent again
    assert "retrying" in caplog.text
    assert written(pg_backend.open()) == (1, 1)


def _lost_try_lands_late(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, refusals: list[psycopg.Error], then: str | None = None
) -> list[object]:
    """Plays a try whose answer is lost while the server still runs it: the first send fails as a lost connection
    would (the outcome unknown); the next ``refusals`` are the server's answers to the tries after it; then the
    lost try commits (the same statements on another connection), ``then`` runs there, and the try goes on. The
    statements of every send, in order."""
    from ductape_jobs.store.postgres import connection

    real = connection._send
    sends: list[object] = []

    def send(conn: psycopg.Connection[Any], statements: Any) -> psycopg.Error | None:
        sends.append(statements)
        if len(sends) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")  # the outcome unknown
        if len(sends) - 2 < len(refusals):
            return refusals[len(sends) - 2]  # refused and rolled back; the lost try still runs
        with psycopg.connect(PG_URL, autocommit=True, options=f"-c search_path={backend.schema}") as late:
            assert real(late, statements) is None  # the lost try commits, after the look
            if then is not None:
                late.execute(then.encode())
        return real(conn, statements)

    monkeypatch.setattr(connection, "_send", send)
    return sends


def test_a_resend_refused_after_the_lost_try_landed_late_returns_as_landed(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A try's answer is lost and the look finds nothing: the server is still running the try. It commits just
    after the look, then the job is deleted, and the resend is refused by the job's check. The call did land,
    once: it returns, as a resend refused by the unique key does (it raised NotFoundError)."""
    store = pg_backend.open()
    store.create_job(job("a"), T0)
    sends = _lost_try_lands_late(pg_backend, monkeypatch, [], then="DELETE FROM jobs WHERE tag = 'a'")
    s = schedule("a")
    store.add_schedules([s], [first_run(s)])
    assert len(sends) == 2 and "retrying" in caplog.text
    assert [x.id for x in pg_backend.open().list_schedules()] == [s.id]


def test_a_try_after_a_refused_resend_still_looks_for_the_lost_one_first(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A try's answer is lost; the resend is refused by an error tried again (a deadlock) while the lost try still
    runs in the server; the lost try commits just before the third try is sent. The third try, refused by the key
    the lost one took, still looks for it and returns: it had forgotten the unknown outcome and raised ConflictError
    for a call that had landed, once (found by a review)."""
    from psycopg import errors

    store = pg_backend.open()
    store.create_job(job("a"), T0)
    sends = _lost_try_lands_late(pg_backend, monkeypatch, [errors.DeadlockDetected("deadlock detected")])
    s = schedule("a")
    store.add_schedules([s], [first_run(s)])
    assert len(sends) == 3 and "retrying" in caplog.text
    assert [x.id for x in pg_backend.open().list_schedules()] == [s.id]


# ------------------------------------------------------ PostgreSQL: the pipeline's transaction, all or nothing


@pytest.fixture
def together(pg_backend: Backend) -> Iterator[PostgresDialect]:
    pg_backend.open()  # migrated
    conninfo, _ = split_url(pg_backend.url)
    dialect = PostgresDialect(conninfo, schema=pg_backend.schema, db=Database(conninfo, schema=pg_backend.schema))
    try:
        yield dialect
    finally:
        dialect.close()


def _job_row(tag: str) -> dict[str, object]:
    return job_params(job(tag), T0)


def _jobs(dialect: PostgresDialect) -> list[str]:
    return [r["tag"] for r in dialect.transact(lambda tx: tx.all("list_jobs", {"product_tag": None}))]


def test_a_python_error_after_statements_were_sent_rolls_them_back(together: PostgresDialect) -> None:
    def op(tx: Tx) -> None:
        tx.many("insert_job", [_job_row("a")])
        with tx.together():  # the pipeline's Sync would commit what was sent
            pass
        raise ValueError("planning failed half-way")

    with pytest.raises(ValueError, match="half-way"):
        together.transact_together([op], landed=lambda tx: False)
    assert _jobs(together) == []
    together.transact_together([lambda tx: tx.many("insert_job", [_job_row("b")])], landed=lambda tx: False)
    assert _jobs(together) == ["b"]


def test_a_value_psycopg_cannot_send_half_way_rolls_back_what_was_sent(store: Store) -> None:
    """A NUL in a text (the models refuse it; the store is reached here without them) fails in psycopg, with no
    SQLSTATE, after the first schedule's rows were sent: none of the call is stored (on SQLite it is all)."""
    store.create_job(job("a"), T0)
    good, bad = schedule("a"), replace(schedule("a"), env="pr\x00d")
    try:
        store.add_schedules([good, bad], [first_run(good), first_run(bad)])
    except StoreError:
        assert written(store) == (0, 0)  # PostgreSQL: all or nothing
    else:
        assert written(store) == (2, 2)


def test_a_transaction_sent_together_refuses_to_read(together: PostgresDialect) -> None:
    def op(tx: Tx) -> None:
        tx.many("insert_job", [_job_row("a")])
        tx.one("get_job", {"product_tag": "", "tag": "a"})  # a read would sync: the insert committed alone

    with pytest.raises(TypeError, match="only sends"):
        together.transact_together([op], landed=lambda tx: False)
    assert _jobs(together) == []


def test_a_refused_call_reports_the_servers_error_and_logs_nothing(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """The check's error may come back while the call is still sending its inserts: it is the error raised,
    and nothing else is (psycopg's "pipeline aborted" for the statements after it stays out of the logs)."""
    store = pg_backend.open()
    store.create_job(job("a"), T0)
    for _ in range(10):
        batch = [schedule("ghost") if i == 0 else schedule("a") for i in range(100)]
        with pytest.raises(NotFoundError, match="ghost"):
            store.add_schedules(batch, [first_run(s) for s in batch])
    assert written(store) == (0, 0)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# ---------------------------------------------------- parts written as they are made (schedule_many past a part)


def one_part(tag: str = "a") -> SchedulePart:
    s = schedule(tag)
    return SchedulePart([s], [first_run(s)])


def test_parts_made_one_by_one_are_written_in_one_transaction(store: Store) -> None:
    store.create_job(job("a"), T0)
    made: list[int] = []

    def parts() -> Iterator[SchedulePart]:
        for k in range(3):
            made.append(k)
            group = [schedule("a") for _ in range(3)]
            yield SchedulePart(group, [first_run(s) for s in group])

    store.add_schedule_parts(parts())
    assert made == [0, 1, 2]
    assert written(store) == (9, 9)


def test_an_error_making_a_part_rolls_back_the_parts_written_before_it(store: Store) -> None:
    store.create_job(job("a"), T0)

    def parts() -> Iterator[SchedulePart]:
        yield one_part()
        yield one_part()
        raise ValidationError("[2].start_at", "is not a date")

    with pytest.raises(ValidationError, match=r"\[2\]\.start_at"):
        store.add_schedule_parts(parts())
    assert written(store) == (0, 0)
    store.add_schedule_parts(iter([one_part()]))  # the store (PostgreSQL: its connection) is fine afterwards
    assert written(store) == (1, 1)


def test_a_later_parts_missing_job_writes_no_part(store: Store) -> None:
    store.create_job(job("a"), T0)
    with pytest.raises(NotFoundError, match="ghost"):
        store.add_schedule_parts(iter([one_part(), one_part(), one_part("ghost"), one_part()]))
    assert written(store) == (0, 0)


def _writing(pg_backend: Backend) -> bool:
    """A connection of this store is in a transaction that has written (it holds a transaction id)."""
    return bool(
        pg_admin(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND backend_xid IS NOT NULL",
            [pg_backend.schema],
        )
    )


def _until_writing(pg_backend: Backend) -> bool:
    deadline = time.monotonic() + 5
    while not _writing(pg_backend) and time.monotonic() < deadline:
        time.sleep(0.01)
    return _writing(pg_backend)


def test_postgres_inserts_each_part_while_the_next_is_made(pg_backend: Backend) -> None:
    store = pg_backend.open()
    store.create_job(job("a"), T0)
    seen: list[bool] = []

    def parts() -> Iterator[SchedulePart]:
        for k in range(3):
            if k:  # the parts before this one are in the server's open transaction already
                seen.append(_until_writing(pg_backend))
            yield one_part()

    store.add_schedule_parts(parts())
    assert seen == [True, True]
    assert written(store) == (3, 3)
    assert not _writing(pg_backend)  # committed


def test_a_connection_lost_half_way_sends_the_parts_made_again_and_makes_each_once(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    store = pg_backend.open()
    store.create_job(job("a"), T0)
    made: list[int] = []

    def parts() -> Iterator[SchedulePart]:
        for k in range(4):
            if k == 2:  # the server restarted, say, with two parts in its open transaction
                assert _until_writing(pg_backend)
                pg_admin(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s AND backend_xid IS NOT NULL",
                    [pg_backend.schema],
                )
            made.append(k)
            yield one_part()

    store.add_schedule_parts(parts())
    assert "retrying" in caplog.text
    assert made == [0, 1, 2, 3]
    assert written(pg_backend.open()) == (4, 4)


BAD = [  # a request refused as it is parsed (nothing sent yet), by its product, or by its plan (parts sent)
    ({"start_at": "not a date"}, "start_at"),
    ({"session": {"tag": "s", "token": "x"}}, "session"),
    ({"repeat": {"every": 1000, "end_date": 1}}, "repeat.endDate"),
]


@pytest.mark.parametrize(("bad", "field"), BAD)
def test_a_bad_request_past_the_first_parts_of_schedule_many_writes_none_on_postgres(
    pg_backend: Backend, bad: dict[str, Any], field: str
) -> None:
    pg_backend.open()
    with Ductape(pg_backend.url) as dt:
        dt.job.create({"name": "a", "tag": "a", "event_type": "FUNCTION", "event_tag": "fn"})
        requests: list[dict[str, Any]] = [{"env": "prd", "product_tag": "shop", "event": "a"} for _ in range(3 * PART)]
        requests[2 * PART + 5] = {**requests[0], **bad}
        with pytest.raises(ValidationError) as info:
            dt.job.schedule_many(requests)
        assert info.value.field == f"[{2 * PART + 5}].{field}"
        assert written(dt.store) == (0, 0)
        results = dt.job.schedule_many(requests[: 2 * PART + 5])
        stored = {s.id for s in dt.store.list_schedules(limit=1000)}
        assert len(results) == len(stored) == 2 * PART + 5 and {r.job_id for r in results} == stored


def test_a_refusal_unread_when_a_later_request_is_refused_leaves_a_connection_that_works(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """The first part waits for a lock and is then refused (its job changed: stale), while Python goes on planning
    and refuses a later request first: the server's answer is never read, its skipped statements neither. Every
    later call on that (only) connection still works."""
    url = with_query(pg_backend.url, pool_max="1", pool_timeout="5")
    pg_backend.open()
    request = {"env": "prd", "product_tag": "shop", "event": "a"}
    with Ductape(url) as dt:
        dt.job.create({"name": "a", "tag": "a", "event_type": "FUNCTION", "event_tag": "fn"})
        for _ in range(4):  # psycopg prepares a statement at its sixth run on a connection
            dt.job.schedule(request)
        with psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema}") as holder:
            holder.execute("UPDATE jobs SET updated_at = updated_at + 1 WHERE tag = 'a'")  # locked until its commit
            threading.Timer(2.0, holder.commit).start()  # long after the later request is refused
            requests = [dict(request) for _ in range(2 * PART + 50)]
            requests[2 * PART + 10] = {**request, "session": {"tag": "s", "token": "x"}}
            with pytest.raises(ValidationError, match=rf"\[{2 * PART + 10}\]\.session"):
                dt.job.schedule_many(requests)
            time.sleep(2.1)
        for _ in range(3):
            dt.job.schedule(request)
        assert len(dt.store.list_schedules(limit=1000)) == 4 + 3


def _one_connection(pg_backend: Backend) -> Store:
    """A store on ``pg_backend`` whose pool holds one connection: every call uses the same one."""
    pg_backend.open()
    store = PostgresStore(with_query(pg_backend.url, pool_max="1", pool_timeout="2"))
    pg_backend.opened.append(store)
    return store


def test_schedule_many_reads_its_jobs_before_it_writes_so_one_connection_is_enough(pg_backend: Backend) -> None:
    """The parts are written on one pooled connection while the rest are planned: the jobs they schedule are read
    before (a read meanwhile would wait for a second connection, none free with a pool of one)."""
    url = with_query(pg_backend.url, pool_max="1", pool_timeout="2")
    pg_backend.open()
    with Ductape(url) as dt:
        dt.job.create({"name": "a", "tag": "a", "event_type": "FUNCTION", "event_tag": "fn"})
    with Ductape(url) as dt:  # a new client: no job cached
        results = dt.job.schedule_many([{"env": "prd", "product_tag": "shop", "event": "a"}] * (PART + 1))
        assert len(results) == PART + 1
        assert len(dt.store.list_schedules(limit=1000)) == sum(dt.store.count_runs().values()) == PART + 1


def test_a_part_the_server_refuses_leaves_no_connection_that_fails_later(pg_backend: Backend) -> None:
    """The server skips what follows a failed part, their Parse too, while psycopg counts a statement sent for its
    sixth time as prepared: the connection is replaced, so that later calls on it do not fail."""
    store = _one_connection(pg_backend)
    store.create_job(job("a"), T0)
    for _ in range(4):  # psycopg prepares a statement on its sixth run on a connection
        store.add_schedule_parts([one_part()])
    with pytest.raises(NotFoundError, match="ghost"):
        store.add_schedule_parts(iter([one_part("ghost"), one_part(), one_part()]))
    for _ in range(3):
        store.add_schedule_parts([one_part()])
    assert written(store) == (7, 7)


def test_a_rollback_of_parts_sent_leaves_the_connections_prepared_statements_as_they_were(pg_backend: Backend) -> None:
    """A request refused past the first parts rolls back what was sent with a ROLLBACK in the pipeline. On a
    connection with prepared statements, the writes after it (a first statement of several rows, always prepared
    by psycopg: the worker's retries and failures, say) work every time."""
    url = with_query(pg_backend.url, pool_max="1", pool_timeout="5")
    pg_backend.open()
    request = {"env": "prd", "product_tag": "shop", "event": "a"}
    with Ductape(url) as dt:
        dt.job.create({"name": "a", "tag": "a", "event_type": "FUNCTION", "event_tag": "fn"})
        for _ in range(7):  # its statement prepared on the only connection
            dt.job.schedule(request)
        requests = [dict(request) for _ in range(2 * PART + 50)]
        requests[2 * PART + 10] = {**request, "session": {"tag": "s", "token": "x"}}  # refused by its product
        with pytest.raises(ValidationError, match=rf"\[{2 * PART + 10}\]\.session"):
            dt.job.schedule_many(requests)
        attempt = {"finished_at": 0, "outcome": "completed", "error": None, "attempt": 1, "started_at": None}
        rows = [{**attempt, "run_id": "r_none1"}, {**attempt, "run_id": "r_none2"}]
        for _ in range(3):
            dt.store._write(lambda tx: tx.many("finish_attempt", rows))  # type: ignore[attr-defined]
        assert len(dt.store.list_schedules(limit=1000)) == 7


def test_an_error_of_the_callers_making_a_part_is_raised_as_it_is_and_never_retried(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """However it looks: an OperationalError raised making a part (another connection's, say) is not this
    connection lost, and trying again would send only the parts made before it."""
    store = pg_backend.open()
    store.create_job(job("a"), T0)

    why = ConnectionResetError("reset by peer")

    def parts() -> Iterator[SchedulePart]:
        yield one_part()
        yield one_part()
        raise psycopg.OperationalError("another connection lost") from why

    with pytest.raises(psycopg.OperationalError, match="another connection") as info:
        store.add_schedule_parts(parts())
    assert info.value.__cause__ is why  # as it was raised
    assert "retrying" not in caplog.text
    assert written(store) == (0, 0)
