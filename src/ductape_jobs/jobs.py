"""``ductape.job``: the seeds' Jobs API (create, update, fetch, fetch_all, schedule) and schedule control."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ductape_jobs.engine.scheduler import make_recurrence, new_run, occurrences_of, recurrence_of
from ductape_jobs.errors import ConflictError, NotFoundError, StaleJobError, ValidationError
from ductape_jobs.ids import new_id
from ductape_jobs.job_reports import JobReports
from ductape_jobs.limits import LATEST, MAX_BATCH, MAX_PAGE, MAX_TEXT, check_enum, check_page
from ductape_jobs.models import (
    DispatchResult,
    JobDefinition,
    JobEventTypes,
    JobUpdate,
    NewRun,
    RepeatOptions,
    Run,
    RunFilter,
    RunPhase,
    Schedule,
    ScheduleRequest,
    ScheduleStatus,
    TriggeredBy,
    check_tag,
    parse,
    to_utc,
)
from ductape_jobs.products.admission import admit
from ductape_jobs.store.base import ScheduleChange
from ductape_jobs.timing import Occurrences, plan_due, preview
from ductape_jobs.timing.planning import first_due

if TYPE_CHECKING:
    from ductape_jobs.clock import Clock
    from ductape_jobs.products import Products
    from ductape_jobs.sessions import Sessions
    from ductape_jobs.store.base import Store
    from ductape_jobs.tracing import Tracing
    from ductape_jobs.webhooks import Webhooks


class Jobs(JobReports):
    """Reached as ``ductape.job`` (or ``ductape.product("shop").jobs``, bound to a product). Every method
    validates first and writes nothing on bad input. ``history`` and ``stats`` come from ``JobReports``.

    A job belongs to a product, as in the seeds; one without a product is shared by every product. Bound to a
    product, ``create`` makes that product's jobs, ``fetch_all`` lists them, and a tag finds the product's own
    job first, then the shared one (what the product's schedules run). Unbound, ``create`` makes a shared job
    unless the details name a ``product_tag``, ``fetch_all`` lists every job, and a tag finds the shared job,
    else the one product's job of that tag (``ValidationError`` if several products have one).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        products: Products,
        sessions: Sessions,
        webhooks: Webhooks,
        wake: Callable[[], None],
        tracing: Tracing | None = None,
        product: str | None = None,
        definitions: dict[tuple[str, str], JobDefinition] | None = None,
    ) -> None:
        """``wake`` tells this process's workers that something is due (``engine.wakeup.Wakeup``); ``webhooks``
        receives the lifecycle events; ``products`` and ``sessions`` admit product jobs."""
        self._store = store
        self._clock = clock
        self._products = products
        self._sessions = sessions
        self._webhooks = webhooks
        self._wake = wake
        self._tracing = tracing  # None: off
        self.product_tag = None if product is None else check_tag(product, "product_tag")
        # Job definitions as schedule() last read them, by (the schedule's product, tag), shared by a client's
        # Jobs. A write checks each one against the store (StaleJobError when another client changed it), so
        # a stale entry is read again, never used.
        self._definitions: dict[tuple[str, str], JobDefinition] = {} if definitions is None else definitions

    def _for_product(self, tag: str) -> Jobs:
        """The jobs of product ``tag``, on the same collaborators (and the same cache of definitions)."""
        jobs = copy.copy(self)
        jobs.product_tag = check_tag(tag, "product_tag")
        return jobs

    # ---------------------------------------------------------------------------- job definitions

    def create(self, details: JobDefinition | dict[str, Any]) -> JobDefinition:
        job = parse(JobDefinition, details)
        if self.product_tag is not None:
            if job.product_tag not in (None, self.product_tag):
                raise ValidationError(
                    "product_tag", f"is {job.product_tag!r}, but these are the jobs of product {self.product_tag!r}"
                )
            job = job.model_copy(update={"product_tag": self.product_tag})
        self._check_event(job)
        limits = self._products.limits_of(job)
        if self._store.get_job(job.product_tag or "", job.tag) is not None:  # the store's ConflictError: races
            where = f" in product {job.product_tag!r}" if job.product_tag else ""
            raise ConflictError(f"tag: a job with tag {job.tag!r} already exists{where}")
        self._forget(job.tag)
        self._store.define_resources(limits, self._clock.now())
        return self._store.create_job(job, self._clock.now())

    def update(self, tag: str, data: JobUpdate | dict[str, Any]) -> JobDefinition:
        changes = parse(JobUpdate, data).model_dump(exclude_unset=True)
        if not changes:
            raise ValidationError("data", "give at least one field to update")
        job = self.fetch(tag)
        self._check_event(job.model_copy(update=changes))
        limits = self._products.limits_of(job.model_copy(update=changes))
        self._forget(tag)
        self._store.define_resources(limits, self._clock.now())
        return self._store.update_job(job.product_tag or "", tag, changes, self._clock.now())

    def fetch(self, tag: str) -> JobDefinition:
        if self.product_tag is not None:
            job = self._store.find_job(self.product_tag, tag)
        else:
            found = self._store.jobs_tagged(tag)
            shared = [j for j in found if j.product_tag is None]
            if not shared and len(found) > 1:
                owners = ", ".join(repr(j.product_tag) for j in found)
                raise ValidationError(
                    "tag", f"products {owners} each have a job {tag!r}; name one: ductape.product(<tag>).jobs"
                )
            job = next(iter(shared or found), None)
        if job is None:
            raise NotFoundError("job", tag)
        return job

    def fetch_all(self) -> list[JobDefinition]:
        return self._store.list_jobs(self.product_tag)

    def delete(self, tag: str) -> None:
        """Delete a job. Its live (active or paused) schedules are cancelled first, with the reason
        ``job <tag> deleted``; their history is kept. A job with unlimited executions runs until this."""
        job = self.fetch(tag)
        owner = job.product_tag or ""
        for status in (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED):
            while live := self._store.list_schedules(status=status, job_tag=tag, job_product=owner, limit=MAX_PAGE):
                for schedule in live:
                    self.cancel(schedule.id, reason=f"job {tag} deleted")
        self._forget(tag)
        self._store.delete_job(owner, tag)  # ConflictError if a schedule of it was made meanwhile: nothing deleted

    def _check_event(self, job: JobDefinition) -> None:
        """A product's job runs an event the product declares (FUNCTIONs register in workers: not checked)."""
        products = self._products
        if job.product_tag is None or job.event_type is JobEventTypes.FUNCTION:
            return
        spec = products.find(job.product_tag)
        if spec is None:
            known = ", ".join(products.tags()) or "none"
            raise ValidationError(
                "product_tag",
                f"product {job.product_tag!r} is not declared (known: {known}); a {job.event_type.name} job runs "
                "an event its product declares (ductape.products.add(...) or a product file)",
            )
        try:
            products.locate(spec, job.event_type, job.event_tag, None)
        except ValidationError as exc:
            raise ValidationError("event_tag", exc.rule) from None

    def _forget(self, tag: str) -> None:
        for key in [k for k in self._definitions if k[1] == tag]:
            del self._definitions[key]

    # the seeds' other spellings (000, 001, 002), as written
    fetchAll = fetch_all
    fetch_jobs = fetch_all
    fetchJobs = fetch_all
    fetch_job = fetch
    fetchJob = fetch
    create_job = create
    createJob = create
    update_job = update
    updateJob = update

    # ------------------------------------------------------------------------------- scheduling

    def schedule(self, request: ScheduleRequest | dict[str, Any]) -> DispatchResult:
        """Schedule the job ``event``: now, at ``start_at``, or on ``repeat``. Returns what dispatch() answers."""
        return self._schedule_all([request], indexed=False)[0]

    def schedule_many(self, requests: Iterable[ScheduleRequest | dict[str, Any]]) -> list[DispatchResult]:
        """Schedule many at once in one transaction (all or nothing); much faster for bulk enqueue.

        A bad item raises ``ValidationError`` with its index in the field (``[2].start_at``); none is written.
        At most ``MAX_BATCH`` requests a call.
        """
        batch = list(requests)
        if len(batch) > MAX_BATCH:
            raise ValidationError("requests", f"holds {len(batch)} requests; at most {MAX_BATCH} a call")
        return self._schedule_all(batch, indexed=True)

    def _schedule_keyed(self, request: dict[str, Any], *, key: str, session: dict[str, Any] | None) -> DispatchResult:
        """A feature's JOB event: the schedule keyed ``key`` (``<feature run>:<sequence>:<event>``) if the event
        made it before (a resumed run after a crash), else ``schedule(request)`` under that key, with the
        feature's verified session data (``session``) as the schedule's session."""
        found = self._store.feature_schedule(key)
        if found is None:
            try:
                return self._schedule_all([request], indexed=False, feature_key=key, session=session)[0]
            except ConflictError:  # made meanwhile by another driver of the run (one that lost its lease)
                found = self._store.feature_schedule(key)
                if found is None:
                    raise
        return DispatchResult(
            job_id=found.id,
            status=RunPhase.QUEUED if found.run_count else RunPhase.SCHEDULED,
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
        now = self._clock.now()
        jobs: dict[tuple[str, str], JobDefinition | None] = {}
        schedules: list[Schedule] = []
        runs: list[NewRun] = []
        results: list[DispatchResult] = []
        for i, raw in enumerate(requests):
            try:
                req = self._request(raw)
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
                claims = admit(self._products, self._sessions, req, job)
                schedule, first_runs, result = self._plan(req, job, now, claims if session is None else session)
                if feature_key is not None:
                    schedule = replace(schedule, feature_key=feature_key)
            except ValidationError as exc:
                if not indexed:
                    raise
                field = f"[{i}]" if exc.field == "request" else f"[{i}].{exc.field}"
                raise ValidationError(field, exc.rule) from None
            schedules.append(schedule)
            runs.extend(first_runs)
            results.append(result)
        if schedules:
            planned = {(job.product_tag or "", job.tag): job for job in jobs.values() if job is not None}
            self._store.add_schedules(schedules, runs, planned_from=planned)
            if runs:
                self._wake()
        return results

    def _request(self, raw: ScheduleRequest | dict[str, Any]) -> ScheduleRequest:
        """Bound to a product, a request is that product's (its ``product_tag`` may be left out)."""
        if self.product_tag is not None and isinstance(raw, dict) and "product_tag" not in raw:
            raw = {**raw, "product_tag": self.product_tag}
        req = parse(ScheduleRequest, raw)
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
        start = max(start_at, now) if start_at else now
        every = timedelta(milliseconds=repeat.every) if repeat and repeat.every else None
        limit = repeat.limit if repeat else None
        follows_job = repeat is None and job.intervals > 0
        if follows_job:
            every = timedelta(milliseconds=job.intervals)
            limit = job.executions or None
        end_date = repeat.end_date if repeat else None
        if end_date is not None and end_date < start:
            raise ValidationError("repeat.endDate", f"{end_date.isoformat()} is before the start {start.isoformat()}")
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

    # --------------------------------------------------------------------------- schedule control

    def get(self, job_id: str) -> Schedule:
        """A scheduled job instance by ``job_id``."""
        schedule = self._store.get_schedule(job_id)
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
    ) -> builtins.list[Schedule]:
        """Scheduled job instances, newest first (``product_tag``/``env``: one product's)."""
        state = check_enum(ScheduleStatus, status, "status")
        check_page(limit, offset)
        return self._store.list_schedules(
            status=state, job_tag=job_tag, limit=limit, offset=offset, product_tag=product_tag, env=env
        )

    def pause(self, job_id: str, reason: str | None = None) -> Schedule:
        """No new occurrence starts while paused; runs already queued still run."""
        _check_reason(reason)
        schedule = self.get(job_id)
        if schedule.status is not ScheduleStatus.ACTIVE:
            raise ConflictError(f"schedule {job_id!r} is {schedule.status}; only an active one pauses")
        text = f"paused: {reason}" if reason else "paused"
        paused = self._store.update_schedule(
            job_id, self._clock.now(), ScheduleChange(status=ScheduleStatus.PAUSED, reason=text)
        )
        return paused

    def resume(self, job_id: str) -> Schedule:
        """Carry on from now: occurrences that fell due while paused are skipped."""
        schedule = self.get(job_id)
        if schedule.status is not ScheduleStatus.PAUSED:
            raise ConflictError(f"schedule {job_id!r} is {schedule.status}; only a paused one resumes")
        now = self._clock.now()
        nxt = schedule.next_run_at
        if nxt is not None and nxt < now:
            nxt = first_due(recurrence_of(schedule), now, occurrences_of(schedule))
        status = ScheduleStatus.ACTIVE if nxt is not None else ScheduleStatus.COMPLETED
        self._wake()
        resumed = self._store.update_schedule(job_id, now, ScheduleChange(status=status, next_run_at=nxt, reason=None))
        return resumed

    def cancel(self, job_id: str, reason: str | None = None) -> Schedule:
        """Stop the schedule for good and cancel its runs that have not started (running ones finish)."""
        _check_reason(reason)
        schedule = self.get(job_id)
        if schedule.status is ScheduleStatus.CANCELLED:
            return schedule
        text = f"cancelled: {reason}" if reason else "cancelled"
        cancelled = self._store.update_schedule(
            job_id,
            self._clock.now(),
            ScheduleChange(status=ScheduleStatus.CANCELLED, reason=text, next_run_at=None, cancel_pending=True),
        )
        return cancelled

    def reschedule(self, job_id: str, repeat: RepeatOptions | dict[str, Any]) -> Schedule:
        """Give a schedule a new ``repeat`` (cron/every, limit, endDate, tz) from now on."""
        options = parse(RepeatOptions, repeat, prefix="repeat")
        schedule = self.get(job_id)
        if schedule.status is ScheduleStatus.CANCELLED:
            raise ConflictError(f"schedule {job_id!r} is cancelled; it cannot be given a new repeat")
        now = self._clock.now()
        every = timedelta(milliseconds=options.every) if options.every else None
        changed = _replace(
            schedule,
            cron=options.cron,
            tz=options.tz,
            every=every,
            limit=options.limit,
            end_date=options.end_date,
            start_at=now,
            follows_job=False,
        )
        nxt = first_due(recurrence_of(changed), now, occurrences_of(changed))
        if nxt is not None and nxt <= now and changed.last_due_at == nxt:
            nxt = recurrence_of(changed).next_after(nxt)
        status = schedule.status if nxt is not None else ScheduleStatus.COMPLETED
        if schedule.status is ScheduleStatus.COMPLETED and nxt is not None:
            status = ScheduleStatus.ACTIVE
        self._wake()
        return self._store.update_schedule(
            job_id,
            now,
            ScheduleChange(
                cron=options.cron,
                tz=options.tz,
                every=every,
                limit=options.limit,
                end_date=options.end_date,
                start_at=now,
                follows_job=False,
                next_run_at=nxt,
                status=status,
            ),
        )

    def trigger(self, job_id: str) -> Run:
        """Run a schedule once now, outside its cadence (``triggered_by=manual``), with its input. A cancelled
        schedule runs nothing more: ``ConflictError``."""
        schedule = self.get(job_id)
        if schedule.status is ScheduleStatus.CANCELLED:
            raise ConflictError(f"schedule {job_id!r} is cancelled; it runs nothing more")
        now = self._clock.now()
        run = NewRun(new_id("run"), schedule.id, now, now, RunPhase.QUEUED, TriggeredBy.MANUAL)
        self._store.trigger(schedule.id, run)
        self._wake()
        return self.run(run.id)

    def preview(
        self,
        repeat: RepeatOptions | dict[str, Any],
        start: datetime | str | int | None = None,
        count: int = 10,
    ) -> builtins.list[datetime]:
        """The next ``count`` fire times of ``repeat`` from ``start`` (default now), as aware UTC datetimes."""
        options = parse(RepeatOptions, repeat, prefix="repeat")
        if not 1 <= count <= 10_000:
            raise ValidationError("count", "must be between 1 and 10000")
        try:
            begin = to_utc(start) or self._clock.now()
        except ValueError as exc:
            raise ValidationError("start", str(exc)) from None
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
    ) -> builtins.list[Run]:
        """Run history, newest first; ``phase``: ``failed`` lists the dead letters; ``since``/``until`` take what
        ``start_at`` takes."""
        state = check_enum(RunPhase, phase, "phase")
        check_page(limit, offset)
        after, before = _time(since, "since"), _time(until, "until")
        flt = RunFilter(job_id, job_tag, state, after, before, limit, offset, product_tag=product_tag, env=env)
        return self._store.list_runs(flt)

    def run(self, run_id: str) -> Run:
        """One run with its attempts."""
        found = self._store.get_run(run_id)
        if found is None:
            raise NotFoundError("run", run_id)
        return found

    def retry(self, run_id: str) -> Run:
        """Give a failed (or cancelled) run one more attempt now."""
        run = self._store.retry_run(run_id, self._clock.now())
        self._wake()
        return run


def _replace(s: Schedule, **changes: Any) -> Schedule:
    from dataclasses import replace

    return replace(s, **changes)


def _check_reason(reason: object) -> None:
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_TEXT):
        raise ValidationError("reason", f"must be text of at most {MAX_TEXT} characters")


def _time(value: object, field: str) -> datetime | None:
    try:
        return to_utc(value, allow_zero=False)
    except ValueError as exc:
        raise ValidationError(field, str(exc)) from None


__all__: Sequence[str] = ["Jobs"]


class ProductJobs:
    """``ductape.product``: the seeds' ``product.jobs``. ``ductape.product("shop").jobs`` holds product shop's
    jobs; ``ductape.product.jobs`` those of the client's own product (``Ductape(product="shop")``), which
    ``ductape.job`` also is."""

    def __init__(self, root: Jobs) -> None:
        self.tag = root.product_tag
        self.jobs = root
        self._root = root

    def __call__(self, tag: str) -> ProductJobs:
        if tag == self._root.product_tag:
            return self
        return ProductJobs(self._root._for_product(tag))
