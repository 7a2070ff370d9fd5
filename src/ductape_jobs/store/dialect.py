"""What a SQL backend supplies to the one store core (``core.py``): a *dialect*.

The store's logic is written once, over named queries. A dialect supplies only what differs between
databases (as procrastinate's connector and River's driver do):

- connections and transactions (``transact``): SQLite's one connection and single writer, PostgreSQL's pool
  and its retries on a lost connection;
- its ``.sql`` files, with the same query names on every backend, in the backend's placeholder style; a
  parameter whose value is a list is the backend's array (``= ANY(%(ids)s)``; SQLite: ``json_each(:ids)``);
- its claim of due runs (``Tx.claim_runs``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single writer);
- how it stores new schedules with the checks of their jobs (``Tx.add_schedules``: one statement on PostgreSQL,
  its checks raised in the server, so ``transact_together`` needs no read in between; on SQLite queries in turn,
  the checks read and raised in-process);
- its wake-up (``Tx.notify`` and ``wait_for_change``: LISTEN/NOTIFY; nothing to do in-process on SQLite);
- its migrations, its server clock and ``capabilities``.

Rows are ``dict[str, Any]`` keyed by column name; the codecs turn them into records. Driver exceptions leave
``transact`` as ``ConflictError`` (a unique violation) or ``StoreError``, the driver's exception chained; a failed
check of ``Tx.add_schedules`` as ``job_check_error``'s ``NotFoundError`` or ``StaleJobError``; a text the database
cannot hold (``unstorable``) as a ``ValidationError`` naming its parameter.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, TypeVar

from ductape_jobs.errors import NotFoundError, StaleJobError, StoreError, StoreUnusableError, ValidationError
from ductape_jobs.limits import LONE_SURROGATE, has_lone_surrogate

if TYPE_CHECKING:
    from ductape_jobs.store.base import Capabilities, Change
    from ductape_jobs.store.sql import SchemaState

T = TypeVar("T")
Row = dict[str, Any]
Params = Mapping[str, Any]
#: A table's rows a batch at a time (``Tx.rows_of``): closed, it ends its read.
Batches = Generator[list[Row], None, None]


class Tx(Protocol):
    """One transaction of a dialect: named queries run in it."""

    def one(self, name: str, params: Params | None = None) -> Row | None:
        """The first row of query ``name`` (``None``: no row)."""

    def all(self, name: str, params: Params | None = None) -> list[Row]:
        """Every row of query ``name``."""

    def run(self, name: str, params: Params | None = None) -> int:
        """Run query ``name``; how many rows it changed."""

    def many(self, name: str, params: Sequence[Params]) -> None:
        """Run query ``name`` once per parameter set (batched; no rows back)."""

    def each(self, name: str, params: Sequence[Params]) -> list[Row]:
        """Run query ``name`` once per parameter set; the rows every run returned, in order."""

    def later(self, name: str, params: Params | None = None) -> Callable[[], list[Row]]:
        """Send query ``name`` now and read its rows when the returned function is called: inside ``together``,
        the statements sent before that first read go in one round trip (PostgreSQL), each run in order."""

    def rows_of(self, table: str, columns: Sequence[str], order: Sequence[str], batch: int) -> Batches:
        """Every row of ``table`` (a table of the store's schema; its ``columns``, in ``order``), ``batch`` at a time,
        read as the transaction sees them (a copy of the store, ``transfer.py``: the names are the schema's own)."""

    def put_rows(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        """Insert ``rows`` into ``table`` as they are, their ``columns`` given (generated keys too: a copy of the
        store keeps them)."""

    def claim_runs(self, params: Params) -> tuple[list[Row], bool]:
        """Claim due runs under no limit for a worker and record their attempts (``acquire_runs``'s
        parameters); the claimed runs' rows, in any order, and whether a run under a limit is due."""

    def claim_picked(self, params: Params) -> list[Row]:
        """Claim the runs ``params["ids"]`` (picked and, where the dialect locks, locked in this transaction)
        and record their attempts, as ``claim_runs``; their rows."""

    def add_schedules(
        self, checks: Sequence[Params], schedules: Sequence[Params], keyed: Sequence[Params], firsts: Sequence[Params]
    ) -> None:
        """Store new schedules, all or none: first check the jobs they schedule, then write the rows of
        ``insert_schedule`` (``schedules``), ``set_feature_key`` (``keyed``) and ``insert_first_run``
        (``firsts``), then ``notify`` (PostgreSQL: one statement, ``ductape_add_schedules()``, migration 21;
        SQLite: those queries in turn).

        Each check is ``{product_tag, tag, absent, planned, event_type, event_tag, executions, intervals,
        start_at, updated_at}``. ``absent`` false: the job must exist, and stays locked against deletion until
        the transaction ends; with ``planned``, its stored planning fields (the rest) must be those. ``absent``
        true: no such job may exist. The first failure (missing jobs first, then the absent ones, then the
        planned ones; then by product and tag) is ``job_check_error``'s: ``NotFoundError("job", tag)`` or
        ``StaleJobError(tag)``, raised here (SQLite) or when the call's statement ends (PostgreSQL: the server
        raises), and nothing is written."""

    def notify(self) -> None:
        """Tell other processes' ``wait_for_change`` (at commit) that runs or schedules may be due sooner."""

    def sync_outbox_triggers(self) -> None:
        """Make the outbox's triggers exist exactly while some webhook does (created with the first, dropped with
        the last), in the transaction that added or deleted a webhook: without one, writing runs fires nothing."""

    def together(self) -> AbstractContextManager[object]:
        """Statements run inside are sent together where the dialect can (PostgreSQL's pipeline: one round
        trip), their errors raised when it ends or at the next read. Reading rows inside (``one``, ``all``,
        ``each`` or a ``later``'s function) sends what is pending and waits for it; ``run``'s count is only
        known outside."""


class Dialect(Protocol):
    capabilities: Capabilities

    def transact(
        self, op: Callable[[Tx], T], *, write: bool = True, idempotent: bool = False, claims: bool = False
    ) -> T:
        """``op(tx)`` in one transaction, committed when it returns and rolled back when it raises.
        ``idempotent``: running it twice leaves the state once would, so a dialect may retry it even when a
        COMMIT's outcome is unknown. ``write=False``: it only reads. ``claims``: it claims runs, which start as
        soon as it returns (SQLite: its COMMIT never checkpoints the WAL; a later write's does)."""

    def read(self, name: str, params: Params | None = None) -> list[Row]:
        """The rows of query ``name``, one statement that only reads, made on its own. PostgreSQL sends it outside
        a transaction block (its connections are in autocommit: the statement is its own transaction), one round
        trip where BEGIN, the statement and COMMIT take three; SQLite reads it as ``transact(write=False)`` does."""

    def transact_together(self, ops: Iterable[Callable[[Tx], None]], *, landed: Callable[[Tx], bool]) -> None:
        """A write sent whole: its statements and the end of its transaction go together. Each op only sends
        (PostgreSQL refuses reads and ``run``, whose count comes at the end), and the first statement that fails
        aborts the transaction in the server, its error raised at the end (unless an exception raised making a
        later op comes first: that one is raised, and nothing is committed either way).

        A sequence of ops is run first, then sent (PostgreSQL: in one round trip, one statement on its own, several
        as one pipeline, run as its implicit transaction; a Python error in an op sends nothing). Another iterable
        is sent as it yields: each op's statements go to the server before the next op is made (PostgreSQL: one
        pipeline, whose Sync commits after the last), and an exception raised while making or running an op
        rolls back what was sent before it is raised. SQLite makes and runs them all in one transaction.

        The commit happens once everything was sent, so a connection lost while waiting for the answer leaves
        its outcome unknown. Before trying again after such a failure, the dialect asks ``landed(tx)`` in a
        transaction of its own whether the first try committed (for example: does the first row it inserted
        exist?): ``True`` ends the call as a success, ``False`` runs the ops again (those already made, then the
        rest). A failure the server reported (a statement's error) means nothing was committed."""

    def migrate(self, *, create: bool = True) -> tuple[int, ...]: ...

    def schema_state(self) -> SchemaState: ...

    def close(self) -> None: ...

    def wait_for_change(self, timeout: timedelta) -> Change | None: ...

    def stop_waiting(self) -> None: ...

    def server_time(self) -> datetime | None: ...

    def promptly(self) -> AbstractContextManager[None]:
        """``SchedulingStore.promptly``: this thread's transactions made at once or refused (``WouldWait``)."""


def job_check_error(why: str, tag: str) -> NotFoundError | StaleJobError:
    """The typed error of a failed check of ``Tx.add_schedules``, from its ``why`` (``missing`` or ``stale``)
    and the tag."""
    return NotFoundError("job", tag) if why == "missing" else StaleJobError(tag)


#: How many forks this process is from the one that imported this module: a store remembers the count it was opened
#: at, and a store opened before a fork is its parent's (its connections are shared with the parent).
_FORKS = [0]
os.register_at_fork(after_in_child=lambda: _FORKS.__setitem__(0, _FORKS[0] + 1))


#: A list's cursor when none is given: a time (Unix ms) later than any record's, which every row is compared to (a
#: plain term still, which an index takes: ``list_runs``, ``list_schedules``, ``list_feature_runs``, ...).
NO_CURSOR: Final = {"after_at": 2**62, "after_id": ""}


class Cursor(NamedTuple):
    """How a list pages past a record (``UsesDialect._page``): the query that reads the record by ``id``, its kind
    (as ``NotFoundError`` names it), its time column (the list's order: that time, then the id, newest first), and
    the list's filters a cursor must match (``scope``: a record outside them is not in the list)."""

    lookup: str
    kind: str
    column: str
    scope: tuple[str, ...]


class UsesDialect:
    """The part of the store core that runs queries: ``_read`` and ``_write`` over the dialect ``_d``, each refused
    (``StoreUnusableError``) once the store is closed, or in a process forked from the one that opened it."""

    _d: Dialect
    _opened_at_fork: int = 0
    _closed: bool = False

    def _opened_here(self) -> None:
        self._opened_at_fork = _FORKS[0]

    def _forked(self) -> bool:
        return self._opened_at_fork != _FORKS[0]

    def _usable(self) -> None:
        if self._closed:
            raise StoreUnusableError("the store is closed (its client's close() ran): open a new client")
        if self._forked():  # a forked child sharing the parent's connections: calls failed at random, then hung
            raise StoreUnusableError(
                "the store was opened in the process this one was forked from, whose connections it would share: "
                "open the client in each process after the fork (an app's lifespan or startup; with gunicorn "
                "--preload, not at import)"
            )

    def _read(self, op: Callable[[Tx], T]) -> T:
        self._usable()
        return self._d.transact(op, write=False, idempotent=True)

    def _read_all(self, name: str, params: Params | None = None) -> list[Row]:
        """The rows of query ``name``, a read of one statement (``Dialect.read``: on PostgreSQL, one round trip)."""
        self._usable()
        return self._d.read(name, params)

    def _read_one(self, name: str, params: Params | None = None) -> Row | None:
        """The first row of query ``name``, a read of one statement (``None``: no row)."""
        rows = self._read_all(name, params)
        return rows[0] if rows else None

    def _page(
        self, name: str, params: Params, after: str | None, cursor: Cursor, decode: Callable[[Row], T]
    ) -> list[T]:
        """The records list query ``name`` reads (``params`` hold ``NO_CURSOR``'s), past the one ``after`` names when
        given, that record and the page read together. One of no record, or outside the list's ``cursor.scope`` (of
        another product or env than the list keeps, say), is ``NotFoundError``."""
        if after is None:
            return [decode(r) for r in self._read_all(name, params)]

        def op(tx: Tx) -> list[T]:
            found = tx.one(cursor.lookup, {"id": after})
            if found is None or any(params[k] is not None and found[k] != params[k] for k in cursor.scope):
                raise NotFoundError(cursor.kind, after)  # outside: an API key limited to a product learned the rest
            return [decode(r) for r in tx.all(name, {**params, "after_at": found[cursor.column], "after_id": after})]

        return self._read(op)

    def _write(self, op: Callable[[Tx], T], *, idempotent: bool = False, claims: bool = False) -> T:
        self._usable()
        return self._d.transact(op, idempotent=idempotent, claims=claims)

    def _write_together(self, ops: Iterable[Callable[[Tx], None]], *, landed: Callable[[Tx], bool]) -> None:
        self._usable()
        self._d.transact_together(ops, landed=landed)


#: What makes a store, as an error refusing a store none was made in says it.
MAKES_ONE = (
    "`ductape migrate`, a worker, `ductape serve`, `job create`, `apikey create`, `webhook create`, `feature run` or "
    "`demo` makes one"
)

#: A table's or a column's name as the store's schema spells them: what ``quoted`` takes.
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def quoted(name: str) -> str:
    """``name``, a table's or a column's of the store's schema, as a quoted SQL identifier (both dialects quote
    with ``"``); a name the schema could not hold is a ``StoreError``, so no text reaches a statement as SQL."""
    if not _NAME.fullmatch(name):
        raise StoreError(f"{name!r} is not a name of the store's schema")
    return f'"{name}"'


def link_new(part: str, to: str) -> None:
    """``part`` made ``to`` (a SQLite file written aside: a backup, a copy), unless ``to`` exists
    (``FileExistsError``): a hard link, which fails if it does; where the file system has none (FAT, some network
    mounts), ``to`` made first (``O_EXCL``), then replaced by ``part``."""
    try:
        os.link(part, to)
    except FileExistsError:
        raise
    except OSError:
        os.close(os.open(to, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.replace(part, to)


def plain_file(path: str) -> bool:
    """Whether a SQLite store's path is a file of the file system: not ``:memory:`` (nor empty, a temporary
    database). A ``file:`` URI is refused by ``store.sqlite_path``."""
    return path not in ("", ":memory:")


def unstorable(exc: Exception, params: Params | Sequence[Params] | None) -> Exception:
    """A text the driver would not send (nothing was), as the ``ValidationError`` naming the parameter that held it:
    a lone surrogate (UTF-8 cannot encode it; both drivers raise ``UnicodeEncodeError``), or a NUL character, which
    PostgreSQL's text cannot hold (psycopg's ``DataError``); ``exc`` itself for another error. A filter, an id or a
    reason with one was a ``StoreError`` (HTTP 503) or a bare ``UnicodeEncodeError``. SQLite keeps a NUL."""
    if isinstance(exc, UnicodeEncodeError):
        rule, bad = LONE_SURROGATE, has_lone_surrogate
    elif "cannot contain NUL" in str(exc):
        rule, bad = "must not contain a NUL character (\\x00)", _has_nul
    else:
        return exc
    rows = [params] if isinstance(params, Mapping) else list(params or ())
    field = next((key for row in rows for key, value in row.items() if isinstance(value, str) and bad(value)), None)
    return ValidationError(_API_NAMES.get(field or "value", field or "value"), rule)


#: Query parameters whose API name differs (``job.runs(job_id=...)``, ``GET /runs?job_id=``).
_API_NAMES = {"schedule_id": "job_id"}


def _has_nul(text: str) -> bool:
    return "\x00" in text
