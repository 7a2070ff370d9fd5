"""When a schedule fires: cron expressions in an IANA time zone (cronsim), fixed intervals, one-offs.

Cron across DST follows Debian's cron (cronsim implements it): a fixed local time that the spring-forward
gap skips fires once right after the gap; one that fall-back repeats fires once (the first); an expression
with ``*`` or a step in the minute or hour field runs on elapsed time. ``every`` is absolute time.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

from ductape_jobs.limits import LATEST

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def normalize_cron(expr: str) -> str:
    """Return the 5- or 6-field form of ``expr`` or raise ``ValueError`` naming the rule broken."""
    text = " ".join(expr.split())
    if not text:
        raise ValueError("is empty; give a cron expression such as '0 9 * * *'")
    if text.lower() in MACROS:
        return MACROS[text.lower()]
    if text.startswith("@"):
        raise ValueError(f"unknown macro {expr!r} (use one of {', '.join(sorted(MACROS))})")
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise ValueError(
            f"{expr!r} has {len(fields)} fields; a cron expression has 5 (minute hour day month weekday)"
            " or 6 (a leading seconds field)"
        )
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
    return text


def check_zone(name: str) -> str:
    """``name`` if it names an IANA zone, else ``ValueError``: what a new schedule may give as ``tz``. Not
    ``localtime`` (the zone a host is set to: the same schedule would fall due at other instants on other hosts),
    nor the files beside the zones on a time zone path (``posixrules``, ``posix/...``, ``right/...``, which count
    leap seconds). Schedules stored before this check are planned as they were (``zone``)."""
    if name not in _iana_names():
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/London')")
    zone(name)
    return name


@functools.cache
def _iana_names() -> frozenset[str]:
    """The IANA zone names of this machine's time zone path and of the tzdata package (read once: ~20 ms)."""
    return frozenset(available_timezones() - {"localtime"})


def zone(name: str) -> ZoneInfo:
    """The zone ``name`` or ``ValueError``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/London')") from None


def _until_latest(fire: datetime) -> datetime | None:
    """A series ends at ``LATEST``: nothing fires after it."""
    return fire if fire <= LATEST else None


class Recurrence(Protocol):
    """A sequence of fire times (aware UTC datetimes), strictly increasing."""

    def first_at_or_after(self, t: datetime) -> datetime | None: ...

    def next_after(self, t: datetime) -> datetime | None: ...

    def last_at_or_before(self, t: datetime) -> datetime | None: ...


class CronRecurrence:
    """Fire times of a cron expression evaluated in a time zone."""

    def __init__(self, expr: str, tz: str = "UTC") -> None:
        self.expr = normalize_cron(expr)
        self.tz = zone(tz)

    def _iter_from(self, t: datetime) -> Iterator[datetime]:
        local = t.astimezone(self.tz)
        for fire in CronSim(self.expr, local):
            yield fire.astimezone(UTC)

    def next_after(self, t: datetime) -> datetime | None:
        # cronsim yields times strictly after its start (to the second); sub-second parts are dropped.
        if t >= LATEST:
            return None
        for fire in self._iter_from(t):
            if fire > t:
                return _until_latest(fire)
        return None  # pragma: no cover - cronsim raises StopIteration only for impossible dates

    def first_at_or_after(self, t: datetime) -> datetime | None:
        return self.next_after(t - timedelta(microseconds=1)) if t.microsecond == 0 else self.next_after(t)

    def last_at_or_before(self, t: datetime) -> datetime | None:
        # cronsim's reverse iteration yields times strictly before its (whole-second) start.
        start = (t + timedelta(seconds=1)).replace(microsecond=0).astimezone(self.tz)
        for fire in CronSim(self.expr, start, reverse=True):
            fire_utc = fire.astimezone(UTC)
            if fire_utc <= t:
                return fire_utc
        return None  # pragma: no cover


class EveryRecurrence:
    """Every ``every`` of absolute time from ``anchor`` (DST does not matter)."""

    def __init__(self, every: timedelta, anchor: datetime) -> None:
        if every <= timedelta(0):
            raise ValueError("every must be > 0")
        self.every = every
        self.anchor = anchor

    def first_at_or_after(self, t: datetime) -> datetime | None:
        if t <= self.anchor:
            return _until_latest(self.anchor)
        steps = -((self.anchor - t) // self.every)  # ceil((t - anchor) / every)
        return self._step(steps)

    def next_after(self, t: datetime) -> datetime | None:
        if t < self.anchor:
            return _until_latest(self.anchor)
        return self._step((t - self.anchor) // self.every + 1)

    def _step(self, steps: int) -> datetime | None:
        try:
            return _until_latest(self.anchor + steps * self.every)
        except OverflowError:  # past the last representable date: the series has ended
            return None

    def last_at_or_before(self, t: datetime) -> datetime | None:
        if t < self.anchor:
            return None
        return self.anchor + ((t - self.anchor) // self.every) * self.every


class OnceRecurrence:
    """A single fire time."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def first_at_or_after(self, t: datetime) -> datetime | None:
        return self.at

    def next_after(self, t: datetime) -> datetime | None:
        return self.at if t < self.at else None

    def last_at_or_before(self, t: datetime) -> datetime | None:
        return self.at if self.at <= t else None


def preview(
    recurrence: Recurrence,
    start: datetime,
    count: int,
    end_date: datetime | None = None,
) -> list[datetime]:
    """The next ``count`` fire times at or after ``start``, none after ``end_date``."""
    out: list[datetime] = []
    fire = recurrence.first_at_or_after(start)
    while fire is not None and len(out) < count:
        if end_date is not None and fire > end_date:
            break
        out.append(fire)
        fire = recurrence.next_after(fire)
    return out
