"""``Wakeup``: the workers of this process that a write may concern, told to look for due runs now.

``Jobs`` calls it after it adds, resumes or triggers something due; workers join while they run. Other
processes hear of the same writes through the store (PostgreSQL's LISTEN/NOTIFY, ``Capabilities``).
"""

from __future__ import annotations

import threading
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


__all__ = ["Wakeable", "Wakeup"]
