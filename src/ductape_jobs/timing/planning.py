"""Which occurrences of a schedule become runs now: limits, end dates and the misfire policy.

An occurrence is *missed* when the engine reaches it more than ``grace`` after its due time (the engine was
down or overloaded). The misfire policy then decides:

- ``run_once`` (default): the missed occurrences fire once, coalesced into a run for the latest of them, or into the
  first occurrence reached within the grace when there is one (it runs anyway: a second run would repeat it);
- ``skip``: missed occurrences do not run; the schedule carries on with the next one (a one-off has none: it runs);
- ``run_all``: every missed occurrence runs (at most ``max_runs`` per call; the rest on the next call).

Occurrences reached within ``grace`` are not missed: each runs, under any policy. ``limit`` counts runs: coalesced or
skipped occurrences do not use it up. No run is due after ``end_date``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from msgspec import Struct, field

from ductape_jobs.timing.recurrence import OnceRecurrence, Recurrence

#: The smallest step of time: an occurrence is missed when it is due strictly before ``now - grace``.
_TICK = timedelta(microseconds=1)


class Misfire(StrEnum):
    RUN_ONCE = "run_once"
    SKIP = "skip"
    RUN_ALL = "run_all"


class Occurrences(Struct, frozen=True):
    """A schedule's position: its next unmaterialised due time and how many runs it has made."""

    next_due: datetime | None
    runs_so_far: int = 0
    limit: int | None = None
    end_date: datetime | None = None


class Plan(Struct, frozen=True):
    """What to do now: runs to create (due times), the new next due time, and whether the schedule ended."""

    due: list[datetime] = field(default_factory=list)
    next_due: datetime | None = None
    finished: bool = False
    misfired: bool = False


def first_due(recurrence: Recurrence, start: datetime, occ: Occurrences) -> datetime | None:
    """The first due time at or after ``start`` that the limit and end date allow."""
    first = recurrence.first_at_or_after(start)
    return _bounded(first, occ, 0)


def next_due(recurrence: Recurrence, after: datetime, occ: Occurrences) -> datetime | None:
    """The first due time after ``after`` that the limit and end date allow."""
    return _bounded(recurrence.next_after(after), occ, 0)


def _bounded(t: datetime | None, occ: Occurrences, runs: int) -> datetime | None:
    if t is None:
        return None
    if occ.end_date is not None and t > occ.end_date:
        return None
    if occ.limit is not None and occ.runs_so_far + runs >= occ.limit:
        return None
    return t


def plan_due(
    recurrence: Recurrence,
    occ: Occurrences,
    now: datetime,
    *,
    misfire: Misfire = Misfire.RUN_ONCE,
    grace: timedelta = timedelta(seconds=1),
    max_runs: int = 1000,
    until: datetime | None = None,
) -> Plan:
    """Plan the runs of the occurrences due at ``now``; with ``until`` (a worker ticking a little ahead), those due
    by ``until``. Whether an occurrence misfired is judged at ``now`` either way."""
    horizon = now if until is None else max(now, until)
    if isinstance(recurrence, OnceRecurrence):  # a one-off that is late still runs: no later occurrence to go on to
        misfire = Misfire.RUN_ONCE
    if occ.next_due is None:
        return Plan(finished=True)
    if occ.next_due > horizon:
        return Plan(next_due=occ.next_due)
    late_before = now - grace
    cutoff = horizon if occ.end_date is None else min(horizon, occ.end_date)
    remaining = max_runs if occ.limit is None else min(max_runs, occ.limit - occ.runs_so_far)
    due: list[datetime] = []
    last: datetime | None = None
    misfired = occ.next_due < late_before  # reported for every policy; run_all still runs each occurrence
    if occ.next_due > cutoff:
        return Plan(finished=True)
    if not misfired or misfire is Misfire.RUN_ALL:
        t: datetime | None = occ.next_due
        while t is not None and t <= cutoff and len(due) < remaining:
            due.append(t)
            last = t
            t = recurrence.next_after(t)
    else:  # the missed occurrences coalesce (or are skipped); those reached within the grace run, each
        latest = recurrence.last_at_or_before(min(late_before - _TICK, cutoff))  # the latest missed one
        if latest is None or latest < occ.next_due:
            latest = occ.next_due
        last = latest
        t = recurrence.next_after(latest)
        on_time = t is not None and t <= min(now, cutoff)  # one reached within the grace: the missed coalesce into it
        if remaining > 0 and misfire is Misfire.RUN_ONCE and not on_time:
            due.append(latest)
        while t is not None and t <= cutoff and len(due) < remaining:  # not missed: due since late_before (or ahead)
            due.append(t)
            last = t
            t = recurrence.next_after(t)
    next_due = _bounded(recurrence.next_after(last) if last is not None else None, occ, len(due))
    return Plan(due=due, next_due=next_due, finished=next_due is None, misfired=misfired)
