"""``ductape.job.schedule`` and ``schedule_many``: a request validated, admitted by its product, planned (its first
due time, and its run when due at once) and stored with its first run in one transaction. ``Jobs`` has them from
``JobScheduling``. A ``schedule_many`` of more than ``PART`` requests is planned and written part by part, in one
transaction still: on PostgreSQL the server inserts a part while this process plans the next. Every request is
parsed and its job read before the first part is sent, so that nothing is read while the parts hold a connection."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from ductape_jobs.clock import to_ms
from ductape_jobs.engine.scheduler import make_recurrence, new_run
from ductape_jobs.errors import ConflictError, NotFoundError, StaleJobError, ValidationError
from ductape_jobs.ids import new_id
from ductape_jobs.limits import LATEST, MAX_BATCH
from ductape_jobs.models import (
    DispatchResult,
    NewRun,
    RunPhase,
    Schedule,
    ScheduleStatus,
    check_end_date,
    schedule_key,
)
from ductape_jobs.products.admission import admit
from ductape_jobs.store.base import SchedulePart
from ductape_jobs.timing import Occurrences, plan_due
from ductape_jobs.timing.planning import first_due

if TYPE_CHECKING:
    from ductape_jobs.clock import Clock
    from ductape_jobs.inputs import JobDefinition, ScheduleRequest
    from ductape_jobs.products import Products
    from ductape_jobs.sessions import Sessions
    from ductape_jobs.store.base import Store
    from ductape_jobs.tracing import Tracing


#: Requests of a ``schedule_many`` planned and written as one part (``Store.add_schedule_parts``). On PostgreSQL, with
#: calls of 1,000 requests, parts of 100 were as fast as parts of 50, and faster than parts of 200 or 400 (each part
#: costs the server a call and its checks; a larger part leaves it idle longer while the first is planned).
PART = 100


class JobScheduling:
    """Scheduling, validated before anything is committed (bad input: ``ValidationError``, nothing stored). The
    requests are parsed and their jobs read first; past one part, a request that its product or its plan refuses
    rolls back the parts already sent."""

    _store: Store
    _clock: Clock
    _products: Products
    _sessions: Sessions
    _wake: Callable[[], None]
    _tracing: Tracing | None
    _definitions: dict[tuple[str, str], JobDefinition]
    product_tag: str | None

    def schedule(self, request: ScheduleRequest | dict[str, Any]) -> DispatchResult:
        """Schedule the job ``event``: now, at ``start_at``, or on ``repeat``. Returns what dispatch() answers.

        With a ``key``, the schedule of its product and env made under that key before, if any, is answered as it
        is and nothing is made: a request repeated (a deploy that makes its schedules, on several nodes at once)
        makes one schedule. A request answered so is checked as a request that makes one is (its job, its
        product's rules, its session), but not planned again: its plan was made (an end date since passed is no
        error)."""
        if (request.get("key") if isinstance(request, dict) else getattr(request, "key", None)) is not None:
            req = self._request(request)
            if req.key is not None:
                key = schedule_key(req.product_tag, req.env, req.key)
                return self._schedule_keyed(request, key=key, session=None, made=lambda: self._admitted(request))
        return self._schedule_all([request], indexed=False)[0]

    def _admitted(self, request: ScheduleRequest | dict[str, Any]) -> None:
        """``request`` checked as ``schedule()`` checks one before it plans it (its job, its product's rules, its
        session; ``ValidationError`` as it would raise), nothing written."""
        found, refused = self._find_jobs([request], indexed=False)
        if refused is not None:
            raise refused
        ((req, job),) = found
        admit(self._products, self._sessions, req, job)

    def schedule_many(self, requests: Iterable[ScheduleRequest | dict[str, Any]]) -> list[DispatchResult]:
        """Schedule many at once in one transaction (all or nothing); much faster for bulk enqueue.

        A bad item raises ``ValidationError`` with its index in the field (``[2].start_at``); none is written.
        At most ``MAX_BATCH`` requests a call.
        """
        return self._schedule_all(request_list(requests), indexed=True)

    def _schedule_keyed(
        self,
        request: ScheduleRequest | dict[str, Any],
        *,
        key: str,
        session: dict[str, Any] | None,
        made: Callable[[], None] | None = None,
    ) -> DispatchResult:
        """The schedule keyed ``key`` if it was made before (``made`` checks the request then), else
        ``schedule(request)`` under that key, checked as it makes it. A caller's key (``schedule_key``; ``session``
        is ``None``: the request's own is verified), or a feature's JOB event's (``<feature run>:<sequence>:<event>``:
        a resumed run after a crash finds it), with the feature's verified session data (``session``) as the
        schedule's session."""
        found = self._store.feature_schedule(key)
        if found is not None and made is not None:
            made()
        if found is None:
            try:
                return self._schedule_all([request], indexed=False, feature_key=key, session=session)[0]
            except ConflictError:  # made meanwhile: another node's call, another driver of the feature run
                found = self._store.feature_schedule(key)
                if found is None:
                    raise
        return DispatchResult(
            job_id=found.id,
            status=_status_of(found),
            scheduled_at=found.last_due_at or found.next_run_at or found.start_at,
            recurring=found.recurring,
            next_run_at=found.next_run_at,
        )

    def _schedule_all(
        self, requests: list[ScheduleRequest | dict[str, Any]], *, indexed: bool, **feature: Any
    ) -> list[DispatchResult]:
        try:
            return self._store_all(requests, indexed=indexed, **feature)
        except (StaleJobError, NotFoundError) as exc:  # a cached definition changed or went: read again, once
            if isinstance(exc, NotFoundError) and exc.kind != "job":
                raise
            self._definitions.clear()
            return self._store_all(requests, indexed=indexed, **feature)

    def _definition(self, product_tag: str, tag: str) -> JobDefinition | None:
        """The job a schedule of ``product_tag`` runs: the product's own, else the shared one."""
        job = self._definitions.get((product_tag, tag))
        if job is None:
            job = self._store.find_job(product_tag, tag)
            if job is not None:
                self._definitions[(product_tag, tag)] = job
        return job

    def _store_all(
        self,
        requests: list[ScheduleRequest | dict[str, Any]],
        *,
        indexed: bool,
        feature_key: str | None = None,
        session: dict[str, Any] | None = None,
    ) -> list[DispatchResult]:
        now = to_ms(self._clock.now())  # as stored: what it answers is what a read gives back
        found, refused = self._find_jobs(requests, indexed=indexed)  # every read first: none while parts are written
        planned = {(job.product_tag or "", job.tag): job for _, job in found}
        results: list[DispatchResult] = []
        due = False  # some first run is due at once: the workers are woken

        def parts() -> Iterator[SchedulePart]:
            nonlocal due
            schedules: list[Schedule] = []
            runs: list[NewRun] = []
            for i, (req, job) in enumerate(found):
                try:
                    claims = admit(self._products, self._sessions, req, job)
                    schedule, first_runs, result = self._plan(req, job, now, claims if session is None else session)
                except ValidationError as exc:
                    if not indexed:
                        raise
                    raise _at(i, exc) from None
                if feature_key is not None:
                    schedule = replace(schedule, feature_key=feature_key)
                schedules.append(schedule)
                runs.extend(first_runs)
                results.append(result)
                due = due or bool(first_runs)
                if len(schedules) == PART or i == len(found) - 1:
                    yield SchedulePart(schedules, runs, planned)
                    schedules, runs = [], []

        if refused is not None:
            for _ in parts():  # a request before it that its product or its plan refuses is the one reported
                pass
            raise refused
        # more than a part: each part is written while the next is planned (PostgreSQL: its server inserts one
        # while this process plans the next), all in one transaction; a request refused rolls back what was sent
        self._store.add_schedule_parts(parts() if len(found) > PART else list(parts()))
        if due:
            self._wake()
        return results

    def _find_jobs(
        self, requests: list[ScheduleRequest | dict[str, Any]], *, indexed: bool
    ) -> tuple[list[tuple[ScheduleRequest, JobDefinition]], ValidationError | None]:
        """The requests parsed, each with the job it schedules (read from the store unless cached), up to the first
        that is refused, and its error (``None``: none was)."""
        jobs: dict[tuple[str, str], JobDefinition | None] = {}
        found: list[tuple[ScheduleRequest, JobDefinition]] = []
        for i, raw in enumerate(requests):
            try:
                req = self._request(raw)
                if indexed and req.key is not None:  # one transaction, all or nothing: a key used would end it
                    raise ValidationError("key", "is taken by schedule(), one request at a time, not schedule_many")
                key = (req.product_tag, req.event)
                if key not in jobs:
                    jobs[key] = self._definition(*key)
                job = jobs[key]
                if job is None:
                    raise ValidationError(
                        "event",
                        f"no job with tag {req.event!r} in product {req.product_tag!r} and no shared one; "
                        "create it with job.create first",
                    )
            except ValidationError as exc:
                return found, _at(i, exc) if indexed else exc
            found.append((req, job))
        return found, None

    def _request(self, raw: ScheduleRequest | dict[str, Any]) -> ScheduleRequest:
        """Bound to a product, a request is that product's (its ``product_tag`` may be left out)."""
        if self.product_tag is not None and isinstance(raw, dict) and "product_tag" not in raw:
            raw = {**raw, "product_tag": self.product_tag}
        req = _request_parser()(raw)
        if self.product_tag is not None and req.product_tag != self.product_tag:
            raise ValidationError(
                "product_tag", f"is {req.product_tag!r}, but these are the jobs of product {self.product_tag!r}"
            )
        return req

    def _plan(
        self, req: ScheduleRequest, job: JobDefinition, now: datetime, claims: dict[str, Any] | None
    ) -> tuple[Schedule, list[NewRun], DispatchResult]:
        repeat = req.repeat
        # An explicit start_at (0 or a past time: now) wins over the job's; an absent one falls back to it.
        start_at = req.start_at if "start_at" in req.model_fields_set else job.start_at
        start = to_ms(max(start_at, now)) if start_at else now  # as stored: a start_at of now with microseconds is now
        every = timedelta(milliseconds=repeat.every) if repeat and repeat.every else None
        limit = repeat.limit if repeat else None
        follows_job = repeat is None  # its job's cadence, now and after a job.update of it (one-offs too)
        if follows_job and job.intervals > 0:
            every = timedelta(milliseconds=job.intervals)
            limit = job.executions or None
        end_date = repeat.end_date if repeat else None
        check_end_date(end_date, start)
        cron, tz = (repeat.cron, repeat.tz) if repeat else (None, "UTC")
        recurrence = make_recurrence(cron, tz, every, start)
        first = first_due(recurrence, start, Occurrences(None, 0, limit, end_date))
        if first is None and end_date is not None:
            raise ValidationError("repeat.endDate", "no occurrence falls between the start and the end date")
        if first is None:
            raise ValidationError("repeat", f"no occurrence falls before {LATEST.date().isoformat()}")
        due_now: list[datetime] = []
        next_due: datetime | None = first
        tracing = self._tracing  # None: off (the trace current now is kept only when tracing is on)
        if first <= now:  # due at once: its run is created with the schedule, no scheduler hop
            plan = plan_due(recurrence, Occurrences(first, 0, limit, end_date), now, misfire=req.misfire)
            due_now, next_due = plan.due[:1], plan.next_due
        schedule = Schedule(
            id=new_id("job"),
            job_tag=job.tag,
            env=req.env,
            product_tag=req.product_tag,
            job_product=job.product_tag or "",
            input=req.input,
            retries=req.retries,
            status=ScheduleStatus.COMPLETED if next_due is None else ScheduleStatus.ACTIVE,
            start_at=start,
            next_run_at=next_due,
            run_count=len(due_now),
            created_at=now,
            app=req.app,
            cache=req.cache,
            session_tag=req.session.tag if req.session else None,
            session=claims,
            cron=cron,
            tz=tz,
            every=every,
            limit=limit,
            end_date=end_date,
            follows_job=follows_job,
            timeout=timedelta(milliseconds=req.timeout) if req.timeout else None,
            misfire=req.misfire,
            overlap=req.overlap,
            pause_on_failure=req.pause_on_failure,
            last_due_at=due_now[-1] if due_now else None,
            priority=req.priority,
            trace_context=None if tracing is None else tracing.capture(cron is not None or every is not None),
        )
        runs = [new_run(schedule, due, now=now) for due in due_now]
        result = DispatchResult(
            job_id=schedule.id,
            status=RunPhase.QUEUED if runs else RunPhase.SCHEDULED,
            scheduled_at=first,
            recurring=schedule.recurring,
            next_run_at=next_due,
        )
        return schedule, runs, result


@functools.cache
def _request_parser() -> Callable[[object], ScheduleRequest]:
    """``parse(ScheduleRequest, raw)``: pydantic's models are imported with the first request read, not with the
    package (a worker process, which reads none, loads none of pydantic)."""
    from ductape_jobs.inputs import ScheduleRequest, parse

    return lambda raw: parse(ScheduleRequest, raw)


def _status_of(found: Schedule) -> RunPhase:
    """What a keyed ``schedule()`` answers of the schedule it finds: cancelled (none of it runs: it said "scheduled"),
    else what its making answered."""
    if found.status is ScheduleStatus.CANCELLED:
        return RunPhase.CANCELLED
    return RunPhase.QUEUED if found.run_count else RunPhase.SCHEDULED


def request_list(requests: object) -> list[ScheduleRequest | dict[str, Any]]:
    """The requests of a ``schedule_many``, a list of at most ``MAX_BATCH``: text, a single request or anything not
    iterable is a ``ValidationError`` (a string was taken character by character: ``[0]: expected an object``)."""
    from ductape_jobs.inputs import ScheduleRequest

    if isinstance(requests, str | bytes | bytearray | Mapping | ScheduleRequest) or not isinstance(requests, Iterable):
        raise ValidationError("requests", f"must be a list of requests, not {type(requests).__name__}")
    batch = list(requests)
    if len(batch) > MAX_BATCH:
        raise ValidationError("requests", f"holds {len(batch)} requests; at most {MAX_BATCH} a call")
    return batch


def _at(index: int, exc: ValidationError) -> ValidationError:
    """``exc`` of the request at ``index`` of a ``schedule_many``: its field prefixed (``[2].start_at``)."""
    return ValidationError(f"[{index}]" if exc.field == "request" else f"[{index}].{exc.field}", exc.rule)


__all__ = ["JobScheduling", "request_list"]
