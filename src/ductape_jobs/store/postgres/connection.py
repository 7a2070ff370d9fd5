"""Connections of the PostgreSQL store: the URL's ``schema`` option, the pool, transactions, retries and the
translation of driver errors.

Every store call is one transaction on a pooled connection (``Database.run``). When it fails with an
``OperationalError`` (connection lost, server restarting, deadlock, serialization failure) it is retried a few
times with backoff if that is safe:

- a failure **before COMMIT** was sent: the server rolled the transaction back, so any call is retried;
- a failure **during COMMIT** (the outcome is unknown): only calls marked ``idempotent`` are retried, because
  running them twice leaves the same state. See ``store/core.py`` for which those are.

``run_together`` sends a call's statements in one round trip as one transaction: a single statement on its own
(autocommit: the server's implicit transaction), several as one pipeline (its implicit transaction, committed
at its Sync; statements made as they are sent go down it one by one, the server running each while the next is
made), where ``run`` takes one round trip for BEGIN, one per read and one for COMMIT. The server answers
in order, so the outcome is known in two of the three ways the call can fail:

- a statement fails (an error the server reports, with a SQLSTATE): the server skips what follows and rolls
  the transaction back at the Sync: nothing was written, and the call may be retried (if the error is an
  ``OperationalError``: a deadlock, a serialization failure);
- the call fails in Python before all is sent, or psycopg refuses a value (a NUL in a text, say): ROLLBACK
  goes before the Sync (or the connection is gone, and nothing reached a Sync): nothing was committed;
- the connection is lost once everything was sent: the commit may or may not have happened. The call says how
  to tell (``landed``, asked in a transaction of its own on the next try): if its work is there, the call
  returns, otherwise it is sent again; if that resend meets its own keys (the lost try's server process
  committed after the look), the call landed once and returns. A call without such a check could not be
  retried then.

``PoolTimeout`` is not retried (the pool already waited its ``timeout``). Other driver errors leave at once:
``UniqueViolation`` as ``ConflictError``; SQLSTATE ``DJ001``, raised by ``ductape_check_jobs()`` (migration 19),
as ``NotFoundError("job", tag)`` or ``StaleJobError(tag)`` (``dialect.job_check_error``); the rest as
``StoreError``, the driver's exception chained.

The URL's password is a secret (``redaction.connection_secrets``): libpq quotes one it cannot read (``invalid
percent-encoded token: "..."``, ``unexpected spaces found in "..."``) or the whole URL, so every message made of a
driver's error is masked by it (``mask_connection_url``), and it is learned process-wide for log lines (psycopg_pool
logs the errors of the connections it makes later itself).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import errors, pq, sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ductape_jobs.errors import ConflictError, StoreError, ValidationError
from ductape_jobs.logs import Repeats, logger
from ductape_jobs.redaction import SECRETS, connection_secrets, mask_connection_url, redact_url
from ductape_jobs.store.dialect import job_check_error
from ductape_jobs.timing.backoff import Backoff, retry

T = TypeVar("T")
Conn = psycopg.Connection[DictRow]
#: A statement of ``run_together``: its query, its parameters (a list of them when ``many``), ``many``.
Statement = tuple[str, Any, bool]
log = logger("ductape_jobs.store.postgres")

_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_POOL_OPTIONS = ("schema", "pool_min", "pool_max", "pool_timeout")
POOL_MIN, POOL_MAX = 1, 8  # a pool's connections when the URL does not say
#: How long the server lets one of the store's transactions wait for its process between statements before it ends
#: it (``idle_in_transaction_session_timeout``): a worker paused inside one (SIGSTOP, a VM's pause, a stalled
#: network) held its row locks for as long, and the other workers' ticks skipped those schedules (SKIP LOCKED)
#: until it woke, their occurrences missed; a ``pause()`` of one waited. The store's transactions are statements sent
#: back to back (a copy's two, which wait for each other, turn it off: transfer.sql): one ended this way is a
#: connection lost, tried again as such (module doc).
IDLE_IN_TRANSACTION = timedelta(seconds=5)
_WHOLE = re.compile(r"\s*[-+]?[0-9]{1,9}\s*")  # as libpq reads an integer parameter
#: A pool option's number (pool_min, pool_max, pool_timeout) in ASCII digits: int() and float() read others too.
_NUMBER = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?")
#: Raised by the store's own SQL functions when a job check fails (migration 19): the tag, and why as the detail.
JOB_CHECK_FAILED = "DJ001"
#: Each pool's number, in its name (``ductape-jobs-1``): what psycopg_pool's log lines name.
POOL_PREFIX = "ductape-jobs-"
_POOL_NUMBERS = itertools.count(1)
#: The pools opening now, by name, each with the reason its last try to connect failed (``_PoolLines``).
_OPENING: dict[str, str | None] = {}


#: At most one of psycopg_pool's lines about a failed try to connect each this many seconds, a pool (``_PoolLines``).
POOL_LINES_EVERY = 30.0
#: psycopg_pool's lines about a failed try to connect (its ``logger.warning`` formats).
_CONNECT_FAILED = ("error connecting in %r: %s", "reconnection attempt in pool %r failed after %s sec")


class _PoolLines(logging.Filter):
    """psycopg_pool logs each failed try to connect (``error connecting in 'ductape-jobs-1': ...``), one every
    second or two. While a pool opens, the store says once itself that it waits, and its error gives the last
    try's reason (one the probe did not meet: too many connections for the pool's size); after, during an outage,
    one line of each of the two kinds a pool is let through each ``POOL_LINES_EVERY`` seconds (the store's calls say
    when they fail and when they work again: ``logs.Repeats``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._shown: dict[tuple[str, str], float] = {}  # (pool name, line's format): when one was last let through

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and len(args) > 1 and isinstance(args[0], str)):
            return True
        if args[0] in _OPENING:
            _OPENING[args[0]] = str(args[1])
            return False
        if record.msg in _CONNECT_FAILED and args[0].startswith(POOL_PREFIX):
            key = (args[0], str(record.msg))
            now, shown = self._clock(), self._shown.get(key)
            if shown is not None and now - shown < POOL_LINES_EVERY:
                return False
            self._shown[key] = now
        return True


logging.getLogger("psycopg.pool").addFilter(_PoolLines())


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URL without our own query options (``schema``, ``pool_min``, ...), and those options.

    A parameter that is neither ours nor libpq's is a ``ValidationError`` (field ``store``) naming it and
    listing the known ones, as is a pool option that is not a positive number, and a URL that does not parse
    (``[::1`` without its ``]``): shown with its password masked, wherever the message quotes it (a password
    with an unescaped ``?`` ends the authority there: what follows reads as a parameter's name)."""
    try:
        return _split_url(url)
    except ValidationError as exc:
        raise ValidationError(exc.field, mask_connection_url(exc.rule, url)) from None


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # urlsplit's own words: "Invalid IPv6 URL"
        raise ValidationError("store", f"{redact_url(url)!r} is not a valid URL: {exc}") from None
    ours: dict[str, str] = {}
    kept: list[str] = []
    seen: set[str] = set()
    libpq = libpq_parameters()
    for pair in filter(None, parts.query.split("&")):
        # decoded as libpq decodes (%XX only: "+" is a plus, not a space) to know whose it is; libpq's own are
        # passed on as the user wrote them: decoded and encoded again, "-c%20x%3D1" became "-c+x%3D1", which
        # libpq reads as "-c +x=1" (FATAL: unrecognized configuration parameter "+x")
        key, _, value = (unquote(part) for part in pair.partition("="))
        if key in seen:  # the last would win, silently (schema=jobs&schema=other used "other")
            raise ValidationError("store", f"URL parameter {key!r} is given more than once")
        seen.add(key)
        if key in _POOL_OPTIONS:
            ours[key] = _checked_option(key, value)
        elif key in libpq:
            if key == "connect_timeout" and not _WHOLE.fullmatch(value):  # read by the pool, not by the first probe
                raise ValidationError(
                    "store", f"URL parameter connect_timeout={value!r} must be a whole number of seconds"
                )
            kept.append(pair)
        else:
            raise ValidationError(
                "store",
                f"unknown parameter {key!r} in the PostgreSQL URL (known: ours, {', '.join(_POOL_OPTIONS)}; "
                f"libpq's, {', '.join(sorted(libpq))})",
            )
    check_pool(int(ours.get("pool_min", POOL_MIN)), int(ours.get("pool_max", POOL_MAX)), "pool_max" in ours)
    return urlunsplit(parts._replace(query="&".join(kept))), ours


def check_pool(least: int, most: int, most_given: bool = True) -> None:
    """A pool's least connections at most its most (psycopg_pool's bare ValueError otherwise, naming neither)."""
    if least > most:
        most_is = f"pool_max ({most})" if most_given else f"pool_max, {most} by default"
        raise ValidationError("store", f"URL parameter pool_min={least} must be at most {most_is}")


def libpq_parameters() -> frozenset[str]:
    """The connection parameters the installed libpq knows (``sslmode``, ``connect_timeout``, ...)."""
    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def _checked_option(key: str, value: str) -> str:
    if key == "schema":  # empty (?schema=$UNSET): the store would go in the database's default schema, unasked
        return check_schema(value)
    try:
        number = int(value) if key in ("pool_min", "pool_max") else float(value)
    except ValueError:
        number = 0
    if not _NUMBER.fullmatch(value):
        number = 0
    if key == "pool_timeout" and not 0 < number <= 86_400:
        raise ValidationError("store", f"URL parameter pool_timeout={value!r} must be seconds, > 0 and <= 86400")
    if key != "pool_timeout" and not 1 <= number <= 1000:
        raise ValidationError("store", f"URL parameter {key}={value!r} must be a whole number from 1 to 1000")
    return value


def check_schema(schema: str) -> str:
    if not schema:
        raise ValidationError(
            "schema", "is empty: name one (letters, digits, '_'), or leave the parameter out for the database's default"
        )
    if not _SCHEMA.match(schema):
        raise ValidationError("schema", f"{schema!r} is not a plain identifier (letters, digits, '_'; max 63)")
    return schema


class Database:
    """A pool of connections, each with ``search_path`` set to ``schema``, and ``run`` (a transaction)."""

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str | None,
        min_size: int = 1,
        max_size: int = 8,
        timeout: timedelta = timedelta(seconds=10),
        retries: int = 3,
        backoff: timedelta = timedelta(milliseconds=50),
    ) -> None:
        self.schema = schema
        self.retries = retries
        self.conninfo = conninfo
        self._repeats = Repeats(log, "PostgreSQL store call")  # during an outage: a line each 30 s, not each try
        SECRETS.learn(connection_secrets(conninfo))  # log lines: psycopg_pool's own, and ours
        self.backoff = backoff
        self._backoff = Backoff(base=backoff, factor=2.0, cap=timedelta.max, jitter=0.0)
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if "application_name" not in conninfo:
            kwargs["application_name"] = "ductape-jobs"
        if "connect_timeout" not in conninfo:
            kwargs["connect_timeout"] = max(1, int(timeout.total_seconds()))
        self.pool: ConnectionPool[Conn] = ConnectionPool(
            conninfo,
            connection_class=psycopg.Connection[DictRow],
            kwargs=kwargs,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout.total_seconds(),
            configure=self._configure,
            # no check per checkout (a round trip per transaction): a connection found dead when used fails
            # with OperationalError, and run() checks the idle ones (pool.check()) before it tries again
            name=f"{POOL_PREFIX}{next(_POOL_NUMBERS)}",
            open=False,
            # a connection lost (the server restarting) is tried again on a doubling delay (1, 2, 4, 8, 16 s ...):
            # given up after the store's timeout, the next call connects afresh, so a worker is back within a few
            # seconds of its server, not up to half the outage later (17 s after 45 s, its due runs misfired)
            reconnect_timeout=timeout.total_seconds(),
        )
        where = f"cannot connect to PostgreSQL at {redact_url(conninfo)}"
        not_yet = _refused_for_good(conninfo, kwargs, where)
        if not_yet is not None:
            log.warning("%s yet (%s): waiting %g s for it", where, not_yet, timeout.total_seconds())
        _OPENING[self.pool.name] = None
        try:
            self.pool.open(wait=True, timeout=timeout.total_seconds())
        except PoolTimeout as exc:
            self.pool.close()
            try:  # once more without the pool, for the server's own reason (at most 2 s, as the probe)
                psycopg.connect(conninfo, **{**kwargs, "connect_timeout": 2}).close()
            except psycopg.Error as direct:
                raise StoreError(f"{where}: {self._masked(direct)}") from None  # its text may quote the password
            last = _OPENING.get(self.pool.name)
            tried = f"; the last try: {self._masked(last)}" if last else ""
            raise StoreError(f"{where} within {timeout}{tried}") from exc
        finally:
            _OPENING.pop(self.pool.name, None)

    def _masked(self, error: object) -> str:
        """A driver's error as the store's messages show it: the URL's password masked wherever it is quoted."""
        return mask_connection_url(str(error), self.conninfo)

    def _configure(self, conn: Conn) -> None:
        timeout = int(IDLE_IN_TRANSACTION.total_seconds() * 1000)
        conn.execute(sql.SQL("SET idle_in_transaction_session_timeout = {}").format(sql.Literal(timeout)))
        if self.schema is not None:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))

    def run(self, op: Callable[[Conn], T], *, idempotent: bool = False) -> T:
        """``op(conn)`` inside one transaction; retried on connection-level failures when safe (module doc)."""
        committing = False

        def once(conn: Conn) -> T:
            nonlocal committing
            committing = False
            with conn.transaction():
                result = op(conn)
                committing = True
            return result

        return self._retried(once, lambda: committing and not idempotent)

    def read(self, op: Callable[[Conn], T]) -> T:
        """``op(conn)`` outside a transaction block: the pool's connections are in autocommit, so each statement
        is its own transaction, and a read of one statement is one round trip where ``run`` takes three (BEGIN,
        it, COMMIT). For an ``op`` that only reads: retried on connection-level failures, as an idempotent ``run``."""
        return self.outside(op)

    def outside(self, op: Callable[[Conn], T]) -> T:
        """``op(conn)`` outside a transaction block (each statement its own transaction, or ``op``'s own
        ``conn.transaction()``s), retried on connection-level failures: for an ``op`` that may run again from its
        start after any of its statements, whether that statement landed or not (a read; the migrations, each
        version recorded by the transaction that applies it, each index build checked first)."""
        return self._retried(op, lambda: False)

    def run_together(self, statements: Iterable[Statement], *, landed: Callable[[Conn], bool]) -> None:
        """``statements`` (each ``(query, params, many)``: ``many`` runs one query over a list of parameters) as
        one transaction in one round trip: a single statement is sent on its own (the connection is in
        autocommit: the server runs it as its own transaction); several go as one pipeline, whose implicit
        transaction commits at its Sync. After a lost connection left the commit's outcome unknown, the next try
        first asks ``landed(conn)`` (its own transaction) whether the first committed: ``True`` ends the call.

        ``statements`` not a sequence: a pipeline that sends each as it is made, the server running it while the
        next is (an exception raised making one is an error in Python: what was sent is rolled back). They are
        remembered, so that a second try sends those made, then makes the rest.

        In a pipeline, PostgreSQL runs the statements up to the Sync as one transaction, committed at the Sync if
        none failed and rolled back otherwise, the statements after a failed one skipped. A value psycopg cannot
        send (a NUL in a text) sends ROLLBACK before the Sync, so what was sent is rolled back too; alone, such a
        statement is never sent."""
        if not isinstance(statements, Sequence):
            statements = _Remembered(statements)
        unknown = False

        def settled(conn: Conn) -> bool:
            with conn.transaction():
                return landed(conn)

        def once(conn: Conn) -> None:
            nonlocal unknown
            resent = unknown  # an earlier try's outcome was unknown (and its work was not found): it may still land
            if resent and settled(conn):
                return
            try:
                refused = _send(conn, statements)
            except _NotSent as exc:  # nothing was committed: the driver's error, as it is (retried if it may be)
                assert exc.__cause__ is not None
                raise exc.__cause__ from None
            except _Unmade:
                raise
            except BaseException as exc:
                # a statement's error (SQLSTATE): the server rolled back this try, the commit never happened; an
                # earlier try of unknown outcome stays unknown (every later try looks for it first)
                unknown = unknown or not (isinstance(exc, psycopg.Error) and exc.sqlstate is not None)
                raise
            if refused is not None:  # the first error, not the "pipeline aborted" of the statements after it
                # sent again after an unknown outcome: a server still running the lost try may have committed it
                # since the look, whatever refuses the resend (its key taken now; its job deleted or changed since
                # the try's check): then the call did land, once
                if resent and settled(conn):
                    return
                raise refused

        callers: BaseException | None = None
        try:
            self._retried(once, lambda: False)
        except _Unmade as exc:  # the caller's error, not the database's: never retried
            assert exc.__cause__ is not None
            callers = exc.__cause__
        if callers is not None:
            raise callers  # as it is, outside the handler: its own cause and context kept

    def _retried(self, once: Callable[[Conn], T], unsafe: Callable[[], bool]) -> T:
        """``once(conn)`` on a pooled connection, tried again after an ``OperationalError`` unless ``unsafe()``
        (COMMIT's outcome unknown for a call that cannot be run twice); driver errors translated."""
        tried = 0

        def attempt() -> T:
            nonlocal tried
            if tried:
                self.pool.check()  # the other idle connections may be dead too (a restart): replace those
            tried += 1
            with self.pool.connection() as conn:
                return once(conn)

        def retryable(exc: Exception) -> bool:
            # not PoolTimeout (an OperationalError too): the pool waited its timeout for a connection already; tried
            # again, a call answered after (retries + 1) timeouts (40 s at an outage, its error saying 10 s; a probe)
            return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolTimeout) and not unsafe()

        def on_retry(exc: Exception, delay: timedelta) -> None:
            self._repeats.failed(self._masked(exc), f"; retrying in {delay.total_seconds():.2f}s")

        try:
            done = retry(attempt, tries=self.retries + 1, backoff=self._backoff, retryable=retryable, on_retry=on_retry)
            self._repeats.ok()
            return done
        except errors.UniqueViolation as exc:
            raise ConflictError(f"{exc.diag.message_primary} ({exc.diag.message_detail})") from exc
        except PoolTimeout as exc:
            raise StoreError(f"PostgreSQL store: no connection available: {self._masked(exc)}") from exc
        except psycopg.Error as exc:
            if exc.sqlstate == JOB_CHECK_FAILED:
                raise job_check_error(exc.diag.message_detail or "", exc.diag.message_primary or "") from None
            raise StoreError(f"PostgreSQL store: {self._masked(exc)}") from exc

    def autocommit(self, op: Callable[[Conn], T]) -> T:
        """``op(conn)`` on a pooled connection outside a transaction block (driver errors translated)."""
        try:
            with self.pool.connection() as conn:
                return op(conn)
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store: {self._masked(exc)}") from exc

    def close(self) -> None:
        self.pool.close()


class _Remembered(Iterable[T]):
    """An iterable that makes its items once: iterated again, it yields those made, then makes the rest."""

    def __init__(self, items: Iterable[T]) -> None:
        self._made: list[T] = []
        self._rest = iter(items)

    def __iter__(self) -> Iterator[T]:
        yield from self._made
        for item in self._rest:
            self._made.append(item)
            yield item


class _Unmade(Exception):
    """Making a statement of ``run_together`` failed (its cause: the caller's error); what was sent is rolled back."""


class _NotSent(Exception):
    """``_send`` failed before anything could commit (its cause: the error)."""


def _send(conn: Conn, statements: Iterable[Statement]) -> psycopg.Error | None:
    """Send ``statements`` as one transaction (``Database.run_together``; not a sequence: each as it is made,
    in a pipeline). Returns the server's first error (a SQLSTATE: the transaction was rolled back); raises
    ``_NotSent`` from an error after which nothing can have been committed; any other error leaves the commit's
    outcome unknown."""
    if isinstance(statements, Sequence) and len(statements) == 1 and not statements[0][2]:
        query, params, _ = statements[0]
        try:
            conn.execute(query, params)  # autocommit: the statement is its own transaction
        except psycopg.Error as exc:
            if exc.sqlstate is not None:
                return exc
            if not isinstance(exc, psycopg.OperationalError):  # refused by psycopg before it was sent
                raise _NotSent() from exc
            raise  # the connection lost: committed or not
        return None
    return _send_pipelined(conn, iter(statements))


def _send_pipelined(conn: Conn, made: Iterator[Statement]) -> psycopg.Error | None:
    """``_send`` of several statements, or of statements made as they are sent: one pipeline. Its statements are
    not prepared: the server skips the statements after a failed one up to the Sync, their Parse too, yet psycopg
    3.3 counts one it meant to prepare there (a statement's sixth run on a connection) as prepared when the pipeline
    is the server's implicit transaction, its error perhaps never read (the caller's own raised first): on that
    connection the statement's next run would fail, "prepared statement ... does not exist", until the pool retired
    it. (In a transaction block, ``Tx.together``, psycopg forgets it at the rollback.)"""
    refused: psycopg.Error | None = None
    try:
        with conn.pipeline():
            try:
                while (statement := _next(conn, made)) is not None:
                    query, params, many = statement
                    for one in params if many else [params]:
                        conn.execute(query, one, prepare=False)
            except _Unmade:
                raise
            except psycopg.Error as exc:
                if exc.sqlstate is None:  # not the server's answer: a value psycopg cannot send, or the
                    _roll_back(conn)  # connection lost (then nothing reaches a Sync anyway)
                    raise _NotSent() from exc
                refused = exc  # the transaction is aborted; the Sync ends it (ROLLBACK would fail)
            except BaseException as exc:
                _roll_back(conn)
                raise _NotSent() from exc
    except psycopg.Error:
        if refused is None:  # at the Sync: the server's error, or the connection lost (unknown)
            raise
    return refused


def _next(conn: Conn, made: Iterator[Statement]) -> Statement | None:
    """The next statement to send (``None``: none is left). An exception raised making it rolls back what was sent
    and leaves as ``_Unmade``: it is the caller's, however it looks (an ``OperationalError`` of another connection
    is not this one lost), so it is never retried."""
    try:
        return next(made, None)
    except BaseException as exc:
        _roll_back(conn)
        raise _Unmade() from exc


def _roll_back(conn: Conn) -> None:
    """End a pipeline's implicit transaction rolled back, before its Sync would commit what was sent.

    The ROLLBACK stays out of psycopg's cache of prepared statements (``prepare_threshold`` None while it is sent):
    counted, it would be prepared at its sixth run, skipped by a server that refused an earlier statement, and
    left named in the cache; and psycopg answers the result of a ROLLBACK it counts by clearing the cache and
    queueing DEALLOCATE ALL before the connection's next statement, which would drop the statement an executemany
    (always prepared) made just before it, its next run failing, "prepared statement ... does not exist"."""
    threshold = conn.prepare_threshold
    conn.prepare_threshold = None
    try:
        with contextlib.suppress(psycopg.Error):  # the connection may be gone: then nothing commits
            conn.execute("ROLLBACK")
    finally:
        conn.prepare_threshold = threshold


class Listener:
    """A connection of its own that LISTENs on ``channel`` (opened on the first ``wait``)."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def wait(self, timeout: timedelta) -> list[str]:
        """The payloads of the notifications read once one arrives (all that one read of the socket holds: a
        notification left in psycopg's generator would be lost), none after ``timeout``."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:  # within about the wait's time, not libpq's 130 s (a
                    # worker stopping while its database's host drops packets waited that long to join its listener)
                    given = "connect_timeout" in self.conninfo or os.environ.get("PGCONNECT_TIMEOUT")  # the user's
                    bound: dict[str, Any] = {} if given else {"connect_timeout": _connect_bound(timeout)}
                    self._conn = psycopg.connect(self.conninfo, autocommit=True, **bound)
                    self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                return [n.payload for n in self._conn.notifies(timeout=timeout.total_seconds(), stop_after=1)]
            except psycopg.Error as exc:
                self._close()
                shown = mask_connection_url(str(exc), self.conninfo)
                raise StoreError(f"PostgreSQL store: LISTEN failed: {shown}") from exc

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _connect_bound(wait: timedelta) -> int:
    """libpq's ``connect_timeout`` for a listener's connection made within a wait of ``wait``: whole seconds, at
    least 2 (libpq takes 1 as 2)."""
    return max(2, math.ceil(wait.total_seconds()))


#: What libpq says of a connection that no wait would make (a database or user that does not exist, a password or
#: host refused, a parameter it cannot read, a role that may not log in or connect to the database); a server not up
#: yet, restarting or full says otherwise. A message in another language matches none, and the pool waits as before.
_FOR_GOOD = re.compile(
    r"does not exist|authentication failed|no pg_hba\.conf entry|invalid (?:\w+ )*(?:value|option|number)"
    r"|is not permitted to log in|permission denied for database"
)


def _refused_for_good(conninfo: str, kwargs: dict[str, Any], where: str) -> str | None:
    """One connection first, without the pool: one that the server or libpq refuses for good is a ``StoreError``
    at once, rather than after the pool's timeout of retries. Another failure (the server not up yet) is left to
    the pool, which waits for it: its reason's first line is returned (``None``: the connection was made)."""
    try:  # at most 2 s: a host that does not answer is the pool's to wait for, not this probe's
        psycopg.connect(conninfo, **{**kwargs, "connect_timeout": 2}).close()
    except psycopg.Error as exc:
        reason = mask_connection_url(str(exc), conninfo)
        if isinstance(exc, psycopg.ProgrammingError) or _FOR_GOOD.search(reason):  # the first: libpq cannot read it
            raise StoreError(f"{where}: {reason}") from None  # libpq's text may quote the password: masked here only
        return reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
    return None
