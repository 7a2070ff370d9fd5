"""``Wakeup``: the workers of this process that a write may concern, told to look for due runs now.

``Jobs`` calls it after it adds, resumes or triggers something due; workers join while they run. Other
processes hear of the same writes through the store (PostgreSQL's LISTEN/NOTIFY, ``Capabilities``), told when what
was written falls due: ``wake_in`` says when a worker so told looks.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Protocol


class Wakeable(Protocol):
    def notify(self) -> None:
        """Look for due runs now (safe from any thread)."""


class Wakeup:
    """The running workers of one client. Calling it wakes each of them; safe from any thread."""

    def __init__(self) -> None:
        self._workers: set[Wakeable] = set()
        self._lock = threading.Lock()

    def join(self, worker: Wakeable) -> None:
        with self._lock:
            self._workers.add(worker)

    def leave(self, worker: Wakeable) -> None:
        with self._lock:
            self._workers.discard(worker)

    def __call__(self) -> None:
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.notify()


def wake_in(due: datetime | None, now: datetime, ahead: timedelta, horizon: timedelta) -> float | None:
    """Seconds until a worker told that something falls due at ``due`` (``None``: now) should look for it: ``0.0``
    at once (due by ``now`` plus ``ahead``, the worker's own lead), the time until then when that is within
    ``horizon``, else ``None``: not before the worker reads what is due anyway (it does at least every poll), which
    sees it."""
    if due is None:
        return 0.0
    wait = (due - ahead - now).total_seconds()
    if wait <= 0:
        return 0.0
    return wait if wait <= horizon.total_seconds() else None


__all__ = ["Wakeable", "Wakeup", "wake_in"]
