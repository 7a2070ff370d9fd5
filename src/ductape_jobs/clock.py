"""Clocks. Every piece of timing logic asks a ``Clock`` for the time, so tests move time instead of sleeping.

``StoreClock`` corrects a local clock by the database server's, so nodes whose own clocks drift agree on what
is due (``Ductape`` uses it on PostgreSQL unless a clock is injected; see the README's "Scaling out").
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ductape_jobs.limits import span_text

log = logging.getLogger("ductape_jobs.clock")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


def to_ms(t: datetime) -> datetime:
    """``t`` to the millisecond, as the stores keep times: a call that writes a record takes its time so, and what it
    answers is what a read gives back. The clocks themselves keep microseconds (the worker sleeps by them)."""
    return t.replace(microsecond=t.microsecond - t.microsecond % 1000)


def iso_text(t: datetime) -> str:
    """``t`` as every answer spells a time (the HTTP API's records, ``--json``, the live stream, webhook bodies):
    ISO 8601 as pydantic writes it, UTC as ``Z`` (``2026-12-05T09:16:00.020000Z``; no fraction on a whole second)."""
    text = t.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to (``advance``/``set``). Thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        with self._lock:
            self._now += delta if delta is not None else timedelta(**kwargs)
            return self._now


class ServerTime(Protocol):
    """What ``StoreClock`` needs of a store (``Store.server_time``)."""

    def server_time(self) -> datetime | None: ...


class StoreClock:
    """``local`` shifted by its offset from the store's server clock: ``now() = local.now() + offset``.

    The offset is measured at the midpoint of a round trip (``server_time() - local.now()``; the shortest of
    ``samples`` round trips) and measured again every ``resync``, in a background thread, so ``now()`` never waits
    for the database. If a resync fails the last offset stays (and is tried again after ``retry``).
    ``uncertainty``: half the round trip the offset was measured over, the most it can be off by.
    """

    def __init__(
        self,
        local: Clock,
        store: ServerTime,
        resync: timedelta = timedelta(seconds=30),
        *,
        retry: timedelta = timedelta(seconds=2),
        samples: int = 3,
    ) -> None:
        self.local = local
        self.store = store
        self.resync = resync
        self.retry = retry
        self.samples = max(1, samples)
        self.offset = timedelta(0)
        self.uncertainty = timedelta(0)  # half the round trip the offset was measured over: its error at most
        self.has_server = False
        self._lock = threading.Lock()
        self._syncing = False
        self._next_sync = float("inf")
        best = self._best()
        if best is None:
            return  # the store has no clock of its own: the local one as it is
        self.offset, self.uncertainty, self.has_server = best[1], best[0] / 2, True
        self._next_sync = time.monotonic() + resync.total_seconds()

    @classmethod
    def attach(cls, local: Clock, store: ServerTime, resync: timedelta = timedelta(seconds=30)) -> Clock:
        """A ``StoreClock`` when the store reports a server time, else ``local`` itself."""
        clock = cls(local, store, resync)
        return clock if clock.has_server else local

    def now(self) -> datetime:
        if time.monotonic() >= self._next_sync:
            self._resync_in_background()
        return self.local.now() + self.offset

    def sync(self) -> timedelta:
        """Measure the offset again now (the best of ``samples`` round trips) and return it; errors propagate."""
        measured = self._best()
        with self._lock:
            if measured is not None:
                self.uncertainty, self.offset = measured[0] / 2, measured[1]
            self._next_sync = time.monotonic() + self.resync.total_seconds()
            return self.offset

    def _best(self) -> tuple[timedelta, timedelta] | None:
        """The shortest of ``samples`` round trips: (round trip, offset); ``None``: the store has no clock."""
        best: tuple[timedelta, timedelta] | None = None
        for _ in range(self.samples):
            measured = self._measure()
            if measured is None:
                return None
            if best is None or measured[0] < best[0]:
                best = measured
        return best

    def _measure(self) -> tuple[timedelta, timedelta] | None:
        before = self.local.now()
        started = time.perf_counter()
        server = self.store.server_time()
        took = timedelta(seconds=time.perf_counter() - started)
        after = self.local.now()
        if server is None:
            return None
        return took, server - (before + (after - before) / 2)

    def _resync_in_background(self) -> None:
        with self._lock:
            if self._syncing:
                return
            self._syncing = True
            self._next_sync = float("inf")
        threading.Thread(target=self._resync, name="ductape-clock-sync", daemon=True).start()

    def _resync(self) -> None:
        try:
            self.sync()
        except Exception as exc:  # the database is away: keep the last offset, try again soon
            log.warning("could not read the database's clock (%s); keeping offset %s", exc, span_text(self.offset))
            with self._lock:
                self._next_sync = time.monotonic() + self.retry.total_seconds()
        finally:
            with self._lock:
                self._syncing = False


def uncertainty(clock: Clock) -> timedelta:
    """How far ``clock`` may be ahead of the time it tells: a ``StoreClock``'s error at most (half the round trip
    its offset was measured over), nothing for another clock. A worker starts a run only when this much past its
    due time has passed too, so that no run starts early by the server's clock."""
    return clock.uncertainty if isinstance(clock, StoreClock) else timedelta(0)
