"""Test your own schedules without waiting: a ``Ductape`` on a temporary store with a clock you move.

::

    from ductape_jobs.testing import Sandbox

    def test_daily_report():
        dt = Sandbox(start=datetime(2026, 3, 7, tzinfo=UTC))
        @dt.function("report")
        def report(input, ctx): ...
        dt.job.create({...}); dt.job.schedule({..., "repeat": {"cron": "0 9 * * *", "tz": "America/New_York"}})
        dt.advance(days=3)          # runs what falls due, in order, at its due time
        assert len(dt.job.runs(phase="completed")) == 3

With pytest, the ``ductape_sandbox`` fixture gives one (the plugin is registered by the package).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

from ductape_jobs.client import Ductape
from ductape_jobs.clock import FakeClock
from ductape_jobs.models import DrainSummary
from ductape_jobs.timing.backoff import Backoff

__all__ = ["FakeClock", "Sandbox"]

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


class Sandbox(Ductape):
    """A ``Ductape`` whose clock only moves when you say: ``advance(...)`` runs what falls due, in order."""

    clock: FakeClock

    def __init__(self, store: str | None = None, *, start: datetime | None = None, **kwargs: Any) -> None:
        self._cleanup: weakref.finalize[Any, Any] | None = None
        if store is None:
            folder = tempfile.mkdtemp(prefix="ductape-sandbox-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
            store = f"sqlite:///{folder}/jobs.db"
        kwargs.setdefault("backoff", Backoff(jitter=0.0))
        super().__init__(store, clock=FakeClock(start or DEFAULT_START), **kwargs)

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> DrainSummary:
        """Move the clock forward by ``delta`` (or ``timedelta(**kwargs)``), stopping at every moment something
        falls due (a schedule's occurrence, a retry, a lease expiry) to run it then, as a live engine would."""
        step = delta if delta is not None else timedelta(**kwargs)
        if step < timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        target = self.clock.now() + step
        total = DrainSummary()
        while True:
            _add(total, self.drain())
            nxt = self.store.next_wakeup().earliest()
            if nxt is None or nxt > target:
                break
            now = self.clock.now()
            # Something is due by `nxt`; if that is not later than now (a lease expires only strictly after its
            # time), step a millisecond so the loop always makes progress.
            self.clock.set(nxt if nxt > now else min(target, now + timedelta(milliseconds=1)))
            if nxt <= now and now >= target:
                break
        self.clock.set(target)
        _add(total, self.drain())
        return total

    def close(self) -> None:
        super().close()
        if self._cleanup is not None:
            self._cleanup()


def _add(total: DrainSummary, part: DrainSummary) -> None:
    total.completed += part.completed
    total.failed += part.failed
    total.retried += part.retried
    total.created += part.created
    total.cancelled += part.cancelled
