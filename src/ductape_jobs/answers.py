"""What ductape-jobs answers, over HTTP and from ``ductape ... --json`` alike: the records of ``models.py`` as JSON
(times ISO 8601 UTC, durations milliseconds), one shape each, written once.

Field names are the records' own, one name per thing, the SDK's where it has one: a schedule's id is ``job_id``
(what ``schedule()`` answers), which a run names its schedule by too; a run's state is its ``phase``, a
schedule's its ``status``. A schedule's session data, a feature run's, and the secrets of keys and webhooks are
never part of an answer (a webhook's secret is answered once, when it is created; ``POST /sessions/verify`` and
``ductape session verify`` answer the data of the token they are given).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from ductape_jobs.features import EventResult, FeatureRun
from ductape_jobs.inputs import JobDefinition
from ductape_jobs.models import (
    ApiKey,
    Attempt,
    DispatchResult,
    Execution,
    JobHistory,
    JobStats,
    Run,
    Schedule,
    Webhook,
    WebhookDelivery,
)
from ductape_jobs.redaction import redact_webhook_url
from ductape_jobs.retention import keep_json


def _ms(d: timedelta | None) -> int | None:
    return None if d is None else int(d.total_seconds() * 1000)


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
    key: str | None = Field(default=None, description="the key schedule() named it by; null: none")

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
            key=s.key,
        )


class AttemptOut(BaseModel):
    attempt: int
    worker_id: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None = Field(description="finished_at minus started_at: the whole attempt, ms")
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
    """A run, with its attempts (``GET /runs/{id}``, a retry's answer; a list's runs have ``attempts: []``: lists do
    not read them)."""

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
    duration_ms: int | None = Field(
        description="the event's own time (the function, the HTTP call, ...), ms: its attempt's started_at to "
        "completed_at also holds preparing it and recording its outcome"
    )
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


class WebhookOut(BaseModel):
    """A webhook. ``secret`` is present only in the answer that created it."""

    id: str
    product_tag: str
    url: str = Field(
        description="where deliveries go, shown without its secrets (deliveries use it whole): the scheme, host, "
        "port and the path's first segment, the rest of the path masked as ***, the query as ?***, a password as "
        "*** (e.g. https://hooks.slack.com/services/***); in every answer, the one that created it too"
    )
    events: list[str]
    created_at: datetime
    secret: str | None = Field(default=None, description="only when created: keep it, it is not shown again")

    @classmethod
    def of(cls, w: Webhook, secret: str | None = None) -> WebhookOut:
        url = redact_webhook_url(w.url)  # its path, query and password carry the receiver's secret: sent, not shown
        return cls(
            id=w.id, product_tag=w.product_tag, url=url, events=list(w.events), created_at=w.created_at, secret=secret
        )


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
    """An API key as listed (``ductape apikey list``): its visible prefix, never the key or its hash."""

    id: str
    name: str
    prefix: str
    scope: str = Field(description="read, write or admin; each includes the ones before it")
    scopes: list[str] = Field(description="every scope the key has, e.g. ['read', 'write'] for a write key")
    product_tag: str | None = Field(description="the only product the key sees (null: every one)")
    env: str | None = Field(description="the only env the key sees (null: every one)")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, k: ApiKey) -> ApiKeyOut:
        return cls(
            id=k.id,
            name=k.name,
            prefix=k.prefix,
            scope=k.scope.value,
            scopes=[s.value for s in k.scope.granted],
            product_tag=k.product_tag,
            env=k.env,
            created_at=k.created_at,
            last_used_at=k.last_used_at,
            revoked_at=k.revoked_at,
        )


class ExecutionOut(BaseModel):
    """One run of the schedule."""

    number: int = Field(description="1, 2, ... over the schedule's runs in order of due time (ties by run id)")
    run_id: str
    phase: str
    scheduled_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    error: str | None
    result: Any = Field(description="the run's output")
    triggered_by: str
    retry_count: int

    @classmethod
    def of(cls, e: Execution) -> ExecutionOut:
        return cls(
            number=e.number,
            run_id=e.run_id,
            phase=e.phase.value,
            scheduled_at=e.scheduled_at,
            started_at=e.started_at,
            completed_at=e.completed_at,
            duration_ms=e.duration_ms,
            error=e.error,
            result=e.result,
            triggered_by=e.triggered_by.value,
            retry_count=e.retry_count,
        )


class JobHistoryOut(BaseModel):
    """A schedule's history (``job.history``): counts over all its runs, its newest runs first."""

    job_id: str
    job_tag: str
    total: int = Field(description="every run of the schedule")
    successful: int = Field(description="runs that completed")
    failed: int = Field(description="runs that failed for good")
    executions: list[ExecutionOut]
    cut: int = Field(0, description="of the newest runs asked for, those left out: their results passed about 8 MiB")

    @classmethod
    def of(cls, h: JobHistory) -> JobHistoryOut:
        return cls(
            job_id=h.job_id,
            job_tag=h.job_tag,
            total=h.total,
            successful=h.successful,
            failed=h.failed,
            executions=[ExecutionOut.of(e) for e in h.executions],
            cut=h.cut,
        )


class JobStatsOut(BaseModel):
    """How the runs due in ``[since, until)`` went (``job.stats``)."""

    total: int
    by_phase: dict[str, int] = Field(description="runs per phase, every phase (zeros included)")
    finished: int = Field(description="runs that completed or failed for good")
    success_rate: float | None = Field(description="completed / finished; null while none finished")
    completed_first_try: int
    completed_after_retry: int
    average_retry_count: float | None = Field(description="over finished runs; null while none finished")
    product_tag: str | None
    env: str | None
    since: datetime | None
    until: datetime | None

    @classmethod
    def of(cls, s: JobStats) -> JobStatsOut:
        return cls(
            total=s.total,
            by_phase={phase.value: n for phase, n in s.by_phase.items()},
            finished=s.finished,
            success_rate=s.success_rate,
            completed_first_try=s.completed_first_try,
            completed_after_retry=s.completed_after_retry,
            average_retry_count=s.average_retry_count,
            product_tag=s.product_tag,
            env=s.env,
            since=s.since,
            until=s.until,
        )


class EventResultOut(BaseModel):
    sequence_tag: str
    event_tag: str
    event_type: str
    status: str = Field(description="pending, running, retrying, completed, failed or skipped")
    attempts: int
    output: Any = Field(default=None, description="what the event returned (a JOB event has none)")
    job_id: str | None = Field(default=None, description="a JOB event: the schedule it made")
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def of(cls, e: EventResult) -> EventResultOut:
        return cls(
            sequence_tag=e.sequence_tag,
            event_tag=e.event_tag,
            event_type=e.event_type,
            status=e.status.value,
            attempts=e.attempts,
            output=e.output,
            job_id=e.job_id,
            error=e.error,
            started_at=e.started_at,
            completed_at=e.completed_at,
        )


class FeatureRunOut(BaseModel):
    """A feature run (its session data is never part of an answer)."""

    id: str
    product_tag: str
    env: str
    feature_tag: str
    status: str = Field(description="running, completed or failed")
    input: dict[str, Any]
    error: str | None = None
    created_at: datetime
    completed_at: datetime | None = None
    output: dict[str, dict[str, Any]] = Field(description="sequence -> event -> result: what $Sequence sees")
    events: list[EventResultOut]

    @classmethod
    def of(cls, r: FeatureRun) -> FeatureRunOut:
        return cls(
            id=r.id,
            product_tag=r.product_tag,
            env=r.env,
            feature_tag=r.feature_tag,
            status=r.status.value,
            input=r.input,
            error=r.error,
            created_at=r.created_at,
            completed_at=r.completed_at,
            output=r.output,
            events=[EventResultOut.of(e) for e in r.events],
        )


_ANSWERS: dict[type, Callable[[Any], BaseModel]] = {
    JobDefinition: JobOut.of,
    DispatchResult: DispatchOut.of,
    Schedule: ScheduleOut.of,
    Run: RunOut.of,
    Webhook: WebhookOut.of,
    WebhookDelivery: DeliveryOut.of,
    ApiKey: ApiKeyOut.of,
    JobHistory: JobHistoryOut.of,
    JobStats: JobStatsOut.of,
    FeatureRun: FeatureRunOut.of,
}


def answer(value: Any) -> Any:
    """``value`` as JSON, as the HTTP API answers it: a record by its answer above, a list item by item, a dict
    value by value, anything else as it is (``ductape ... --json`` prints this)."""
    of = _ANSWERS.get(type(value))
    if of is not None:
        return of(value).model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [answer(v) for v in value]
    if isinstance(value, dict):
        return {k: answer(v) for k, v in value.items()}
    return value
