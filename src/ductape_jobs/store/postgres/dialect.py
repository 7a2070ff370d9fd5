"""The PostgreSQL dialect: a pool of connections (``connection.py``: transactions, retries on a lost connection,
driver errors translated), claims with ``FOR UPDATE SKIP LOCKED``, wake-ups by LISTEN/NOTIFY. Its SQL is the
``.sql`` files beside it (psycopg's ``%(name)s``; a list parameter is an array)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import psycopg

from ductape_jobs.errors import ValidationError
from ductape_jobs.store.base import Capabilities, Change, never_prompt
from ductape_jobs.store.codec import from_ms, rows_json
from ductape_jobs.store.dialect import MAKES_ONE, Batches, Params, Row, quoted, unstorable
from ductape_jobs.store.postgres.connection import Conn, Database, Listener, Statement
from ductape_jobs.store.postgres.schema import made, migrate, migrated, state
from ductape_jobs.store.sql import SchemaState, load_dialect_queries

T = TypeVar("T")
#: Queries that ``many`` runs once over all its rows, given as one JSON list (``%(rows)s``): the finishing path's
#: per-run writes, where psycopg's cost per statement is more than the server's.
ROWS_AS_JSON = frozenset({"complete_run"})
Q = load_dialect_queries(
    "ductape_jobs.store.postgres",
    ("queries.sql", "features.sql", "api_queries.sql", "retention.sql", "outbox.sql", "limits.sql", "transfer.sql"),
)
#: Queries of a page (the caller's OFFSET, a list's cursor) are planned for their own values at every call, never
#: prepared: PostgreSQL may switch a prepared statement to its generic plan after five calls, and that plan guesses
#: the OFFSET (a tenth of the rows) and the cursor. ``GET /runs`` read every run older than its cursor into a sort,
#: 80 ms a page of 50 on 100,000 runs, where the plan for the values takes 1 ms (``bench/run_pages.py``).
PLANNED_EACH_CALL = frozenset(name for name, query in Q.items() if "OFFSET %(offset)s" in query)


def _prepare(name: str) -> bool | None:
    """psycopg's ``prepare`` for query ``name``: ``False`` (never) for a page's (``PLANNED_EACH_CALL``), else its
    default (``None``: prepared once it has been run a few times on a connection)."""
    return False if name in PLANNED_EACH_CALL else None


class PostgresTx:
    __slots__ = ("_channel", "_conn")

    def __init__(self, conn: Conn, channel: str) -> None:
        self._conn = conn
        self._channel = channel

    def one(self, name: str, params: Params | None = None) -> Row | None:
        try:
            return self._conn.execute(Q[name], params, prepare=_prepare(name)).fetchone()
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise unstorable(exc, params) from exc

    def all(self, name: str, params: Params | None = None) -> list[Row]:
        try:
            return self._conn.execute(Q[name], params, prepare=_prepare(name)).fetchall()
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise unstorable(exc, params) from exc

    def run(self, name: str, params: Params | None = None) -> int:
        try:
            return self._conn.execute(Q[name], params).rowcount
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise unstorable(exc, params) from exc

    def many(self, name: str, params: Sequence[Params]) -> None:
        statement = _many(name, params)
        if statement is None:
            return
        query, sent, over_list = statement
        try:
            if over_list:
                with self._conn.cursor() as cur:
                    cur.executemany(query, sent)
            else:
                self._conn.execute(query, sent)
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise unstorable(exc, params) from exc

    def each(self, name: str, params: Sequence[Params]) -> list[Row]:
        """``executemany`` (pipelined: one round trip) returning every statement's rows."""
        if not params:
            return []
        rows: list[Row] = []
        with self._conn.cursor() as cur:
            cur.executemany(Q[name], params, returning=True)
            while True:
                rows.extend(cur.fetchall())
                if not cur.nextset():
                    return rows

    def later(self, name: str, params: Params | None = None) -> Callable[[], list[Row]]:
        return self._conn.execute(Q[name], params).fetchall  # in a pipeline: read at the next sync

    def rows_of(self, table: str, columns: Sequence[str], order: Sequence[str], batch: int) -> Batches:
        listed = ", ".join(map(quoted, columns))
        by = f" ORDER BY {', '.join(map(quoted, order))}" if order else ""
        with self._conn.cursor(name="ductape_copy") as cursor:  # a server-side cursor: batch rows held at a time
            cursor.execute(f"SELECT {listed} FROM {quoted(table)}{by}")  # quoted names
            while rows := cursor.fetchmany(batch):
                yield rows

    def put_rows(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        listed = ", ".join(map(quoted, columns))
        marks = ", ".join(["%s"] * len(columns))
        sql = f"INSERT INTO {quoted(table)} ({listed}) OVERRIDING SYSTEM VALUE VALUES ({marks})"  # a kept identity
        with self._conn.cursor() as cursor:
            cursor.executemany(sql, [[row[c] for c in columns] for row in rows])

    def claim_runs(self, params: Params) -> tuple[list[Row], bool]:
        rows = self.all("acquire_runs", params)  # one statement: claim, lease and record the attempts
        return [r for r in rows if r["id"] is not None], bool(rows and rows[0]["limited"])

    def claim_picked(self, params: Params) -> list[Row]:
        return self.all("claim_picked_runs", params)  # one statement, as claim_runs

    def together(self) -> AbstractContextManager[object]:
        if self._conn.pgconn.pipeline_status:  # already inside one: its end syncs (a nested end would too)
            return contextlib.nullcontext()
        return self._conn.pipeline()

    def notify(self) -> None:
        """Tell listeners (at commit) that runs or schedules may be due sooner than they planned. Sent by the
        calls of the API and of shutdown/rescue, not by the hot claim/finish path: a notifying transaction
        takes a database-wide lock at commit."""
        self._conn.execute(Q["notify"], _notify_params(self._channel))

    def add_schedules(
        self, checks: Sequence[Params], schedules: Sequence[Params], keyed: Sequence[Params], firsts: Sequence[Params]
    ) -> None:
        """One statement: ductape_add_schedules() (migration 21) checks, inserts and notifies in the server."""
        self._conn.execute(Q["add_schedules"], _add_params(self._channel, checks, schedules, keyed, firsts))

    def sync_outbox_triggers(self) -> None:
        self.one("sync_outbox_triggers")  # ductape_outbox_sync() (migrations 13, 17 and 20)


def _many(name: str, params: Sequence[Params]) -> Statement | None:
    """How ``Tx.many`` sends ``name`` over ``params`` (none: nothing to send): a query of ``ROWS_AS_JSON`` once
    over them all, one row as a plain execute (it costs less than executemany), more rows as executemany."""
    if not params:
        return None
    if name in ROWS_AS_JSON:
        return (Q[name], {"rows": rows_json(params)}, False)
    if len(params) == 1:
        return (Q[name], params[0], False)
    return (Q[name], list(params), True)


def _notify_params(channel: str, due: str = "") -> Params:
    """A NOTIFY's: ``due``, the earliest due time the write makes, in Unix ms (``""``: now, or not known)."""
    return {"channel": channel, "payload": due}


def _earliest_due(schedules: Sequence[Params], firsts: Sequence[Params]) -> str:
    """What a write of ``schedules`` and their first runs tells the listening workers: when the first of them falls
    due (a first run's ``available_at``, a schedule's next occurrence), so that a worker told of one due later than
    its next look at the store reads nothing for it (``Worker.notify``)."""
    due = [f["available_at"] for f in firsts if f["available_at"] is not None]
    due += [s["next_run_at"] for s in schedules if s["next_run_at"] is not None]
    return str(min(due)) if due else ""


def _due_of(payload: str) -> datetime | None:
    """The due time a NOTIFY's payload names (``_notify_params``); ``None`` (now) for anything else: an older
    release's empty payload, another program's text on the channel."""
    if not (payload.isascii() and payload.isdigit()):
        return None
    try:
        return from_ms(int(payload))
    except (ValueError, OverflowError, OSError):  # past datetime's range
        return None


def _add_params(
    channel: str,
    checks: Sequence[Params],
    schedules: Sequence[Params],
    keyed: Sequence[Params],
    firsts: Sequence[Params],
) -> Params:
    return {
        "checks": rows_json(checks),
        "schedules": rows_json(schedules),
        "keyed": rows_json(keyed),
        "firsts": rows_json(firsts),
        **_notify_params(channel, _earliest_due(schedules, firsts)),
    }


class PostgresSendTx:
    """A transaction of ``transact_together``: it only gathers what to send (``sent``), sent in one round trip
    once it is all known, or as each op of an iterable is made (``Database.run_together``). A read would need an
    answer in between, so reading is refused (and ``run``, whose count is unknown until the end); a Python error
    while gathering a sequence of ops sends nothing."""

    __slots__ = ("_channel", "sent")

    def __init__(self, channel: str) -> None:
        self._channel = channel
        self.sent: list[Statement] = []

    def one(self, name: str, params: Params | None = None) -> Row | None:
        raise _sends_only(name)

    def all(self, name: str, params: Params | None = None) -> list[Row]:
        raise _sends_only(name)

    def run(self, name: str, params: Params | None = None) -> int:
        raise _sends_only(name)

    def each(self, name: str, params: Sequence[Params]) -> list[Row]:
        raise _sends_only(name)

    def later(self, name: str, params: Params | None = None) -> Callable[[], list[Row]]:
        raise _sends_only(name)

    def claim_runs(self, params: Params) -> tuple[list[Row], bool]:
        raise _sends_only("claim_runs")

    def claim_picked(self, params: Params) -> list[Row]:
        raise _sends_only("claim_picked")

    def sync_outbox_triggers(self) -> None:
        raise _sends_only("sync_outbox_triggers")

    def rows_of(self, table: str, columns: Sequence[str], order: Sequence[str], batch: int) -> Batches:
        raise _sends_only("rows_of")

    def put_rows(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        raise _sends_only("put_rows")

    def many(self, name: str, params: Sequence[Params]) -> None:
        statement = _many(name, params)
        if statement is not None:
            self.sent.append(statement)

    def together(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()  # everything goes together

    def notify(self) -> None:
        self.sent.append((Q["notify"], _notify_params(self._channel), False))

    def add_schedules(
        self, checks: Sequence[Params], schedules: Sequence[Params], keyed: Sequence[Params], firsts: Sequence[Params]
    ) -> None:
        self.sent.append((Q["add_schedules"], _add_params(self._channel, checks, schedules, keyed, firsts), False))


def _sends_only(name: str) -> TypeError:
    return TypeError(f"{name}: a transaction of transact_together only sends (use many, add_schedules, notify)")


class PostgresDialect:
    capabilities = Capabilities(listen_notify=True, skip_locked=True, multi_process=True)

    def __init__(self, conninfo: str, *, schema: str | None, db: Database) -> None:
        self.schema = schema
        self.channel = f"ductape_jobs_{schema or 'public'}"[:63]
        self._db = db
        self._listener = Listener(conninfo, self.channel)

    def transact(
        self, op: Callable[[PostgresTx], T], *, write: bool = True, idempotent: bool = False, claims: bool = False
    ) -> T:
        return self._db.run(lambda conn: op(PostgresTx(conn, self.channel)), idempotent=idempotent)

    def read(self, name: str, params: Params | None = None) -> list[Row]:
        return self._db.read(lambda conn: PostgresTx(conn, self.channel).all(name, params))

    def transact_together(
        self, ops: Iterable[Callable[[PostgresSendTx], None]], *, landed: Callable[[PostgresTx], bool]
    ) -> None:
        statements: Iterable[Statement] = (sent for op in ops for sent in self._sends(op))  # made as they are sent
        if isinstance(ops, Sequence):  # made first: a Python error here sends nothing
            statements = list(statements)
        self._db.run_together(statements, landed=lambda conn: landed(PostgresTx(conn, self.channel)))

    def _sends(self, op: Callable[[PostgresSendTx], None]) -> list[Statement]:
        gathered = PostgresSendTx(self.channel)
        op(gathered)
        return gathered.sent

    def migrate(self, *, create: bool = True) -> tuple[int, ...]:
        if self._db.autocommit(migrated):  # every migration applied: one read, no lock
            return ()
        if not create and not self._db.autocommit(made):
            where = f"schema {self.schema!r}" if self.schema else "its search path (no ?schema=)"
            raise ValidationError(
                "store",
                f"no ductape-jobs store in {where} of this PostgreSQL database: check the URL's database and "
                f"schema; {MAKES_ONE}",
            )
        applied: list[int] = []
        self._db.outside(lambda conn: migrate(conn, self.schema, applied))  # a transaction a version (schema.py)
        return tuple(applied)

    def schema_state(self) -> SchemaState:
        return self._db.autocommit(state)

    def close(self) -> None:
        self._listener.close()
        self._db.close()

    def wait_for_change(self, timeout: timedelta) -> Change | None:
        """Block until another connection writes something that may be due (what its NOTIFY said), or ``timeout``
        passes (``None``). The first call starts listening; notifications sent before it are not seen."""
        payloads = self._listener.wait(timeout)
        if not payloads:
            return None
        dues = [_due_of(p) for p in payloads]  # several read at once: the earliest, or now if one said now
        known = [due for due in dues if due is not None]
        return Change(min(known) if len(known) == len(dues) else None)

    def stop_waiting(self) -> None:
        self._listener.close()

    def promptly(self) -> AbstractContextManager[None]:
        """Never: every call waits for the server (``WouldWait`` on entry)."""
        return never_prompt()

    def server_time(self) -> datetime:
        row = self._db.autocommit(lambda c: c.execute(Q["server_time"]).fetchone())  # one round trip
        assert row is not None
        now: datetime = row["now"]
        return now.astimezone(UTC)
