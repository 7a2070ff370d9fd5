"""What a worker tells observers (metrics, webhooks): runs it started, runs it finished, runs it rescued.

Observers are called in the worker's event loop, so each method must be quick and must not block: one that
needs I/O hands it to a thread. An observer that raises is logged and never stops the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ductape_jobs.logs import logger
from ductape_jobs.models import Run
from ductape_jobs.store.base import Outcome, Rescued

log = logger("ductape_jobs.worker")


class RunObserver(Protocol):
    def runs_started(self, runs: Sequence[Run], now: datetime) -> None:
        """``runs`` were claimed at ``now`` and start (``run.attempt`` is the attempt starting)."""

    def runs_finished(self, finished: Sequence[tuple[Run, Outcome]]) -> None:
        """Outcomes were recorded: completed, retry scheduled (``outcome.retry_at``) or failed for good."""

    def runs_rescued(self, rescued: Sequence[Rescued]) -> None:
        """Runs whose worker stopped heartbeating went back to the queue, failed for good after too many rescues
        (``error`` set), or ended cancelled, their schedule cancelled while they ran (``cancelled``)."""


def tell_started(observers: Sequence[RunObserver], runs: Sequence[Run], now: datetime) -> None:
    for observer in observers:
        try:
            observer.runs_started(runs, now)
        except Exception:
            log.exception("run observer %r failed", observer)


def tell_finished(observers: Sequence[RunObserver], finished: Sequence[tuple[Run, Outcome]]) -> None:
    for observer in observers:
        try:
            observer.runs_finished(finished)
        except Exception:
            log.exception("run observer %r failed", observer)


def tell_rescued(observers: Sequence[RunObserver], rescued: Sequence[Rescued]) -> None:
    for observer in observers:
        try:
            observer.runs_rescued(rescued)
        except Exception:
            log.exception("run observer %r failed", observer)
