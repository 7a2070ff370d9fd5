"""Running one statement in one transaction on a pooled connection, from async code.

The driver call runs in a worker thread (``asyncio.to_thread``). The transaction commits only when the
statement succeeded and the run was neither cancelled nor timed out; otherwise it rolls back. A cancelled
await (the engine's run timeout) interrupts the statement on the database and rolls it back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ductape_jobs import tracing
from ductape_jobs.errors import DatabaseError, RunTimeoutError, ValidationError
from ductape_jobs.executors.databases.drivers import CONNECT_TIMEOUT, Driver, driver_for
from ductape_jobs.executors.databases.sql import (
    Compiled,
    Statement,
    bind_names,
    compile_statement,
    to_json_value,
)
from ductape_jobs.logs import logger
from ductape_jobs.redaction import mask_connection_url, redact_url

MAX_ROWS = 1000
log = logger("ductape_jobs.databases")


class _Stopped(Exception):
    """The run was cancelled or timed out after its statement finished: roll back."""


class _Run:
    """One statement's progress, shared by its worker thread and whoever cancels it or times it out."""

    def __init__(self, driver: Driver, url: str) -> None:
        self.driver = driver
        self.url = url
        self.lock = threading.Lock()
        self.conn: Any = None
        self.executing = False
        self.cancelled = False
        self.timed_out = False
        self.interrupted = False  # the connection had a statement stopped under it: don't reuse it

    def stop_requested(self) -> bool:
        return self.cancelled or self.timed_out

    def start(self, conn: Any) -> None:
        with self.lock:
            if self.cancelled:
                raise _Stopped
            self.conn, self.executing = conn, True

    def finish(self) -> bool:
        """Leave the statement phase; False when the transaction must not commit."""
        with self.lock:
            self.executing = False
            return not self.stop_requested()

    def _stop(self, timed_out: bool) -> None:
        with self.lock:  # held while interrupting, so the connection cannot be reused meanwhile
            if not self.executing:
                self.cancelled = self.cancelled or not timed_out
                return
            if timed_out:
                self.timed_out = True
            else:
                self.cancelled = True
            self.interrupted = True
            try:
                self.driver.interrupt(self.conn, self.url)
            except Exception as exc:  # the statement may have just ended; the flags still prevent the commit
                log.debug(
                    "interrupting a statement on %s failed: %s",
                    redact_url(self.url),
                    mask_connection_url(str(exc), self.url),
                )

    def expire(self) -> None:
        self._stop(timed_out=True)

    def cancel(self) -> None:
        threading.Thread(target=self._stop, args=(False,), name="ductape-db-cancel", daemon=True).start()


def _columns(description: Sequence[Sequence[Any]]) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for col in description:
        base = name = str(col[0])
        n = 1
        while name in seen:  # SELECT a.id, b.id: the second is id_2
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        names.append(name)
    return names


def _collect(cur: Any, driver: Driver) -> dict[str, Any]:
    if cur.description is None:
        return {"rowcount": max(cur.rowcount, 0)}
    columns = _columns(cur.description)
    fetched = cur.fetchmany(MAX_ROWS + 1)
    count = cur.rowcount
    if driver.dialect == "sqlite" or count < 0:
        # SQLite reports -1 for rows it has not stepped through; stepping to the end also completes RETURNING.
        count = len(fetched) + sum(1 for _ in cur)
    rows = [{c: to_json_value(v) for c, v in zip(columns, row, strict=True)} for row in fetched[:MAX_ROWS]]
    return {"rowcount": count, "rows": rows, "truncated": len(fetched) > MAX_ROWS}


class DatabasePool:
    """Idle connections kept per URL for reuse; thread-safe. ``close()`` closes them (and any connection
    in use is closed when its statement ends). A connection idle for over ``ping_after`` seconds is
    checked before reuse, one idle for over ``idle_timeout`` is closed instead."""

    def __init__(self, *, max_idle: int = 4, idle_timeout: float = 300.0, ping_after: float = 30.0) -> None:
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.ping_after = ping_after
        self._lock = threading.Lock()
        self._idle: dict[str, list[tuple[Driver, Any, float]]] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def idle_count(self, url: str | None = None) -> int:
        with self._lock:
            return sum(len(v) for k, v in self._idle.items() if url is None or k == url)

    async def run(
        self, url: str, statement: Statement, input: Mapping[str, Any] | None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """See :func:`run_statement`."""
        if timeout is not None and not timeout > 0:
            raise ValidationError("timeout", "must be a positive number of seconds")
        driver = driver_for(url)
        compiled = compile_statement(statement.sql, driver.dialect, driver.style)
        values = bind_names(compiled.names, input)
        params = {key: driver.adapt(values[name]) for name, key in compiled.keys}
        run = _Run(driver, url)
        try:
            return await asyncio.to_thread(self._run_sync, run, compiled, params, timeout)
        except asyncio.CancelledError:
            run.cancel()
            raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for stack in idle.values():
            for driver, conn, _ in stack:
                self._discard(driver, conn)

    def __enter__(self) -> DatabasePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ worker thread

    def _run_sync(self, run: _Run, compiled: Compiled, params: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        driver, safe_url = run.driver, redact_url(run.url)
        late = f"{driver.name} statement on {safe_url} passed its timeout of {timeout}s"
        try:
            return self._execute(run, compiled, params, timeout)
        except _Stopped:
            if run.timed_out:
                raise RunTimeoutError(late) from None
            raise DatabaseError(f"{driver.name} statement on {safe_url} was cancelled") from None
        except driver.errors as exc:
            if timeout is not None and not run.cancelled and (run.timed_out or driver.timed_out(exc)):
                raise RunTimeoutError(late) from exc
            # a driver's error may quote the URL's password (one it could not read: a space, a bad %-escape)
            described = mask_connection_url(driver.describe(exc), run.url)
            message = f"{driver.name} error on {safe_url}: {described}"
            raise DatabaseError(message, retryable=driver.retryable(exc)) from exc

    def _execute(self, run: _Run, compiled: Compiled, params: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        driver = run.driver
        conn = self._acquire(driver, run.url, timeout or CONNECT_TIMEOUT)
        reuse, timer = False, None
        try:
            driver.begin(conn, timeout, run.stop_requested)
            run.start(conn)
            if timeout is not None and driver.watchdog:
                timer = threading.Timer(timeout, run.expire)
                timer.daemon = True
                timer.start()
            cur = conn.cursor()
            try:
                driver.execute(cur, compiled, params)
                result = _collect(cur, driver)
            finally:
                cur.close()
            if not run.finish():
                raise _Stopped
            driver.commit(conn)
            reuse = True
            return result
        except BaseException:
            run.finish()
            reuse = self._rollback(driver, conn) and not run.interrupted
            raise
        finally:
            if timer is not None:
                timer.cancel()
            try:
                driver.end(conn)
            except Exception:
                reuse = False
            self._release(driver, run.url, conn, reuse)

    def _acquire(self, driver: Driver, url: str, timeout: float) -> Any:
        while True:
            with self._lock:
                if self._closed:
                    raise DatabaseError("the database pool is closed")
                stack = self._idle.get(url)
                item = stack.pop() if stack else None
            if item is None:
                return tracing.connection(driver.connect(url, timeout), driver.name.lower())  # no-op when off
            _, conn, since = item
            age = time.monotonic() - since
            if age > self.idle_timeout or (age > self.ping_after and not driver.alive(conn)):
                self._discard(driver, conn)
                continue
            return conn

    def _release(self, driver: Driver, url: str, conn: Any, reuse: bool) -> None:
        if reuse:
            with self._lock:
                stack = self._idle.setdefault(url, [])
                if not self._closed and len(stack) < self.max_idle:
                    stack.append((driver, conn, time.monotonic()))
                    return
        self._discard(driver, conn)

    @staticmethod
    def _rollback(driver: Driver, conn: Any) -> bool:
        try:
            driver.rollback(conn)
        except Exception as exc:
            log.debug("rollback failed, dropping the connection: %s", exc)
            return False
        return True

    @staticmethod
    def _discard(driver: Driver, conn: Any) -> None:
        try:
            driver.close(conn)
        except Exception as exc:
            log.debug("closing a database connection failed: %s", exc)


_default: DatabasePool | None = None
_default_lock = threading.Lock()


def default_pool() -> DatabasePool:
    """The process-wide pool ``run_statement`` uses when given none (the DATABASE_ACTION executor has its own,
    closed with the client). Nothing closes it at exit: its user calls ``close_default_pool()``."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = DatabasePool()
        return _default


def close_default_pool() -> None:
    """Close the process-wide pool (a later ``run_statement`` opens a new one)."""
    global _default
    with _default_lock:
        pool, _default = _default, None
    if pool is not None:
        pool.close()


async def run_statement(
    url: str,
    statement: Statement,
    input: Mapping[str, Any] | None,
    *,
    timeout: float | None = None,
    pool: DatabasePool | None = None,
) -> dict[str, Any]:
    """Run ``statement`` once against the database at ``url``, in one transaction (commit on success,
    rollback on any error), its ``:name`` parameters bound by the driver from ``input`` (``{data, filter}``).

    Returns ``{"rowcount": n}``, plus ``"rows"`` (at most 1000, as ``{column: value}`` with JSON-friendly
    values) and ``"truncated"`` for statements that return rows. Raises ``ExecutionError`` (retryable for
    connection and transient errors, not for missing parameters, integrity or syntax errors) or
    ``RunTimeoutError`` past ``timeout`` seconds.
    """
    return await (pool or default_pool()).run(url, statement, input, timeout=timeout)
