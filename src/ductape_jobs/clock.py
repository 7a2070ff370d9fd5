"""Clocks. Every piece of timing logic asks a ``Clock`` for the time, so tests move time instead of sleeping.

``StoreClock`` corrects a local clock by the database server's, so nodes whose own clocks drift agree on what
is due (``Ductape`` uses it on PostgreSQL unless a clock is injected; see the README's "Scaling out").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
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

    def monotonic(self) -> float:
        """Seconds that move with this clock (``monotonic_of``): what ``set`` and ``advance`` do is time passing, not
        a clock stepped, so a worker on a fake clock never takes a move of it for a step."""
        with self._lock:
            return self._now.timestamp()


def monotonic_of(clock: object) -> Callable[[], float]:
    """The steady seconds that ``clock``'s time is checked against for steps (an NTP step, ``date -s``, a VM resumed):
    its own ``monotonic()`` when it keeps one (``FakeClock``), else the machine's ``time.monotonic``."""
    own = getattr(clock, "monotonic", None)
    return own if callable(own) else time.monotonic


def _through_suspend(clock: object) -> Callable[[], float]:
    """What a ``StoreClock`` counts by while its local clock is taken as stepped: ``clock``'s own ``monotonic()``,
    else a monotonic clock that goes on through a suspend (Linux's CLOCK_BOOTTIME; ``time.monotonic`` stops
    during one, so a machine woken after an hour told the time it went to sleep at until the database answered)."""
    own = monotonic_of(clock)
    boot: int | None = getattr(time, "CLOCK_BOOTTIME", None)
    if own is not time.monotonic or boot is None:
        return own
    return lambda: time.clock_gettime(boot)


class ServerTime(Protocol):
    """What ``StoreClock`` needs of a store (``Store.server_time``)."""

    def server_time(self) -> datetime | None: ...


#: How far the local clock may move from the monotonic clock since the offset was measured before it is taken as
#: stepped (NTP slews at most 500 ppm: 15 ms over a resync of 30 s).
STEP = timedelta(milliseconds=250)


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
        self._steady = _through_suspend(local)  # what a step of ``local`` is seen against
        self._anchor: tuple[float, datetime] | None = None  # (steady, local) when the offset was measured
        self._step_sync = 0.0  # a step seen asks for a resync at once, at most once per ``retry``
        best = self._best()
        if best is None:
            return  # the store has no clock of its own: the local one as it is
        self.offset, self.uncertainty, self.has_server = best[1], best[0] / 2, True
        self._next_sync = time.monotonic() + resync.total_seconds()
        self._anchor = best[2]

    @classmethod
    def attach(cls, local: Clock, store: ServerTime, resync: timedelta = timedelta(seconds=30)) -> Clock:
        """A ``StoreClock`` when the store reports a server time, else ``local`` itself."""
        clock = cls(local, store, resync)
        return clock if clock.has_server else local

    def now(self) -> datetime:
        mono = self._steady()
        local = self.local.now()
        with self._lock:
            anchor, offset = self._anchor, self.offset
        if anchor is not None:
            steady = anchor[1] + timedelta(seconds=mono - anchor[0])  # the local time by the monotonic clock
            if abs(local - steady) > STEP:  # the local clock was stepped since the offset was measured: the offset
                self._resync_in_background(at_once=True)  # is stale; until it is measured again, count from the
                return steady + offset  # measurement by the monotonic clock, which no step moves
        if time.monotonic() >= self._next_sync:
            self._resync_in_background()
        return local + offset

    def monotonic(self) -> float:
        """The steady seconds of the local clock (``monotonic_of``): a worker checks this clock's time against them."""
        return monotonic_of(self.local)()

    def sync(self) -> timedelta:
        """Measure the offset again now (the best of ``samples`` round trips) and return it; errors propagate."""
        measured = self._best()
        with self._lock:
            if measured is not None:  # the anchor is the chosen sample's own: a step after it is seen
                self.uncertainty, self.offset, self._anchor = measured[0] / 2, measured[1], measured[2]
            self._next_sync = time.monotonic() + self.resync.total_seconds()
            return self.offset

    def _best(self) -> tuple[timedelta, timedelta, tuple[float, datetime]] | None:
        """The shortest of ``samples`` round trips: (round trip, offset, (steady, local) at its midpoint); ``None``:
        the store has no clock."""
        best: tuple[timedelta, timedelta, tuple[float, datetime]] | None = None
        for _ in range(self.samples):
            measured = self._measure()
            if measured is None:
                return None
            if best is None or measured[0] < best[0]:
                best = measured
        return best

    def _measure(self) -> tuple[timedelta, timedelta, tuple[float, datetime]] | None:
        steady_before, before = self._steady(), self.local.now()
        started = time.perf_counter()
        server = self.store.server_time()
        took = timedelta(seconds=time.perf_counter() - started)
        steady_after, after = self._steady(), self.local.now()
        if server is None:
            return None
        mid = before + (after - before) / 2
        return took, server - mid, ((steady_before + steady_after) / 2, mid)

    def _resync_in_background(self, *, at_once: bool = False) -> None:
        with self._lock:
            if self._syncing or (at_once and time.monotonic() < self._step_sync):
                return
            if at_once:  # not a thread at every reading while the database does not answer
                self._step_sync = time.monotonic() + self.retry.total_seconds()
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
