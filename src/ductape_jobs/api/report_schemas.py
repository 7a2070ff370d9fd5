"""What ``GET /schedules/{job_id}/history`` and ``GET /stats/jobs`` answer: ``JobHistory`` and ``JobStats`` as
JSON (times ISO 8601 UTC, durations milliseconds), beside the other answers of ``schemas.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ductape_jobs.models import Execution, JobHistory, JobStats


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

    @classmethod
    def of(cls, h: JobHistory) -> JobHistoryOut:
        return cls(
            job_id=h.job_id,
            job_tag=h.job_tag,
            total=h.total,
            successful=h.successful,
            failed=h.failed,
            executions=[ExecutionOut.of(e) for e in h.executions],
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
