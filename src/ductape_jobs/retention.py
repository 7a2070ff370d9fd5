"""Retention: how long finished history is kept before the pruner deletes it.

``Retention`` is a client setting (``Ductape(retention=Retention(keep_completed=timedelta(days=3)))``); the
worker prunes by it every ``every`` in batches of ``batch`` rows, and ``ductape prune`` does it on demand.
What is pruned, each by its own outcome and age:

- runs ``completed`` (``keep_completed``), ``cancelled`` (``keep_cancelled``, default ``keep_completed``) and
  ``failed`` (``keep_failed``), by their completion time, with their attempts; runs that have not finished
  (scheduled, queued, held, running, retry scheduled) never are;
- feature runs ``completed``/``failed`` likewise, with their events' results;
- webhook deliveries ``delivered``/``failed`` likewise, by the time the event happened (pending ones stay);
- result-cache entries once they expire;
- the per-minute statistics of pruned runs after ``keep_stats`` (90 days by default).

A run the pruner deletes is first added, in the same transaction, to the statistics of the minute it ended in
and of the minute it was due in (its product and env): the dashboard's runs per minute and ``job.stats`` read
those beside the runs still kept, so pruning does not change them. Lateness percentiles are read from the kept
runs only.

A job may keep its own runs differently (``JobDefinition.keep_completed`` / ``keep_failed``): a duration (``"3d"``,
a ``timedelta``) or a count (``100``: the newest 100 runs of that outcome, by due time, are kept, the older ones
pruned). Its runs of that outcome are then pruned by its rule alone, the client's keep does not apply to them.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from msgspec import Struct
from msgspec.structs import asdict

from ductape_jobs.errors import ValidationError

__all__ = ["Keep", "PruneCounts", "Retention", "format_keep", "keep_json", "parse_job_keep", "parse_keep"]

DAY = timedelta(days=1)
MAX_KEEP_RUNS = 10_000_000
#: The longest any history is kept (100 years): past it, ``now - keep`` would leave the calendar.
MAX_KEEP_TIME = timedelta(days=36_500)

Keep = timedelta | int
"""A job's own keep: how long its runs of one outcome are kept, or how many of the newest of them."""


class Retention(Struct, frozen=True, kw_only=True):
    """How long finished history is kept (the defaults: completed and cancelled 7 days, failed 30 days, the pruned
    runs' per-minute statistics 90 days), and how the worker prunes (every ``every``, ``batch`` rows per
    statement; while batches come back full, at most ``share`` of its time; ``enabled=False``: never)."""

    keep_completed: timedelta = 7 * DAY
    keep_failed: timedelta = 30 * DAY
    keep_cancelled: timedelta | None = None  # None: as keep_completed
    keep_stats: timedelta = 90 * DAY  # the pruned runs' per-minute statistics (run_minutes)
    every: timedelta = timedelta(minutes=1)
    batch: int = 1000
    share: float = 0.1  # of a worker's time, at most, while it catches up with a backlog
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("keep_completed", "keep_failed", "keep_cancelled", "keep_stats", "every"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, timedelta):
                raise ValidationError(name, f"must be a timedelta (got {type(value).__qualname__})")
            if value < timedelta(0):
                raise ValidationError(name, f"must not be negative (got {value})")
            if value > MAX_KEEP_TIME:
                raise ValidationError(name, f"must be at most {MAX_KEEP_TIME.days} days (got {value})")
        if self.batch < 1:
            raise ValidationError("batch", f"must be >= 1 (got {self.batch})")
        if not 0 < self.share <= 1:
            raise ValidationError("share", f"must be above 0 and at most 1 (got {self.share})")

    def rest_after(self, took: float) -> float:
        """Seconds a worker's pruner rests after a full batch that took ``took`` seconds: its ``share`` of the
        worker's time (0.1: it rests nine times as long as it pruned), so a backlog never starves the runs."""
        return took * (1 / self.share - 1)

    @property
    def cancelled(self) -> timedelta:
        """How long cancelled runs are kept."""
        return self.keep_completed if self.keep_cancelled is None else self.keep_cancelled

    def cutoffs(self, now: datetime) -> tuple[datetime, datetime, datetime]:
        """``(completed, failed, cancelled)``: what finished before each is pruned."""
        return now - self.keep_completed, now - self.keep_failed, now - self.cancelled


class PruneCounts(Struct, frozen=True):
    """How many rows of each kind a prune deleted (or, in a dry run, would delete)."""

    runs: int = 0
    attempts: int = 0
    schedules: int = 0  # ended (completed, cancelled) before their keep, holding no run any more
    feature_runs: int = 0
    feature_events: int = 0
    webhook_deliveries: int = 0
    cache_entries: int = 0
    outbox: int = 0  # lifecycle events every consumer has read (not bound to a keep)
    run_minutes: int = 0  # per-minute statistics of pruned runs, past keep_stats

    @property
    def total(self) -> int:
        return sum(asdict(self).values())

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __add__(self, other: PruneCounts) -> PruneCounts:
        mine, theirs = asdict(self), asdict(other)
        return PruneCounts(**{k: mine[k] + theirs[k] for k in mine})


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_KEEP = re.compile(r"^\s*([0-9]{1,15})\s*([smhdw])\s*$")


def _shown(value: object) -> str:
    """``value`` as an error quotes it: its ``repr``, cut past 40 characters (a keep of 100,000 digits is not echoed
    whole)."""
    return repr(value) if not isinstance(value, str) or len(value) <= 40 else f"{value[:40]!r}..."


def parse_keep(text: str, field: str) -> timedelta:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w`` as a ``timedelta``, at most ``MAX_KEEP_TIME``; a
    ``ValidationError`` naming ``field``."""
    match = _KEEP.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValidationError(field, f"{_shown(text)} is not a duration (a number and s, m, h, d or w: 7d, 12h, 30m)")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_KEEP_TIME.total_seconds():
        raise ValidationError(
            field, f"{_shown(text.strip())} is longer than {MAX_KEEP_TIME.days}d (100 years), the most"
        )
    return timedelta(seconds=seconds)


def parse_job_keep(value: object, field: str) -> Keep:
    """A job's keep from what a caller gave: a ``timedelta`` or a duration text (``"7d"``) is how long; an integer
    is how many of the newest runs (0 to 10,000,000). A ``ValidationError`` naming ``field`` otherwise."""
    if isinstance(value, bool):
        raise ValidationError(field, "must be a duration (7d, 12h) or a number of runs, not a boolean")
    if isinstance(value, int):
        if not 0 <= value <= MAX_KEEP_RUNS:
            got = f"{value}" if abs(value) < 10**20 else "a number beyond ±10^20"  # 10**400 is not echoed whole
            raise ValidationError(field, f"a number of runs must be between 0 and {MAX_KEEP_RUNS:,} (got {got})")
        return value
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValidationError(field, f"must not be negative (got {value})")
        if value > MAX_KEEP_TIME:
            raise ValidationError(field, f"must be at most {MAX_KEEP_TIME.days} days (got {value})")
        if value % timedelta(seconds=1):
            raise ValidationError(field, f"must be whole seconds (got {value})")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():  # a number of runs (ASCII digits only: not "²" nor fullwidth ones)
            if len(text) > len(str(MAX_KEEP_RUNS)):
                got = text if len(text) <= 40 else f"{text[:40]}... ({len(text):,} digits)"
                raise ValidationError(field, f"a number of runs must be between 0 and {MAX_KEEP_RUNS:,} (got {got})")
            return parse_job_keep(int(text), field)
        if _KEEP.match(text) is None:
            raise ValidationError(
                field,
                f"{_shown(text)} is neither a duration (a number and s, m, h, d or w: 7d, 12h) nor a number of "
                "runs (100)",
            )
        return parse_keep(text, field)
    raise ValidationError(field, "must be a duration (7d, 12h, 30m) or a number of runs")


def format_keep(keep: Keep) -> str:
    """A keep as text that ``parse_job_keep`` reads back: a duration in its largest whole unit (``7d``), or the
    number of runs (``100``)."""
    if isinstance(keep, int):
        return str(keep)
    seconds = int(keep.total_seconds())
    for unit, size in sorted(_UNITS.items(), key=lambda u: -u[1])[1:]:  # up to days: "14d", not "2w"
        if seconds % size == 0 and (seconds or unit == "s"):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"  # pragma: no cover - "s" always divides


def keep_json(keep: Keep | None) -> str | int | None:
    """A job's keep as JSON shows it: a count as a number, a duration as ``format_keep``'s text."""
    return keep if keep is None or isinstance(keep, int) else format_keep(keep)
