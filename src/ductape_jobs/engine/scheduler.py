"""The scheduler: turns the due occurrences of schedules into runs, through the store's ``advance_due``.

It keeps nothing in memory: the store finds due schedules by index, and a unique (schedule, due time)
constraint makes racing schedulers (threads, processes, nodes) create each run once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ductape_jobs.clock import Clock
from ductape_jobs.ids import new_id
from ductape_jobs.models import NewRun, Overlap, Run, RunPhase, Schedule, TriggeredBy
from ductape_jobs.store.base import Advance, DueSchedule, Planner, Store
from ductape_jobs.timing import (
    CronRecurrence,
    EveryRecurrence,
    Occurrences,
    OnceRecurrence,
    Plan,
    Recurrence,
    plan_due,
)
from ductape_jobs.timing.planning import next_due


def make_recurrence(cron: str | None, tz: str, every: timedelta | None, start: datetime) -> Recurrence:
    if cron is not None:
        return CronRecurrence(cron, tz)
    if every is not None:
        return EveryRecurrence(every, start)
    return OnceRecurrence(start)


def recurrence_of(s: Schedule) -> Recurrence:
    return make_recurrence(s.cron, s.tz, s.every, s.start_at)


def occurrences_of(s: Schedule) -> Occurrences:
    return Occurrences(next_due=s.next_run_at, runs_so_far=s.run_count, limit=s.limit, end_date=s.end_date)


def new_run(s: Schedule, due: datetime, *, held: bool = False, now: datetime | None = None) -> NewRun:
    ready = now is None or due <= now
    return NewRun(
        id=new_id("run"),
        schedule_id=s.id,
        scheduled_at=due,
        available_at=None if held else due,
        phase=RunPhase.QUEUED if ready and not held else RunPhase.SCHEDULED,
        triggered_by=TriggeredBy.CRON if s.cron else TriggeredBy.SCHEDULE,
    )


def decide(s: Schedule, plan: Plan, active_runs: int, held: bool, now: datetime, recurrence: Recurrence) -> Advance:
    """Apply the overlap policy to a plan's due times and say how the schedule moves on. ``limit`` counts runs: an
    occurrence skipped for overlap does not use it up, so a plan that the limit ended goes on to the next occurrence
    of ``recurrence`` (the schedule's, which made the plan)."""
    runs: list[NewRun] = []
    skipped = 0
    busy = active_runs > 0
    for due in plan.due:
        if s.overlap is Overlap.ALLOW or not busy:
            runs.append(new_run(s, due, now=now))
            busy = True
        elif s.overlap is Overlap.BUFFER_ONE and not held:
            runs.append(new_run(s, due, held=True))
            held = True
        else:
            skipped += 1
    next_run_at, finished = plan.next_due, plan.finished
    if skipped and s.limit is not None and plan.due:  # fewer runs than the plan counted against the limit
        made = Occurrences(next_due=None, runs_so_far=s.run_count + len(runs), limit=s.limit, end_date=s.end_date)
        next_run_at = next_due(recurrence, plan.due[-1], made)
        finished = next_run_at is None
    return Advance(
        schedule_id=s.id,
        expected_next=s.next_run_at,
        next_run_at=next_run_at,
        finished=finished,
        runs=runs,
        skipped=skipped,
        last_due_at=plan.due[-1] if plan.due else None,
    )


class Scheduler:
    def __init__(
        self, store: Store, clock: Clock, *, batch: int = 500, grace: timedelta = timedelta(seconds=1)
    ) -> None:
        self.store = store
        self.clock = clock
        self.batch = batch
        self.grace = grace

    def plan(self, due: DueSchedule, now: datetime, until: datetime | None = None) -> Advance:
        """How ``due`` moves on at ``now``: its occurrences due by then (or by ``until``: a tick ahead; a run made
        before it is due is ``scheduled``, with that due time as its ``available_at``). A schedule with an overlap
        policy is planned to ``now`` only: whether its previous run still goes when an occurrence falls due is known
        only then (planned ahead, ``skip`` would drop an occurrence whose previous run ends in time, and
        ``buffer_one`` would hold one that its release then makes due before its time)."""
        s = due.schedule
        if s.overlap is not Overlap.ALLOW:
            until = None
        recurrence = recurrence_of(s)
        plan = plan_due(recurrence, occurrences_of(s), now, misfire=s.misfire, grace=self.grace, until=until)
        return decide(s, plan, due.active_runs, due.buffered, now, recurrence)

    def tick(self, now: datetime | None = None) -> list[NewRun]:
        """Create the runs of every occurrence due by ``now``; returns them."""
        at = now or self.clock.now()
        created: list[NewRun] = []
        for _ in range(100):  # bounded: the worker ticks again when more is due
            planned, plan = self._planner(at)
            created.extend(self.store.advance_due(at, self.batch, plan))
            if len(planned) < self.batch:  # fewer due than a batch: none is left (no second transaction to see it)
                break
        return created

    def tick_and_claim(
        self, now: datetime, worker_id: str, want: int, lease_for: timedelta, ahead: timedelta = timedelta(0)
    ) -> tuple[list[NewRun], list[Run], bool]:
        """One batch of ``tick`` with a claim of up to ``want`` due runs for ``worker_id`` in its transaction
        (``Store.advance_due_and_acquire``): the runs created, the runs claimed, and whether the batch was full
        (more schedules may be due: the caller ticks again, after starting what it claimed). ``ahead``: the
        occurrences due by ``now + ahead`` too, their runs claimed to start at their due times."""
        planned, plan = self._planner(now, now + ahead)
        created, claimed = self.store.advance_due_and_acquire(
            now, self.batch, plan, worker_id, want, lease_for, ahead=ahead
        )
        return created, claimed, len(planned) >= self.batch

    def _planner(self, at: datetime, until: datetime | None = None) -> tuple[list[str], Planner]:
        """A planner for ``advance_due`` at ``at``, and the ids of the due schedules it was handed (again, if the
        store retried the batch): fewer than a batch means no other schedule is due."""
        planned: list[str] = []

        def plan(due: DueSchedule) -> Advance:
            planned.append(due.schedule.id)
            return self.plan(due, at, until)

        return planned, plan
