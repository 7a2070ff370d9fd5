"""``copy_to`` (``ductape copy``): a store's contents copied into a new one, SQLite and PostgreSQL either way. The
copy holds every row the source held (the outbox renumbered, its cursors with it), the engine carries on there as
it would have on the source (a recurring schedule's next run, its limit, a webhook's pending events), and a copy
that is refused (a target holding data, a run a worker holds) writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from storekit import PG_URL, Backend, postgres_backend, sqlite_backend
from test_contract import T0
from test_outbox_store import Collect, pending
from typer.testing import CliRunner

from ductape_jobs import Ductape, FakeClock, ValidationError
from ductape_jobs.cli.main import app
from ductape_jobs.models import Webhook
from ductape_jobs.store.records import FeatureRun, FeatureRunStatus
from ductape_jobs.store.transfer import OUTBOX_TABLES, OWN_TABLES, STORE_TABLES

JOB = {"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"}
REQ = {"env": "prd", "product_tag": "shop", "event": "report"}
HOOK_EVENTS = ["run.queued", "job.completed", "job.failed"]


@pytest.fixture(params=["sqlite", "postgres"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    factory = sqlite_backend(tmp_path / "source") if request.param == "sqlite" else postgres_backend()
    (tmp_path / "source").mkdir()
    with factory as b:
        yield b


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    (tmp_path / "target").mkdir()
    factory = sqlite_backend(tmp_path / "target") if request.param == "sqlite" else postgres_backend()
    with factory as b:
        if b.path is not None:
            b.path = b.path.with_name("copy.db")  # a new file: the copy makes it
            b.url = f"sqlite:///{b.path}"
        yield b


def client(backend: Backend, clock: FakeClock, ran: list[Any] | None = None) -> Ductape:
    dt = Ductape(backend.url, clock=clock)
    dt.function("report")(lambda input, ctx: (ran if ran is not None else []).append(input) or input)
    return dt


def fill(dt: Ductape, clock: FakeClock) -> dict[str, str]:
    """A store with history, a recurring schedule part-way through its limit, a one-off still to come, a webhook
    with events sent (their deliveries queued) and events still to send, and a limit: the ids the checks read."""
    dt.job.create({**JOB, "concurrency": 2})
    dt.store.add_webhook(Webhook("wh_1", "shop", "https://example.com/h", HOOK_EVENTS, "s" * 20, T0))
    every = dt.job.schedule({**REQ, "input": {"n": "every"}, "repeat": {"every": 60_000, "limit": 5}})
    dt.job.schedule({**REQ, "input": {"n": "once"}})
    dt.job.schedule({**REQ, "input": {"n": "later"}, "start_at": int((T0 + timedelta(hours=1)).timestamp())})
    dt.drain()
    clock.advance(minutes=1)
    dt.drain()  # the recurring one's second run
    pending(dt.store, 6)
    assert dt.store.relay_events("webhooks", 3, clock.now(), Collect()) == 3  # three sent: the rest wait
    return {"every": every.job_id}


def table_rows(backend: Backend, table: str) -> list[tuple[Any, ...]]:
    return sorted(backend.rows(f"SELECT * FROM {table}"), key=repr)


def test_a_copy_holds_every_row_and_the_engine_carries_on_there(source: Backend, target: Backend) -> None:
    clock = FakeClock(T0)
    with client(source, clock) as dt:
        made = fill(dt, clock)
        pending_before = [(e.name, e.run_id, e.job_id) for e in pending(dt.store, 3)]
        copied = dt.copy_to(target.url)

    tables = set(source.columns()) - OWN_TABLES
    assert set(copied) == tables - {"outbox_marks"}
    for table in tables - OUTBOX_TABLES:
        rows = table_rows(source, table)
        assert table_rows(target, table) == rows, table
        assert copied[table] == len(rows)
    assert (
        copied["runs"] == 3 and copied["attempts"] == 3 and copied["webhook_deliveries"] == 3 and copied["jobs"] == 1
    )  # the test saw something

    ran: list[Any] = []
    with client(target, clock, ran) as there:
        # the events not yet sent wait there, in their order, and nothing sent is sent again
        assert len(pending_before) == 3
        assert [(e.name, e.run_id, e.job_id) for e in pending(there.store, len(pending_before))] == (pending_before)
        every = there.job.get(made["every"])
        assert every.run_count == 2 and every.next_run_at == T0 + timedelta(minutes=2)
        clock.advance(minutes=1)
        there.drain()
        assert ran == [{"n": "every"}]  # its third run, due now; the one-off an hour later is not
        for _ in range(3):
            clock.advance(minutes=1)
            there.drain()
        assert [r["n"] for r in ran] == ["every"] * 3  # runs 3 to 5 of its limit of 5, then no more
        ended = there.job.get(made["every"])
        assert ended.status.value == "completed" and ended.run_count == 5
        later = [e.name for e in pending(there.store, len(pending_before) + 1)]
        assert later[: len(pending_before)] == [e for e, _, _ in pending_before]  # new events after the old
        assert len(later) > len(pending_before)


def test_a_copy_whose_batches_are_slow_is_not_ended_as_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server ends a store's transaction idle past ``IDLE_IN_TRANSACTION`` (a paused worker's): a copy's two
    transactions wait for each other, the source's while the target writes a batch, and a batch of large rows over a
    slow link took longer than that. A copy's transactions are never ended so."""
    from ductape_jobs.store import transfer
    from ductape_jobs.store.postgres import connection

    monkeypatch.setattr(connection, "IDLE_IN_TRANSACTION", timedelta(milliseconds=200))
    copy_table = transfer._copy_table

    def slowly(*args: Any, **kwargs: Any) -> int:
        time.sleep(0.3)  # the other side of the copy waits past the server's timeout
        return copy_table(*args, **kwargs)

    monkeypatch.setattr(transfer, "_copy_table", slowly)
    clock = FakeClock(T0)
    with postgres_backend() as source, postgres_backend() as target:
        with client(source, clock) as dt:
            fill(dt, clock)
            copied = dt.copy_to(target.url)
        assert copied["runs"] == 3 and table_rows(target, "runs") == table_rows(source, "runs")


def test_a_postgresql_copy_leaves_its_tables_analysed(tmp_path: Path) -> None:
    """A probe's copy of a million schedules and three million runs had no planner statistics until autovacuum came:
    meanwhile a run list of a live phase read every run newest first."""
    clock = FakeClock(T0)
    with sqlite_backend(tmp_path) as source, postgres_backend() as target:
        with client(source, clock) as dt:
            fill(dt, clock)
            dt.copy_to(target.url)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            analysed = conn.execute(
                "SELECT relname FROM pg_stat_user_tables WHERE schemaname = %s AND last_analyze IS NOT NULL",
                (target.schema,),
            ).fetchall()
    assert {"runs", "schedules", "jobs"} <= {name for (name,) in analysed}


def test_a_target_holding_data_is_refused_and_left_as_it_was(source: Backend, target: Backend) -> None:
    clock = FakeClock(T0)
    with client(source, clock) as dt:
        fill(dt, clock)
    with client(target, clock) as other:  # a store in use: one job
        other.job.create({**JOB, "tag": "theirs"})
        before = {t: table_rows(target, t) for t in target.columns()}
    with client(source, clock) as dt, pytest.raises(ValidationError) as refused:
        dt.copy_to(target.url)
    if target.path is not None:
        assert refused.value.field == "to" and "exists" in refused.value.rule
    else:
        assert refused.value.field == "to" and "holds data already" in refused.value.rule
    assert {t: table_rows(target, t) for t in target.columns()} == before


def test_a_run_a_worker_holds_refuses_the_copy_and_nothing_is_made(source: Backend, target: Backend) -> None:
    clock = FakeClock(T0)
    with client(source, clock) as dt:
        dt.job.create(JOB)
        dt.job.schedule(REQ)
        held = dt.store.acquire_runs("w1", 10, timedelta(seconds=30), clock.now())
        assert len(held) == 1
        with pytest.raises(ValidationError) as refused:
            dt.copy_to(target.url)
        assert refused.value.field == "store" and "1 run is running" in refused.value.rule
        if target.path is not None:  # neither the file nor the part it was written in
            assert list(target.path.parent.iterdir()) == []
        if target.path is None:  # refused before the target was opened: not even its schema was made
            assert made_tables(target) == 0
        clock.advance(seconds=31)  # its lease lapsed: the worker is gone, the copy goes ahead
        assert dt.copy_to(target.url)["runs"] == 1


def made_tables(target: Backend) -> int:
    """The tables of the target's PostgreSQL schema (none: the copy made nothing there)."""
    query = f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{target.schema}'"
    return int(target.rows(query)[0][0])


def test_a_store_that_holds_nothing_is_not_copied_and_nothing_is_made(source: Backend, target: Backend) -> None:
    # the wrong store named (a --app whose Ductape() made an empty one, another folder): a "copy" of nothing said
    # "Copied", and the new store was made, empty
    with client(source, FakeClock(T0)) as dt:
        with pytest.raises(ValidationError) as refused:
            dt.copy_to(target.url)
        assert refused.value.field == "store" and refused.value.rule.startswith("holds nothing to copy")
        if target.path is not None:
            assert list(target.path.parent.iterdir()) == []
        else:
            assert made_tables(target) == 0
        dt.job.create(JOB)  # a job alone is something to copy
        assert dt.copy_to(target.url)["jobs"] == 1


def test_two_copies_into_one_new_postgres_store_take_turns(tmp_path: Path) -> None:
    # both found it empty, and each wrote its rows beside the other's: one store made of two (or, where their keys
    # met, the second died on a unique key's raw message). A session of the test holds the target's jobs table until
    # both copies wait on it, so they meet there, whatever the machine's speed.
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    with sqlite_backend(tmp_path / "a") as a, sqlite_backend(tmp_path / "b") as b, postgres_backend() as target:
        for backend, tag in ((a, "one"), (b, "two")):
            with client(backend, FakeClock(T0)) as dt:
                dt.job.create({**JOB, "tag": tag})
                for _ in range(30):
                    dt.job.schedule({**REQ, "event": tag})
        Ductape(target.url).close()  # made and migrated: the copies go straight to their writes
        outcomes: list[object] = []

        def copy(backend: Backend) -> None:
            with Ductape(backend.url, clock=FakeClock(T0)) as dt:
                try:
                    outcomes.append(dt.copy_to(target.url)["jobs"])
                except ValidationError as exc:
                    outcomes.append(exc)

        with psycopg.connect(PG_URL, options=f"-c search_path={target.schema}") as holder:
            holder.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
            threads = [threading.Thread(target=copy, args=(backend,)) for backend in (a, b)]
            for t in threads:
                t.start()
            waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'jobs'::regclass"
            deadline = time.monotonic() + 30
            while holder.execute(waiting).fetchone() != (2,) and time.monotonic() < deadline:
                time.sleep(0.02)
            holder.rollback()  # both wait on the jobs table: let them go at once
        for t in threads:
            t.join(60)
        refused = [o for o in outcomes if isinstance(o, ValidationError)]
        assert [o for o in outcomes if isinstance(o, int)] == [1] and len(refused) == 1, outcomes  # both: a mix
        assert refused[0].field == "to" and refused[0].rule.startswith("holds data already")
        assert len(target.rows("SELECT tag FROM jobs")) == 1  # one store's rows, not a mix of two
        assert len(target.rows("SELECT id FROM schedules")) == 30


def test_the_copy_locks_every_table_of_a_postgresql_target() -> None:
    """copy_target_lock names each table a copy writes (a migration adding one adds it to STORE_TABLES and there)."""
    from ductape_jobs.store.postgres.dialect import Q

    statement = Q["copy_target_lock"]
    locked = statement[statement.index("LOCK TABLE") + len("LOCK TABLE") : statement.index("IN SHARE ROW")]
    assert sorted(t.strip() for t in locked.split(",")) == sorted(set(STORE_TABLES) - OWN_TABLES)


def test_the_copy_is_refused_into_itself_or_an_in_memory_store(tmp_path: Path) -> None:
    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}") as dt:
        with pytest.raises(ValidationError, match="exists"):
            dt.copy_to(f"sqlite:///{tmp_path / 'jobs.db'}")
        with pytest.raises(ValidationError, match="in-memory"):
            dt.copy_to("sqlite:///:memory:")
        with pytest.raises(ValidationError, match="is the store copied from"):
            dt.store.copy_to(dt.store, T0)
        with pytest.raises(ValidationError) as refused:
            dt.copy_to(42)  # type: ignore[arg-type]
        assert refused.value.field == "to"


def test_ductape_copy_prints_what_it_copied(tmp_path: Path) -> None:
    src, dst = tmp_path / "jobs.db", tmp_path / "copy.db"
    with Ductape(f"sqlite:///{src}") as dt:
        dt.job.create(JOB)
        dt.job.schedule(REQ)
    env = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None, "DUCTAPE_PRODUCT_FILE": None}
    args = ["copy", "--store", f"sqlite:///{src}", "--to", f"sqlite:///{dst}", "--json"]
    done = CliRunner().invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)
    assert answer["rows"]["jobs"] == 1 and answer["rows"]["schedules"] == 1 and answer["rows"]["runs"] == 1
    again = CliRunner().invoke(app, args, env=env)
    assert again.exit_code == 2 and "to: " in again.output and "exists" in again.output
    with Ductape(f"sqlite:///{dst}") as copy:
        assert [j.tag for j in copy.job.fetch_all()] == ["report"]


def test_outbox_events_committed_out_of_seq_order_reach_a_sqlite_copy_in_their_order(target: Backend) -> None:
    """On PostgreSQL a transaction may commit a lower seq after a higher one (seq is drawn at insert, the order is
    (txid, seq)); SQLite reads by seq alone. The copy numbers the events in their order, so a webhook sender whose
    cursor passed (100, 2) still gets (101, 1) there, and nothing it had is sent again."""
    with postgres_backend() as source:
        with client(source, FakeClock(T0)):
            pass  # made and migrated
        at = int(T0.timestamp() * 1000)
        for seq, txid, run in ((2, 100, "run_a"), (1, 101, "run_b"), (3, 102, "run_c")):
            source.execute(
                "INSERT INTO outbox (seq, txid, event, product_tag, schedule_id, run_id, data, created_at)"
                " OVERRIDING SYSTEM VALUE"
                " VALUES (%(seq)s, %(txid)s, 'run.queued', 'shop', 'job_x', %(run)s, '{}', %(at)s)",
                {"seq": seq, "txid": txid, "run": run, "at": at},
            )
        source.execute(
            "INSERT INTO outbox_consumers (name, txid, seq, updated_at) VALUES ('webhooks', 100, 2, %(at)s)", {"at": at}
        )
        with client(source, FakeClock(T0)) as dt:
            assert [e.run_id for e in dt.store.pending_events("webhooks", 10)] == ["run_b", "run_c"]
            assert dt.copy_to(target.url)["outbox"] == 3
        with client(target, FakeClock(T0)) as there:
            assert [e.run_id for e in pending(there.store, 2)] == ["run_b", "run_c"]


def test_store_tables_are_every_table_a_new_store_has(backend: Backend) -> None:
    """A migration that adds a table adds it to STORE_TABLES, or the copy would leave it behind."""
    backend.open()
    assert sorted(backend.columns()) == sorted(STORE_TABLES)


def test_a_postgresql_schema_holding_the_applications_tables_copies_both_ways(tmp_path: Path) -> None:
    """A store in a schema beside the application's own tables (``public``, PostGIS's ``spatial_ref_sys``): the
    copy compared every table of the schema, and refused it either way ("the two stores' schemas differ")."""
    clock = FakeClock(T0)
    with postgres_backend() as pg:
        pg.execute("CREATE TABLE users (id int PRIMARY KEY)", {})
        pg.execute("INSERT INTO users VALUES (1)", {})
        source = tmp_path / "jobs.db"
        with Ductape(f"sqlite:///{source}", clock=clock) as dt:
            dt.job.create(JOB)
            dt.job.schedule(REQ)
            assert dt.copy_to(pg.url)["runs"] == 1
        assert pg.rows("SELECT id FROM users") == [(1,)]  # left as it was
        with Ductape(pg.url, clock=clock) as there:
            copied = there.copy_to(f"sqlite:///{tmp_path / 'back.db'}")
        assert copied["runs"] == 1 and "users" not in copied


def test_a_feature_run_a_driver_holds_refuses_the_copy(tmp_path: Path) -> None:
    """Its events would run again in the copy once its lease lapsed there (feature.resume, a worker's rescue)."""
    clock = FakeClock(T0)
    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock) as dt:
        dt.store.create_feature_run(_feature_run(clock))
        with pytest.raises(ValidationError) as refused:
            dt.copy_to(f"sqlite:///{tmp_path / 'copy.db'}")
        assert refused.value.field == "store" and "1 feature run is running" in refused.value.rule
        assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("mysql://x/y", "unknown store URL"),
        ("sqlite:///x.db?mode=ro", "unknown parameter 'mode'"),
        ("postgresql://postgres@127.0.0.1:5432/test?foo=1", "unknown parameter 'foo'"),
        ("sqlite:///no/such/folder/x.db", "does not exist"),
    ],
)
def test_a_bad_target_url_is_refused_naming_to(tmp_path: Path, url: str, rule: str) -> None:
    """Named ``store``, the refusal read as if the store copied from were wrong."""
    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}") as dt, pytest.raises(ValidationError) as refused:
        dt.copy_to(url)
    assert refused.value.field == "to" and rule in refused.value.rule, refused.value


def test_a_copy_cut_short_leaves_no_file_where_the_copy_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written aside and linked into place whole: a copy that failed (or was killed) left its file, and the next
    try was refused ("exists")."""
    from ductape_jobs.store.sqlite.dialect import SQLiteTx

    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}") as dt:
        dt.job.create(JOB)
        dt.job.schedule(REQ)
        put = SQLiteTx.put_rows

        def failing(tx: SQLiteTx, table: str, columns: Any, rows: Any) -> None:
            if table == "runs":
                raise OSError("disk full")
            put(tx, table, columns, rows)

        monkeypatch.setattr(SQLiteTx, "put_rows", failing)
        with pytest.raises(OSError):
            dt.copy_to(f"sqlite:///{tmp_path / 'copy.db'}")
        assert sorted(p.name for p in tmp_path.iterdir() if "copy" in p.name) == []
        monkeypatch.setattr(SQLiteTx, "put_rows", put)
        assert dt.copy_to(f"sqlite:///{tmp_path / 'copy.db'}")["runs"] == 1
        assert sorted(p.name for p in tmp_path.iterdir() if "copy" in p.name) == ["copy.db"]  # no -wal: one file


def _feature_run(clock: FakeClock) -> FeatureRun:
    now = clock.now()
    return FeatureRun(
        "frun_1", "shop", "prd", "onboard", {}, FeatureRunStatus.RUNNING, now, now,
        lease_owner="driver-1", lease_expires_at=now + timedelta(seconds=30),
    )  # fmt: skip


def test_a_copy_killed_midway_leaves_nothing_where_the_copy_goes(tmp_path: Path) -> None:
    """SIGKILLed while it wrote, the copy left its half-made file at the path (and a 138 MB -wal in a probe): the
    next try was refused ("exists"). It writes a part file aside, linked into place only whole."""
    source = tmp_path / "jobs.db"
    with Ductape(f"sqlite:///{source}") as dt:
        dt.job.create(JOB)
        for first in range(0, 20_000, 1_000):
            dt.job.schedule_many([{**REQ, "input": {"i": i}} for i in range(first, first + 1_000)])
    copy = tmp_path / "copy.db"
    argv = [sys.executable, "-m", "ductape_jobs.cli.main", "copy", "--store", f"sqlite:///{source}", "--to"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCTAPE_")}
    proc = subprocess.Popen([*argv, f"sqlite:///{copy}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not any("copy.db" in p.name and p.name.endswith("-wal") and p.stat().st_size > 0 for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "the copy ended before it could be killed"
        time.sleep(0.005)
    proc.kill()
    proc.wait(10)
    assert proc.stderr is not None
    proc.stderr.close()
    assert not copy.exists()
    done = subprocess.run([*argv, f"sqlite:///{copy}", "--json"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"]["runs"] == 20_000
