"""One small driver per database: how to connect from a URL, run one transaction's set-up, stop a
running statement from another thread, and tell a transient failure from a permanent one.

Connections are DB-API objects (psycopg 3, PyMySQL, sqlite3), used from one worker thread at a time.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from ductape_jobs.errors import DatabaseError
from ductape_jobs.executors.databases.sql import Compiled, Dialect, ParamStyle
from ductape_jobs.extras import require
from ductape_jobs.redaction import redact_url

CONNECT_TIMEOUT = 10.0


class Driver:
    """What differs between databases. Subclasses implement the hooks; connections are ``Any``."""

    name: ClassVar[str]
    dialect: ClassVar[Dialect]
    style: ClassVar[ParamStyle]
    errors: tuple[type[BaseException], ...] = ()
    watchdog: ClassVar[bool] = False  # the timeout needs a timer thread calling ``interrupt``

    def connect(self, url: str, timeout: float) -> Any:
        raise NotImplementedError

    def alive(self, conn: Any) -> bool:
        """A cheap check before reusing a connection that sat idle for a while."""
        raise NotImplementedError

    def begin(self, conn: Any, timeout: float | None, stop: Callable[[], bool]) -> None:
        """Set up one transaction; ``stop()`` says the run was cancelled or timed out."""

    def end(self, conn: Any) -> None:
        """Undo what ``begin`` set on the connection (after commit or rollback)."""

    def commit(self, conn: Any) -> None:
        conn.commit()

    def rollback(self, conn: Any) -> None:
        conn.rollback()

    def close(self, conn: Any) -> None:
        conn.close()

    def interrupt(self, conn: Any, url: str) -> None:
        """Stop the statement running on ``conn`` (called from another thread)."""

    def execute(self, cur: Any, compiled: Compiled, params: dict[str, Any]) -> None:
        """Run ``compiled`` on the cursor ``cur`` with ``params`` (by key); its rows are then read from ``cur``."""
        cur.execute(compiled.sql, params)

    def adapt(self, value: Any) -> Any:
        return value

    def retryable(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def timed_out(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the database stopping a statement that ran past its timeout."""
        return False

    def describe(self, exc: BaseException) -> str:
        return " ".join(str(exc).split()) or type(exc).__name__


def _import(module: str, extra: str, database: str) -> Any:
    """The driver's module, or a run-failing (not retried) ``DatabaseError`` naming the extra to install."""
    return require(module, extra, f"a {database} DATABASE_ACTION", error=lambda m: DatabaseError(m, retryable=False))


class PostgresDriver(Driver):
    name = "PostgreSQL"
    dialect = "postgresql"
    style = "pyformat"
    # SQLSTATE classes worth another attempt: connection, transaction rollback (deadlock, serialization),
    # insufficient resources, operator intervention (cancel, shutdown), system error; plus lock_not_available.
    RETRYABLE_CLASSES = frozenset({"08", "40", "53", "57", "58"})

    def __init__(self) -> None:
        self.psycopg = _import("psycopg", "postgres", "PostgreSQL")
        self.errors = (self.psycopg.Error,)

    def connect(self, url: str, timeout: float) -> Any:
        url = re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url)
        # No server-side prepared statements: they break behind transaction-pooling proxies (PgBouncer).
        return self.psycopg.connect(
            url, autocommit=False, connect_timeout=max(2, math.ceil(timeout)), prepare_threshold=None
        )

    def alive(self, conn: Any) -> bool:
        if conn.closed or conn.broken:
            return False
        try:
            conn.execute("SELECT 1")
            conn.rollback()
        except self.psycopg.Error:
            return False
        return True

    def begin(self, conn: Any, timeout: float | None, stop: Callable[[], bool]) -> None:
        if timeout is not None:  # the server cancels the statement; SET LOCAL ends with the transaction
            ms = max(1, math.ceil(timeout * 1000))
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(ms),))

    def interrupt(self, conn: Any, url: str) -> None:
        conn.cancel_safe(timeout=5.0)

    def retryable(self, exc: BaseException) -> bool:
        state = getattr(exc, "sqlstate", None)
        if state:
            return state[:2] in self.RETRYABLE_CLASSES or state == "55P03"
        return isinstance(exc, self.psycopg.OperationalError | self.psycopg.InterfaceError)

    def timed_out(self, exc: BaseException) -> bool:
        return getattr(exc, "sqlstate", None) == "57014"

    def describe(self, exc: BaseException) -> str:
        state = getattr(exc, "sqlstate", None)
        text = super().describe(exc)
        return f"{text} (SQLSTATE {state})" if state else text


class MySQLDriver(Driver):
    name = "MySQL"
    dialect = "mysql"
    style = "qmark"
    watchdog = True
    # Client errors (2000-2999) are connection failures; of the server's: too many connections, shutdown,
    # aborted connection and network errors, lock wait timeout, deadlock, interrupted or killed statements.
    RETRYABLE_CODES = frozenset({1040, 1053, 1152, 1158, 1159, 1160, 1161, 1205, 1213, 1317, 1927, 1969, 3024, 4031})

    def __init__(self) -> None:
        self.pymysql = _import("pymysql", "mysql", "MySQL/MariaDB")
        self.errors = (self.pymysql.err.MySQLError,)

    def _params(self, url: str, timeout: float) -> dict[str, Any]:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            port = parts.port or 3306
        except ValueError as exc:
            raise DatabaseError(f"bad port in {redact_url(url)}", retryable=False) from exc
        params: dict[str, Any] = {
            "host": unquote(parts.hostname or "localhost"),
            "port": port,
            "user": unquote(parts.username) if parts.username else "root",
            "password": unquote(parts.password or ""),
            "database": unquote(parts.path.lstrip("/")) or None,
            "charset": query.get("charset", "utf8mb4"),
            "autocommit": False,
            "connect_timeout": min(max(timeout, 1.0), 3600.0),
            # rowcount counts matched rows (as PostgreSQL and SQLite do), not only the rows changed.
            "client_flag": self.pymysql.constants.CLIENT.FOUND_ROWS,
        }
        socket_path = query.get("unix_socket") or query.get("socket")
        if socket_path:
            params["unix_socket"] = socket_path
        return params

    def connect(self, url: str, timeout: float) -> Any:
        return self.pymysql.connect(**self._params(url, timeout))

    def alive(self, conn: Any) -> bool:
        try:
            conn.ping(reconnect=False)
        except self.pymysql.err.MySQLError:
            return False
        return bool(conn.open)

    def interrupt(self, conn: Any, url: str) -> None:
        thread_id = conn.thread_id()
        killer = self.pymysql.connect(**{**self._params(url, 5.0), "autocommit": True})
        try:
            with killer.cursor() as cur:
                cur.execute("KILL QUERY %s", (thread_id,))
        finally:
            killer.close()

    def execute(self, cur: Any, compiled: Compiled, params: dict[str, Any]) -> None:
        """A statement with parameters is prepared on the server (``PREPARE ... FROM``, its ``?`` where the tokenizer
        found ``:name``) and executed with the values in user variables, set by a statement of this driver's own:
        PyMySQL quotes each value into the text it sends, and a literal the tokenizer read otherwise than the server
        (an executable comment ``/*! ... */``, ``--`` before a control character, a ``sql_mode`` such as MSSQL's
        ``[brackets]``) let a value close it and run as SQL (a security probe). Misread so, a statement now fails
        (``Incorrect arguments to EXECUTE``); the variables are emptied after. One without parameters runs as
        written (some statements cannot be prepared)."""
        if not compiled.order:
            cur.execute(compiled.sql)
            return
        names = [f"@ductape_p{i}" for i in range(len(compiled.order))]
        cur.execute("SET " + ", ".join(f"{name} = %s" for name in names), [params[key] for key in compiled.order])
        try:
            cur.execute("PREPARE ductape_statement FROM %s", (compiled.sql,))
            cur.execute(f"EXECUTE ductape_statement USING {', '.join(names)}")  # its rows are read now (buffered)
        finally:
            with cur.connection.cursor() as other:  # the values are no later statement's to read
                other.execute("SET " + ", ".join(f"{name} = NULL" for name in names))

    def _code(self, exc: BaseException) -> int | None:
        code = exc.args[0] if exc.args else None
        return code if isinstance(code, int) else None

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, self.pymysql.err.InterfaceError):
            return True  # the connection is closed
        code = self._code(exc)
        if code is None:
            return isinstance(exc, self.pymysql.err.OperationalError)
        return 2000 <= code < 3000 or code in self.RETRYABLE_CODES

    def timed_out(self, exc: BaseException) -> bool:
        return self._code(exc) in (1317, 1927, 1969, 3024)

    def describe(self, exc: BaseException) -> str:
        code = self._code(exc)
        if code is not None and len(exc.args) > 1:
            return f"{' '.join(str(exc.args[1]).split())} (error {code})"
        return super().describe(exc)


class SQLiteDriver(Driver):
    name = "SQLite"
    dialect = "sqlite"
    style = "named"
    errors = (sqlite3.Error,)
    # Primary result codes worth another attempt: BUSY, LOCKED, NOMEM, INTERRUPT, IOERR, FULL, CANTOPEN, PROTOCOL.
    RETRYABLE_CODES = frozenset({5, 6, 7, 9, 10, 13, 14, 15})

    def connect(self, url: str, timeout: float) -> Any:
        rest = url.split("://", 1)[1]
        rest = rest.removeprefix("/")  # sqlite:///relative.db, sqlite:////absolute.db
        if not rest:
            raise DatabaseError(f"{url!r} names no file (use sqlite:///path/to/file.db)", retryable=False)
        path, _, query = rest.partition("?")
        conn = sqlite3.connect(
            f"file:{path}?{query}" if query else path,
            uri=bool(query),
            timeout=timeout,
            isolation_level=None,  # transactions are begun and ended here, explicitly
            check_same_thread=False,  # one worker thread at a time, not always the same one
        )
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def alive(self, conn: Any) -> bool:
        return True

    def begin(self, conn: Any, timeout: float | None, stop: Callable[[], bool]) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout

        def check() -> int:  # non-zero interrupts the statement
            return int(stop() or (deadline is not None and time.monotonic() > deadline))

        conn.set_progress_handler(check, 1000)
        # How long to wait for another writer's lock (the progress handler does not run while waiting).
        conn.execute(f"PRAGMA busy_timeout = {math.ceil((timeout or CONNECT_TIMEOUT) * 1000)}")
        conn.execute("BEGIN")

    def end(self, conn: Any) -> None:
        conn.set_progress_handler(None, 0)

    def commit(self, conn: Any) -> None:
        conn.execute("COMMIT")

    def rollback(self, conn: Any) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def interrupt(self, conn: Any, url: str) -> None:
        conn.interrupt()

    def adapt(self, value: Any) -> Any:
        # sqlite3's own date adapters are deprecated (3.12); store ISO text as SQLite's date functions read it.
        if isinstance(value, datetime):
            return value.isoformat(" ")
        if isinstance(value, date | dtime):
            return value.isoformat()
        if isinstance(value, Decimal | uuid.UUID):
            return str(value)
        return value

    def retryable(self, exc: BaseException) -> bool:
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int):
            return (code & 0xFF) in self.RETRYABLE_CODES
        return isinstance(exc, sqlite3.OperationalError)

    def timed_out(self, exc: BaseException) -> bool:
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF == 9  # SQLITE_INTERRUPT


_SCHEMES: dict[str, type[Driver]] = {
    "postgresql": PostgresDriver,
    "postgres": PostgresDriver,
    "mysql": MySQLDriver,
    "mariadb": MySQLDriver,
    "sqlite": SQLiteDriver,
}
_drivers: dict[type[Driver], Driver] = {}


def driver_for(url: str) -> Driver:
    """The driver for ``url``'s scheme (``postgresql``, ``postgres``, ``mysql``, ``mariadb``, ``sqlite``;
    a ``+driver`` suffix such as ``postgresql+psycopg`` or ``mysql+pymysql`` is accepted)."""
    scheme = url.partition("://")[0].lower().partition("+")[0] if "://" in url else ""
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise DatabaseError(
            f"unsupported database URL scheme {scheme + '://' if scheme else '(none)'} "
            "(use postgresql://, mysql://, mariadb:// or sqlite:///)",
            retryable=False,
        )
    if kind not in _drivers:
        _drivers[kind] = kind()
    return _drivers[kind]
