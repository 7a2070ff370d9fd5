"""The HTTP API's own answers: problems, pages and lists of the records ``answers.py`` gives as JSON (the CLI's
``--json`` gives the same), and the dashboard's overview and forecast."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from ductape_jobs.answers import DispatchOut, JobOut, WebhookOut

T = TypeVar("T")


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


class DispatchList(BaseModel):
    """What ``schedule_many()`` answers: one dispatch result per request, in the order of the requests."""

    items: list[DispatchOut]


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


class WebhookList(BaseModel):
    items: list[WebhookOut]


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
