"""When a schedule fires: cron expressions in an IANA time zone, fixed intervals, one-offs.

Cron across DST follows Debian's cron: a fixed local time that the spring-forward gap skips fires once right after
the gap (the fixed times one gap skips fire once, together); one that fall-back repeats fires once (the first); an
expression whose minute or hour field starts with ``*`` (``*``, ``*/15``) runs on elapsed time (every instant whose
local time matches). ``every`` is absolute time. Unlike Debian's cron, which does not catch up after a jump of three
hours or more, the rules hold at every change of offset, whatever its size.

cronsim finds the local times an expression matches, on the calendar alone (naive datetimes); this module maps
them to instants by the zone's UTC offsets and applies the rules above at each change of offset. cronsim 2.9's own
handling of a zone applies those rules to 5-field expressions only (a 6-field one missed a fixed time in the gap
and ran it twice at fall-back), and on elapsed time it moves a whole hour where an offset changes by 30 minutes
(Australia/Lord_Howe missed runs at both of its changes).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol
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
        fields = self.expr.split(" ")  # minute and hour are the 5th and 4th from the end, with or without seconds
        # Debian's "fixed time": neither the minute nor the hour field starts with a star (cronsim reads it so too)
        self.fixed = not fields[-5].startswith("*") and not fields[-4].startswith("*")

    def next_after(self, t: datetime) -> datetime | None:
        if t >= LATEST:
            return None
        lower, inclusive = t, False  # the instant the answer is after (or at, once a change of offset is crossed)
        while True:
            offset = _offset(self.tz, lower)
            wall = _wall(lower, offset)
            if self.fixed:  # after the clocks went back, the local times lived before the change do not fire again
                start = _last_change(self.tz, lower, since=lower - _SPAN)
                if start is not None and start.before > start.after and wall < _wall(start.at, start.before):
                    wall, inclusive = _wall(start.at, start.before), True
            local = self._next_match(wall, inclusive)
            if local is None:
                return None
            fire = _instant(local, offset)
            change = _first_change(self.tz, lower, until=fire)  # the offset changes before that instant
            if change is None:
                return _until_latest(fire)
            if self.fixed and change.after > change.before and local < _wall(change.at, change.after):
                return _until_latest(change.at)  # a fixed time in the spring-forward gap: right after it
            lower, inclusive = change.at, True

    def first_at_or_after(self, t: datetime) -> datetime | None:
        return self.next_after(t - timedelta(microseconds=1)) if t.microsecond == 0 else self.next_after(t)

    def last_at_or_before(self, t: datetime) -> datetime | None:
        upper = t
        while True:
            offset = _offset(self.tz, upper)
            local = self._last_match(_wall(upper, offset))
            if local is None:
                return None
            fire = _instant(local, offset)
            change = _last_change(self.tz, upper, since=fire)  # the offset changed after that instant
            if change is not None:
                if self.fixed and change.after > change.before:  # a fixed time in the gap fired at its end
                    gap = self._last_match(_wall(change.at, change.after) - _TICK)
                    if gap is not None and gap >= _wall(change.at, change.before):
                        return change.at
                upper = change.at - _TICK
                continue
            if self.fixed:  # a local time repeated by fall-back fired the first time only, before the change
                start = _last_change(self.tz, fire, since=fire - _SPAN)
                if start is not None and start.before > start.after and local < _wall(start.at, start.before):
                    upper = start.at - _TICK
                    continue
            return fire

    def _next_match(self, wall: datetime, inclusive: bool) -> datetime | None:
        """The first local time the expression matches after ``wall`` (or at it, ``inclusive``); cronsim yields
        whole seconds strictly after its start's whole second."""
        start = wall
        if inclusive:
            start = wall.replace(microsecond=0) - timedelta(seconds=0 if wall.microsecond else 1)
        try:
            return next(CronSim(self.expr, start))
        except StopIteration:  # no match within cronsim's 50 years
            return None

    def _last_match(self, wall: datetime) -> datetime | None:
        """The last local time the expression matches at or before ``wall``; cronsim's reverse iteration yields
        times strictly before its (whole-second) start."""
        try:
            return next(CronSim(self.expr, (wall + timedelta(seconds=1)).replace(microsecond=0), reverse=True))
        except StopIteration:
            return None


_TICK = timedelta(microseconds=1)
#: Longer than any span of local time fall-back repeats (the largest change of offset: a few hours).
_SPAN = timedelta(days=1)
_PROBE = timedelta(hours=6)  # offsets are read this far apart to find their changes (none comes closer)


class Change(NamedTuple):
    """A change of a zone's UTC offset: from ``at`` (an instant) on, ``after`` instead of ``before``."""

    at: datetime
    before: timedelta
    after: timedelta


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _wall(instant: datetime, offset: timedelta) -> datetime:
    """The local time (naive) of ``instant`` at ``offset``."""
    return instant.replace(tzinfo=None) + offset


def _instant(local: datetime, offset: timedelta) -> datetime:
    """The instant (UTC) of the naive local time ``local`` at ``offset``."""
    return (local - offset).replace(tzinfo=UTC)


def _first_change(tz: ZoneInfo, after: datetime, *, until: datetime) -> Change | None:
    """The first change of ``tz``'s offset in (``after``, ``until``]."""
    for year in range(max(after.year - 1, _FIRST_YEAR), until.year + 1):  # one at New Year's instant: the year before's
        for change in _changes(tz, year):
            if after < change.at <= until:
                return change
    return None


def _last_change(tz: ZoneInfo, upto: datetime, *, since: datetime) -> Change | None:
    """The last change of ``tz``'s offset in (``since``, ``upto``]."""
    for year in range(upto.year, max(since.year - 2, _FIRST_YEAR - 1), -1):
        for change in reversed(_changes(tz, year)):
            if since < change.at <= upto:
                return change
    return None


#: Years before it are not probed (a zone's offset then is its local mean time; year 1 at UTC is off the calendar
#: in a zone west of it).
_FIRST_YEAR = 1850


@functools.lru_cache(maxsize=32_768)  # every IANA zone (about 600) over the years a tick and a preview touch
def _changes(tz: ZoneInfo, year: int) -> tuple[Change, ...]:
    """The changes of ``tz``'s offset in ``year`` (UTC; one at the very start of the next year too): its offset read
    every ``_PROBE``, and each change found between two reads bisected to the second (zones change on whole
    seconds). About 1,500 reads a zone and year, once."""
    found: list[Change] = []
    t, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    before = _offset(tz, t)
    while t < end:
        nxt = min(t + _PROBE, end)
        after = _offset(tz, nxt)
        if after != before:
            lo, hi = t, nxt  # lo at the old offset, hi at the new one
            while hi - lo > timedelta(seconds=1):
                mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
                if _offset(tz, mid) == before:
                    lo = mid
                else:
                    hi = mid
            found.append(Change(hi, before, after))
            before = after
        t = nxt
    return tuple(found)


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


#: How far past its start a preview looks. A cron's offsets are read year by year (``_changes``: about 1,500 reads a
#: zone and year, a millisecond), so a rare one (``0 0 29 2 *``) previewed to 9000-01-01 took 8-10 s of CPU, a zone
#: at a time, for any reader of the API; a century takes about a tenth of a second.
PREVIEW_HORIZON = timedelta(days=36_525)


def preview(
    recurrence: Recurrence,
    start: datetime,
    count: int,
    end_date: datetime | None = None,
) -> list[datetime]:
    """The next ``count`` fire times at or after ``start``, none after ``end_date`` nor ``PREVIEW_HORIZON`` past
    ``start``."""
    out: list[datetime] = []
    last = start + PREVIEW_HORIZON if start < LATEST - PREVIEW_HORIZON else LATEST
    if end_date is not None:
        last = min(last, end_date)
    fire = recurrence.first_at_or_after(start)
    while fire is not None and len(out) < count and fire <= last:
        out.append(fire)
        fire = recurrence.next_after(fire)
    return out
