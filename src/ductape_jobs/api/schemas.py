"""What the API answers: the records of ``models.py`` as JSON (times ISO 8601 UTC, durations milliseconds).

Field names are the records' own, one name per thing, the SDK's where it has one: a schedule's id is ``job_id``
(what ``schedule()`` answers), which a run names its schedule by too; a run's state is its ``phase``, a
schedule's its ``status``. A schedule's session data and the secrets of keys and webhooks are never part of an
answer (a webhook's secret is answered once, when it is created; ``POST /sessions/verify`` answers the data of
the token it is given).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from ductape_jobs.models import (
    ApiKey,
    Attempt,
    DispatchResult,
    JobDefinition,
    Run,
    Schedule,
    Webhook,
    WebhookDelivery,
)
from ductape_jobs.retention import keep_json

T = TypeVar("T")


def _ms(d: timedelta | None) -> int | None:
    return None if d is None else int(d.total_seconds() * 1000)


class ProblemItem(BaseModel):
    field: str = Field(description="the input field, dotted (repeat.every), or [i].field in a list")
    rule: str = Field(description="the rule it broke")
    message: str = Field(description="field: rule")


class Problem(BaseModel):
    """A 422: every problem found, as ``ductape_jobs.ValidationError.to_dict()``; nothing was written."""

    detail: list[ProblemItem]


class Message(BaseModel):
    """401, 403, 404 and 409 answers."""

    detail: str


class JobOut(BaseModel):
    """A job definition (``IProductJob``)."""

    name: str
    tag: str
    product_tag: str | None = Field(default=None, description="the product it belongs to; null: shared by all")
    event_type: str
    event_tag: str
    executions: int
    intervals: int = Field(description="milliseconds between runs; 0 = run once")
    start_at: datetime | None = None
    keep_completed: str | int | None = Field(
        default=None, description="this job's retention of completed runs: a duration (7d) or a count; null: default"
    )
    keep_failed: str | int | None = Field(
        default=None, description="this job's retention of failed runs: a duration (30d) or a count; null: default"
    )
    created_at: datetime | None = None
    updated_at: datetime | None = None
    resources: list[str] = Field(default_factory=list, description="its product's resources its runs use")
    concurrency: int | None = Field(default=None, description="its own limit: runs executing at once")
    rate: str | None = Field(default=None, description="its own limit: runs started per window")
    priority: int = Field(default=0, description="its runs' default priority")

    @classmethod
    def of(cls, job: JobDefinition) -> JobOut:
        return cls(
            name=job.name,
            tag=job.tag,
            product_tag=job.product_tag,
            event_type=job.event_type.value,
            event_tag=job.event_tag,
            executions=job.executions,
            intervals=job.intervals,
            start_at=job.start_at,
            keep_completed=keep_json(job.keep_completed),
            keep_failed=keep_json(job.keep_failed),
            created_at=job.created_at,
            updated_at=job.updated_at,
            resources=list(job.resources),
            concurrency=job.concurrency,
            rate=job.rate,
            priority=job.priority,
        )


class DispatchOut(BaseModel):
    """What ``schedule()`` answers, as the SDK's ``dispatch()``."""

    job_id: str
    status: str
    scheduled_at: datetime
    recurring: bool
    next_run_at: datetime | None

    @classmethod
    def of(cls, r: DispatchResult) -> DispatchOut:
        return cls(
            job_id=r.job_id,
            status=r.status.value,
            scheduled_at=r.scheduled_at,
            recurring=r.recurring,
            next_run_at=r.next_run_at,
        )


class DispatchList(BaseModel):
    """What ``schedule_many()`` answers: one dispatch result per request, in the order of the requests."""

    items: list[DispatchOut]


class ScheduleOut(BaseModel):
    """A scheduled job instance."""

    job_id: str = Field(description="the schedule's id (what schedule() answered)")
    job_tag: str
    product_tag: str
    env: str
    status: str
    input: dict[str, Any]
    retries: int
    start_at: datetime
    next_run_at: datetime | None
    last_due_at: datetime | None
    run_count: int
    skipped_count: int
    created_at: datetime
    recurring: bool
    cron: str | None
    tz: str
    every: int | None = Field(description="milliseconds")
    limit: int | None
    end_date: datetime | None
    follows_job: bool
    timeout: int | None = Field(description="milliseconds")
    misfire: str
    overlap: str
    pause_on_failure: bool
    app: str | None
    cache: str | None
    session_tag: str | None
    reason: str | None
    priority: int | None = Field(default=None, description="its runs' priority; null: its job's")

    @classmethod
    def of(cls, s: Schedule) -> ScheduleOut:
        return cls(
            job_id=s.id,
            job_tag=s.job_tag,
            product_tag=s.product_tag,
            env=s.env,
            status=s.status.value,
            input=s.input,
            retries=s.retries,
            start_at=s.start_at,
            next_run_at=s.next_run_at,
            last_due_at=s.last_due_at,
            run_count=s.run_count,
            skipped_count=s.skipped_count,
            created_at=s.created_at,
            recurring=s.recurring,
            cron=s.cron,
            tz=s.tz,
            every=_ms(s.every),
            limit=s.limit,
            end_date=s.end_date,
            follows_job=s.follows_job,
            timeout=_ms(s.timeout),
            misfire=s.misfire.value,
            overlap=s.overlap.value,
            pause_on_failure=s.pause_on_failure,
            app=s.app,
            cache=s.cache,
            session_tag=s.session_tag,
            reason=s.reason,
            priority=s.priority,
        )


class AttemptOut(BaseModel):
    attempt: int
    worker_id: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    outcome: str | None = Field(
        description="completed, failed, timeout, lost, released, cached; 'lost, then <outcome>' when the worker "
        "of an attempt the rescue marked lost reported it later (its run is not changed); null: running"
    )
    error: str | None

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        took = None if a.finished_at is None else _ms(a.finished_at - a.started_at)
        return cls(
            attempt=a.attempt,
            worker_id=a.worker_id,
            started_at=a.started_at,
            finished_at=a.finished_at,
            duration_ms=took,
            outcome=a.outcome,
            error=a.error,
        )


class RunOut(BaseModel):
    """A run, with its attempts (``GET /runs/{id}``; lists leave them out)."""

    id: str
    job_id: str = Field(description="its schedule's id (what schedule() answered)")
    job_tag: str
    product_tag: str
    env: str
    event_type: str
    event_tag: str
    phase: str
    triggered_by: str
    scheduled_at: datetime
    available_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    lateness_ms: int | None = Field(description="start minus the time the run (or its retry) became due")
    attempt: int
    retry_count: int
    max_retries: int
    error: str | None
    input: dict[str, Any]
    output: Any
    timeout: int | None = Field(description="milliseconds")
    app: str | None
    cache: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    attempts: list[AttemptOut]
    priority: int = 0
    waiting_on: str | None = Field(default=None, description="the limit that holds it, while it waits")

    @classmethod
    def of(cls, r: Run) -> RunOut:
        due = r.available_at or r.scheduled_at
        late = None if r.started_at is None else max(0, _ms(r.started_at - due) or 0)
        return cls(
            id=r.id,
            job_id=r.job_id,
            job_tag=r.job_tag,
            product_tag=r.product_tag,
            env=r.env,
            event_type=r.event_type.value,
            event_tag=r.event_tag,
            phase=r.phase.value,
            triggered_by=r.triggered_by.value,
            scheduled_at=r.scheduled_at,
            available_at=r.available_at,
            started_at=r.started_at,
            completed_at=r.completed_at,
            duration_ms=r.duration_ms,
            lateness_ms=late,
            attempt=r.attempt,
            retry_count=r.retry_count,
            max_retries=r.max_retries,
            error=r.error,
            input=r.input,
            output=r.output,
            timeout=_ms(r.timeout),
            app=r.app,
            cache=r.cache,
            lease_owner=r.lease_owner,
            lease_expires_at=r.lease_expires_at,
            attempts=[AttemptOut.of(a) for a in r.attempts],
            priority=r.priority,
            waiting_on=r.waiting_on,
        )


class Page(BaseModel, Generic[T]):
    """A page of a list, newest first. ``has_more``: another page follows (ask with ``offset + limit``)."""

    items: list[T]
    limit: int
    offset: int
    has_more: bool


class JobList(BaseModel):
    items: list[JobOut]


class PreviewOut(BaseModel):
    times: list[datetime]


class WebhookOut(BaseModel):
    """A webhook. ``secret`` is present only in the answer that created it."""

    id: str
    product_tag: str
    url: str
    events: list[str]
    created_at: datetime
    secret: str | None = Field(default=None, description="only when created: keep it, it is not shown again")

    @classmethod
    def of(cls, w: Webhook, secret: str | None = None) -> WebhookOut:
        return cls(
            id=w.id, product_tag=w.product_tag, url=w.url, events=list(w.events), created_at=w.created_at, secret=secret
        )


class WebhookList(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    event: str
    status: str = Field(description="pending, delivered or failed (gave up)")
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None = Field(description="what went wrong, with at most 200 characters of the answer")
    last_status: int | None = Field(description="the HTTP status of the last attempt's answer (null: none)")
    last_duration_ms: int | None = Field(description="how long the last attempt took, ms (null: not sent)")
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="the JSON body as sent")

    @classmethod
    def of(cls, d: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=d.id,
            webhook_id=d.webhook_id,
            event=d.event,
            status=d.status.value,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_error=d.last_error,
            last_status=d.last_status,
            last_duration_ms=d.last_duration_ms,
            created_at=d.created_at,
            delivered_at=d.delivered_at,
            payload=d.payload,
        )


class ApiKeyOut(BaseModel):
    """An API key as listed: its visible prefix, never the key or its hash."""

    id: str
    name: str
    prefix: str
    product_tag: str | None
    env: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, k: ApiKey) -> ApiKeyOut:
        return cls(
            id=k.id,
            name=k.name,
            prefix=k.prefix,
            product_tag=k.product_tag,
            env=k.env,
            created_at=k.created_at,
            last_used_at=k.last_used_at,
            revoked_at=k.revoked_at,
        )


class MinuteOut(BaseModel):
    minute: datetime
    completed: int
    failed: int


class Lateness(BaseModel):
    """Percentiles of start minus due time, in ms, over the runs started in the last hour (null: none)."""

    p50: int | None
    p95: int | None
    p99: int | None
    sample: int = Field(description="how many runs the percentiles are computed from")


class NextRun(BaseModel):
    job_id: str
    job_tag: str
    next_run_at: datetime


class Overview(BaseModel):
    runs_per_minute: list[MinuteOut] = Field(description="the last 60 minutes, oldest first, every minute present")
    failures_last_hour: int
    queue_depth: int = Field(description="runs due now that no worker has claimed yet")
    lateness_ms: Lateness
    next_runs: list[NextRun] = Field(description="the 10 active schedules due soonest")


class ForecastJob(BaseModel):
    job_tag: str
    counts: dict[int, int] = Field(description="minute index from start -> runs starting in that minute")
    total: int


class ForecastLimit(BaseModel):
    resource: str = Field(description="the resource's name (a job's own limit: job:<tag>)")
    product_tag: str
    minute: int = Field(description="minute index from start")
    starts: int = Field(description="runs due to start under it that minute")
    allowed: int = Field(description="what its rate lets start in a minute")


class Forecast(BaseModel):
    start: datetime = Field(description="the start of the first minute (now, down to the minute)")
    minutes: int
    jobs: list[ForecastJob]
    schedules: int = Field(description="how many active schedules were considered")
    truncated: bool = Field(description="true when schedules or occurrences were capped: counts are lower bounds")
    over_limits: list[ForecastLimit] = Field(
        default_factory=list, description="minutes in which a rate limit would hold runs back (they wait, later)"
    )
