"""What every broker publisher shares: a lazy, reused connection and one way of failing.

A subclass says how to connect, how to tell a connection is still alive, how to send and how to
disconnect. ``LazyPublisher`` connects on the first ``publish``, reuses the connection, replaces it
when it has died (or when it was made on another event loop), and turns any error of the client
library into a retryable ``ExecutionError`` naming the broker URL (password hidden) and the topic.
The connection that failed is dropped, so the next call connects anew.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from ductape_jobs.errors import DuctapeError, ExecutionError, ValidationError, describe
from ductape_jobs.logs import logger
from ductape_jobs.redaction import redact_url

C = TypeVar("C")
log = logger("ductape_jobs.brokers")
CLOSE_TIMEOUT = 5.0


class LazyPublisher(Generic[C]):
    """Base of the publishers; ``C`` is the client object (or bundle of objects) one connection is."""

    broker: ClassVar[str] = "broker"

    def __init__(self, url: str) -> None:
        self.url = url
        self.safe_url = redact_url(url)
        self._secret = urlsplit(url).password
        self._conn: C | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._guard: tuple[C, asyncio.Task[None]] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.safe_url!r})"

    @property
    def connection(self) -> C | None:
        """The live client, or None before the first publish and after ``close()`` or a failure."""
        return self._conn

    async def publish(
        self, topic: str, message: bytes, *, headers: dict[str, str] | None = None, key: str | None = None
    ) -> dict[str, Any]:
        if not isinstance(topic, str) or not topic:
            raise ValidationError("topic", "must be a non-empty string")
        if not isinstance(message, bytes | bytearray | memoryview):
            raise ValidationError("message", f"must be bytes, not {type(message).__name__}")
        for name, value in (headers or {}).items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise ValidationError("headers", "names and values must be strings")
        conn: C | None = None
        try:
            conn = await self._ensure()
            return await self._send(conn, topic, bytes(message), dict(headers or {}), key)
        except DuctapeError:
            raise
        except Exception as exc:
            if conn is not None:
                await self._drop(conn)
            why = describe(exc)
            if self._secret:  # in case the library quoted the URL
                why = why.replace(self._secret, "***")
            raise ExecutionError(f"{self.broker} publish to topic {topic!r} on {self.safe_url} failed: {why}") from exc

    async def close(self) -> None:
        if self._conn is not None and self._loop is asyncio.get_running_loop():
            await self._drop(self._conn)
        self._conn = self._guard = None

    async def _ensure(self) -> C:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._conn is not None:  # its loop ended without cancelling the guard: it can't be closed
                log.warning("%r: dropping a connection made on another event loop", self)
            self._conn, self._guard, self._loop, self._lock = None, None, loop, asyncio.Lock()
        async with self._lock:
            if self._conn is not None and not self._alive(self._conn):
                log.info("%r: connection lost, reconnecting", self)
                await self._drop(self._conn)
            if self._conn is None:
                conn = self._conn = await self._connect()
                self._guard = (conn, loop.create_task(self._close_with_loop(conn), name=f"{self!r} guard"))
            return self._conn

    async def _close_with_loop(self, conn: C) -> None:
        """Waits as long as ``conn`` is open; when the loop shuts down (``asyncio.run`` cancels every task
        left) it closes ``conn`` while the loop still runs, so a publisher outlives an ``asyncio.run``
        without leaking sockets, and connects again in the next loop."""
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            if self._guard is not None and self._guard[0] is conn:  # not cancelled by _drop: shutdown
                await self._drop(conn)
            raise

    async def _drop(self, conn: C) -> None:
        if self._conn is conn:
            self._conn = None
        if self._guard is not None and self._guard[0] is conn:
            guard, self._guard = self._guard[1], None
            if guard is not asyncio.current_task():
                guard.cancel()
        try:
            await asyncio.wait_for(self._disconnect(conn), CLOSE_TIMEOUT)
        except Exception as exc:  # closing a broken connection often fails; it is gone either way
            log.debug("%r: error while closing: %r", self, exc)

    # -- what a broker module provides ----------------------------------------------------------

    async def _connect(self) -> C:
        raise NotImplementedError

    def _alive(self, conn: C) -> bool:
        return True

    async def _send(
        self, conn: C, topic: str, message: bytes, headers: dict[str, str], key: str | None
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def _disconnect(self, conn: C) -> None:
        raise NotImplementedError
