"""Retention: how long finished history is kept before the pruner deletes it.

``Retention`` is a client setting (``Ductape(retention=Retention(keep_completed=timedelta(days=3)))``); the
worker prunes by it every ``every`` in batches of ``batch`` rows, and ``ductape prune`` does it on demand.
What is pruned, each by its own outcome and age:

- runs ``completed`` (``keep_completed``), ``cancelled`` (``keep_cancelled``, default ``keep_completed``) and
  ``failed`` (``keep_failed``), by their completion time, with their attempts; runs that have not finished
  (scheduled, queued, held, running, retry scheduled) never are;
- feature runs ``completed``/``failed`` likewise, with their events' results;
- webhook deliveries ``delivered``/``failed`` likewise, by the time the event happened (pending ones stay);
- result-cache entries once they expire.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from ductape_jobs.errors import ValidationError

__all__ = ["PruneCounts", "Retention", "parse_keep"]

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """How long finished history is kept (the defaults: completed and cancelled 7 days, failed 30 days), and
    how the worker prunes (every ``every``, ``batch`` rows per statement; ``enabled=False``: never)."""

    keep_completed: timedelta = 7 * DAY
    keep_failed: timedelta = 30 * DAY
    keep_cancelled: timedelta | None = None  # None: as keep_completed
    every: timedelta = timedelta(minutes=1)
    batch: int = 1000
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("keep_completed", "keep_failed", "keep_cancelled", "every"):
            value = getattr(self, name)
            if value is not None and value < timedelta(0):
                raise ValidationError(name, f"must not be negative (got {value})")
        if self.batch < 1:
            raise ValidationError("batch", f"must be >= 1 (got {self.batch})")

    @property
    def cancelled(self) -> timedelta:
        """How long cancelled runs are kept."""
        return self.keep_completed if self.keep_cancelled is None else self.keep_cancelled

    def cutoffs(self, now: datetime) -> tuple[datetime, datetime, datetime]:
        """``(completed, failed, cancelled)``: what finished before each is pruned."""
        return now - self.keep_completed, now - self.keep_failed, now - self.cancelled


@dataclass(frozen=True, slots=True)
class PruneCounts:
    """How many rows of each kind a prune deleted (or, in a dry run, would delete)."""

    runs: int = 0
    attempts: int = 0
    feature_runs: int = 0
    feature_events: int = 0
    webhook_deliveries: int = 0
    cache_entries: int = 0
    outbox: int = 0  # lifecycle events every consumer has read (not bound to a keep)

    @property
    def total(self) -> int:
        return sum(asdict(self).values())

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __add__(self, other: PruneCounts) -> PruneCounts:
        mine, theirs = asdict(self), asdict(other)
        return PruneCounts(**{k: mine[k] + theirs[k] for k in mine})


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_KEEP = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_keep(text: str, field: str) -> timedelta:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w`` as a ``timedelta``; a ``ValidationError`` naming ``field``."""
    match = _KEEP.match(text)
    if match is None:
        raise ValidationError(field, f"{text!r} is not a duration (a number and s, m, h, d or w: 7d, 12h, 30m)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
