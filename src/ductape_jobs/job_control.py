"""Schedule control and run history: ``ductape.job.get``, ``list``, ``pause``, ``resume``, ``cancel``,
``reschedule``, ``trigger``, ``preview``, ``runs``, ``run`` and ``retry``. ``Jobs`` has them from ``JobControl``."""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ductape_jobs.clock import to_ms
from ductape_jobs.engine.scheduler import occurrences_of, recurrence_of
from ductape_jobs.errors import AlreadyMade, ConflictError, NotFoundError, ValidationError
from ductape_jobs.ids import new_id
from ductape_jobs.limits import MAX_TEXT, check_enum, check_page, check_printable
from ductape_jobs.models import (
    NewRun,
    Run,
    RunFilter,
    RunPhase,
    Schedule,
    ScheduleStatus,
    TriggeredBy,
    check_end_date,
    check_filter,
    check_key,
    check_window,
    read_past,
    to_utc,
)
from ductape_jobs.store.base import ScheduleChange
from ductape_jobs.timing import preview
from ductape_jobs.timing.planning import first_due, next_due

if TYPE_CHECKING:
    from ductape_jobs.clock import Clock
    from ductape_jobs.inputs import RepeatOptions
    from ductape_jobs.store.base import Store


T = TypeVar("T")


class JobControl:
    """A schedule's life after ``schedule()``, and its runs (unknown ids: ``NotFoundError``)."""

    _store: Store
    _clock: Clock
    _wake: Callable[[], None]

    def get(self, job_id: str) -> Schedule:
        """A scheduled job instance by ``job_id``."""
        schedule = self._store.get_schedule(check_key(job_id, "job_id"))
        if schedule is None:
            raise NotFoundError("schedule", job_id)
        return schedule

    def list(
        self,
        *,
        status: ScheduleStatus | str | None = None,
        job_tag: str | None = None,
        limit: int = 100,
        offset: int = 0,
        product_tag: str | None = None,
        env: str | None = None,
        after: str | None = None,
    ) -> builtins.list[Schedule]:
        """Scheduled job instances, newest first (``product_tag``/``env``: one product's). ``after``: a schedule's
        ``job_id`` (the last of the page before): those past it in this order, found by the index where a deep
        ``offset`` counts every schedule before it (``ValidationError`` when there is no such schedule)."""
        state = check_enum(ScheduleStatus, status, "status")
        check_page(limit, offset)
        if job_tag is not None:
            check_key(job_tag, "job_tag")
        product, environment = check_filter(product_tag, "product_tag"), check_filter(env, "env")
        read = functools.partial(
            self._store.list_schedules,
            status=state,
            job_tag=job_tag,
            limit=limit,
            offset=offset,
            product_tag=product,
            env=environment,
            after=after,
        )
        return read_past(read, "schedule", after, "never made, or of another product or env than it keeps")

    def pause(self, job_id: str, reason: str | None = None) -> Schedule:
        """No new occurrence starts while paused; runs already queued still run."""
        check_key(job_id, "job_id")
        check_reason(reason)
        text = f"paused: {reason}" if reason else "paused"

        def pause(schedule: Schedule) -> ScheduleChange:
            if schedule.status is not ScheduleStatus.ACTIVE:
                refused = AlreadyMade if schedule.status is ScheduleStatus.PAUSED else ConflictError
                raise refused(f"schedule {job_id!r} is {schedule.status}; only an active one pauses")
            return ScheduleChange(status=ScheduleStatus.PAUSED, reason=text)

        return self._store.update_schedule(job_id, to_ms(self._clock.now()), pause)

    def resume(self, job_id: str) -> Schedule:
        """Carry on from now: occurrences that fell due while paused are skipped."""
        check_key(job_id, "job_id")
        now = to_ms(self._clock.now())

        def resume(schedule: Schedule) -> ScheduleChange:
            if schedule.status is not ScheduleStatus.PAUSED:  # active or completed: as a resume (and a tick) leave it
                made = schedule.status in (ScheduleStatus.ACTIVE, ScheduleStatus.COMPLETED)
                refused = AlreadyMade if made else ConflictError
                raise refused(f"schedule {job_id!r} is {schedule.status}; only a paused one resumes")
            nxt = schedule.next_run_at
            if nxt is not None and nxt < now:
                nxt = first_due(recurrence_of(schedule), now, occurrences_of(schedule))
            status = ScheduleStatus.ACTIVE if nxt is not None else ScheduleStatus.COMPLETED
            return ScheduleChange(status=status, next_run_at=nxt, reason=None)

        resumed = self._store.update_schedule(job_id, now, resume)
        self._wake()
        return resumed

    def cancel(self, job_id: str, reason: str | None = None) -> Schedule:
        """Stop the schedule for good and cancel its runs that have not started (running ones finish)."""
        check_key(job_id, "job_id")
        check_reason(reason)
        text = f"cancelled: {reason}" if reason else "cancelled"

        def cancel(schedule: Schedule) -> ScheduleChange:
            if schedule.status is ScheduleStatus.CANCELLED:
                return ScheduleChange()  # cancelled already: as it is
            return ScheduleChange(status=ScheduleStatus.CANCELLED, reason=text, next_run_at=None, cancel_pending=True)

        return self._store.update_schedule(job_id, to_ms(self._clock.now()), cancel)

    def reschedule(self, job_id: str, repeat: RepeatOptions | dict[str, Any]) -> Schedule:
        """Give a schedule a new ``repeat`` (cron/every, limit, endDate, tz) from now on."""
        check_key(job_id, "job_id")
        from ductape_jobs.inputs import RepeatOptions, parse  # pydantic: loaded when a caller's input is first read

        options = parse(RepeatOptions, repeat, prefix="repeat")
        now = to_ms(self._clock.now())
        check_end_date(options.end_date, now, now=True)
        every = timedelta(milliseconds=options.every) if options.every else None
        timing: dict[str, Any] = {  # the schedule's fields the new repeat sets
            "cron": options.cron,
            "tz": options.tz,
            "every": every,
            "limit": options.limit,
            "end_date": options.end_date,
            "start_at": now,
            "follows_job": False,
        }

        def reschedule(schedule: Schedule) -> ScheduleChange:
            """From the schedule as it is: a worker's tick may have made an occurrence since it was read."""
            if schedule.status is ScheduleStatus.CANCELLED:
                raise ConflictError(f"schedule {job_id!r} is cancelled; it cannot be given a new repeat")
            changed = _replace(schedule, **timing)
            recurrence, occurrences = recurrence_of(changed), occurrences_of(changed)
            nxt = first_due(recurrence, now, occurrences)
            if nxt is None and options.end_date is not None and not _limit_reached(changed):
                raise ValidationError("repeat.endDate", "no occurrence falls between now and the end date")
            last = changed.last_due_at  # after now if a tick ahead made its run (WorkerOptions.ahead)
            if nxt is not None and last is not None and nxt <= last:  # made already: not made (nor counted) again
                nxt = next_due(recurrence, last, occurrences)
            status = schedule.status if nxt is not None else ScheduleStatus.COMPLETED
            if schedule.status is ScheduleStatus.COMPLETED and nxt is not None:
                status = ScheduleStatus.ACTIVE
            return ScheduleChange(**timing, next_run_at=nxt, status=status)

        rescheduled = self._store.update_schedule(job_id, now, reschedule)
        self._wake()
        return rescheduled

    def trigger(self, job_id: str) -> Run:
        """Run a schedule once now, outside its cadence (``triggered_by=manual``), with its input. A cancelled
        schedule runs nothing more: ``ConflictError``."""
        check_key(job_id, "job_id")
        now = to_ms(self._clock.now())
        run = NewRun(new_id("run"), job_id, now, now, RunPhase.QUEUED, TriggeredBy.MANUAL)
        self._store.trigger(job_id, run)
        self._wake()
        return self.run(run.id)

    def preview(
        self,
        repeat: RepeatOptions | dict[str, Any],
        start: datetime | str | int | None = None,
        count: int = 10,
    ) -> builtins.list[datetime]:
        """The next ``count`` fire times of ``repeat`` from ``start`` (default now), as aware UTC datetimes, within a
        century of ``start`` (``PREVIEW_HORIZON``)."""
        from ductape_jobs.inputs import RepeatOptions, parse  # pydantic: loaded when a caller's input is first read

        options = parse(RepeatOptions, repeat, prefix="repeat")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
            raise ValidationError("count", f"must be a whole number between 1 and 10000 (got {count!r:.40})")
        try:
            begin = to_utc(start) or self._clock.now()
        except ValueError as exc:
            raise ValidationError("start", str(exc)) from None
        if begin < _EPOCH:  # the engine's times are Unix milliseconds; year 1 is off the calendar west of UTC
            raise ValidationError("start", f"{begin.isoformat()} is before 1970-01-01, the earliest a preview starts")
        check_end_date(options.end_date, begin)  # as schedule() refuses it (it answered no times)
        every = timedelta(milliseconds=options.every) if options.every else None
        probe = Schedule(
            id="preview",
            job_tag="preview",
            env="",
            product_tag="",
            input={},
            retries=0,
            status=ScheduleStatus.ACTIVE,
            start_at=begin,
            next_run_at=None,
            run_count=0,
            created_at=begin,
            cron=options.cron,
            tz=options.tz,
            every=every,
        )
        times = preview(recurrence_of(probe), begin, count, options.end_date)
        return times[: options.limit] if options.limit else times

    # ------------------------------------------------------------------------------------- runs

    def runs(
        self,
        *,
        job_id: str | None = None,
        job_tag: str | None = None,
        phase: RunPhase | str | None = None,
        since: datetime | str | int | None = None,
        until: datetime | str | int | None = None,
        limit: int = 100,
        offset: int = 0,
        product_tag: str | None = None,
        env: str | None = None,
        after: str | None = None,
    ) -> builtins.list[Run]:
        """Run history, newest first; ``phase``: ``failed`` lists the dead letters; ``since``/``until`` take what
        ``start_at`` takes. ``after``: the id of a run (the last of the page before): the runs past it in this order,
        found by the index where a deep ``offset`` counts every run before it (``ValidationError`` when there is
        no such run: never made, or pruned since)."""
        state = check_enum(RunPhase, phase, "phase")
        check_page(limit, offset)
        for key, name in ((job_id, "job_id"), (job_tag, "job_tag")):
            if key is not None:
                check_key(key, name)
        start, end = check_window(since, until)
        product, environment = check_filter(product_tag, "product_tag"), check_filter(env, "env")
        flt = RunFilter(
            job_id, job_tag, state, start, end, limit, offset, product_tag=product, env=environment, after=after
        )
        why = "never made, pruned since, or of another product or env than it keeps"
        return read_past(functools.partial(self._store.list_runs, flt), "run", after, why)

    def run(self, run_id: str) -> Run:
        """One run with its attempts."""
        found = self._store.get_run(check_key(run_id, "run_id"))
        if found is None:
            raise NotFoundError("run", run_id)
        return found

    def retry(self, run_id: str) -> Run:
        """Give a failed (or cancelled) run one more attempt now."""
        run = self._store.retry_run(check_key(run_id, "run_id"), to_ms(self._clock.now()))
        self._wake()
        return run


def _replace(s: Schedule, **changes: Any) -> Schedule:
    from msgspec.structs import replace

    return replace(s, **changes)


def check_reason(reason: object) -> None:
    """A pause's or a cancel's ``reason``: ``None`` or text of at most ``MAX_TEXT`` characters, no control
    character (a one-line note, shown in tables; HTTP's body says the same, through this)."""
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_TEXT):
        raise ValidationError("reason", f"must be text of at most {MAX_TEXT} characters")
    if reason is not None:
        check_printable(reason, "reason", "reasons")


__all__ = ["JobControl", "check_reason"]


def _limit_reached(schedule: Schedule) -> bool:
    """Whether ``schedule``'s runs so far (those before a reschedule too) are its ``limit``."""
    return schedule.limit is not None and schedule.run_count >= schedule.limit


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
