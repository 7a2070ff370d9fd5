"""The engine on an injected clock: scheduling, cadence, retries, misfire, overlap, leases, timeouts."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs import (
    AsyncDuctape,
    Backoff,
    Ductape,
    FakeClock,
    RunContext,
    RunPhase,
    ScheduleStatus,
    StoreError,
    TriggeredBy,
    ValidationError,
    aio,
)
from ductape_jobs.api.ops import Metrics
from ductape_jobs.engine.worker import Worker
from ductape_jobs.errors import ConflictError, WouldWait
from ductape_jobs.models import DispatchResult
from ductape_jobs.retention import Retention
from ductape_jobs.testing import Sandbox


def job(dt: Ductape, tag: str = "report", fn: str = "report", **extra: Any) -> None:
    dt.job.create({"name": tag.title(), "tag": tag, "event_type": "FUNCTION", "event_tag": fn, **extra})


def req(event: str = "report", **extra: Any) -> dict[str, Any]:
    return {"env": "prd", "product_tag": "reports", "event": event, **extra}


class Recorder:
    def __init__(self, fail_times: int = 0) -> None:
        self.calls: list[tuple[dict[str, Any], RunContext]] = []
        self.fail_times = fail_times

    def __call__(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        self.calls.append((input, ctx))
        if len(self.calls) <= self.fail_times:
            raise RuntimeError(f"boom {len(self.calls)}")
        return {"n": len(self.calls)}


def test_immediate_job_runs_once_and_keeps_its_record(dt: Ductape, clock: FakeClock) -> None:
    rec = dt.function("report")(Recorder())
    job(dt)
    s = dt.job.schedule(req(input={"user": "u1"}, retries=2))
    assert s.status is RunPhase.QUEUED and not s.recurring and s.next_run_at is None
    assert s.scheduled_at == clock.now()
    summary = dt.drain()
    assert (summary.completed, summary.failed) == (1, 0)
    assert dt.drain().ran == 0  # nothing twice
    (run,) = dt.job.runs(job_id=s.job_id)
    assert run.phase is RunPhase.COMPLETED and run.output == {"n": 1}
    assert (run.job_tag, run.product_tag, run.env, run.event_tag) == ("report", "reports", "prd", "report")
    assert run.input == {"user": "u1"} and run.retry_count == 0 and run.triggered_by is TriggeredBy.SCHEDULE
    assert run.started_at is not None and run.completed_at is not None and run.duration_ms is not None
    assert [a.outcome for a in dt.job.run(run.id).attempts] == ["completed"]
    assert rec.calls[0][0] == {"user": "u1"} and rec.calls[0][1].job_id == s.job_id
    assert dt.job.get(s.job_id).status is ScheduleStatus.COMPLETED


def test_future_start_at_waits_for_its_time(dt: Ductape, clock: FakeClock) -> None:
    rec = dt.function("report")(Recorder())
    job(dt)
    at = clock.now() + timedelta(hours=1)
    s = dt.job.schedule(req(start_at=int(at.timestamp() * 1000)))  # milliseconds, as the JS SDK passes
    assert s.status is RunPhase.SCHEDULED and s.scheduled_at == at
    clock.advance(minutes=59)
    assert dt.drain().ran == 0 and not rec.calls
    clock.advance(minutes=1)
    assert dt.drain().completed == 1
    (run,) = dt.job.runs()
    assert run.scheduled_at == at and run.started_at == at


def test_every_with_limit_runs_exactly_limit_times(ductape_sandbox: Sandbox) -> None:
    dt = ductape_sandbox
    rec = dt.function("report")(Recorder())
    job(dt)
    s = dt.job.schedule(req(repeat={"every": 604_800_000, "limit": 4}))
    assert s.recurring and s.next_run_at == s.scheduled_at + timedelta(days=7)
    dt.advance(days=60)
    assert len(rec.calls) == 4
    due = sorted(r.scheduled_at for r in dt.job.runs())
    assert [b - a for a, b in itertools.pairwise(due)] == [timedelta(days=7)] * 3
    assert dt.job.get(s.job_id).status is ScheduleStatus.COMPLETED


def test_end_date_stops_the_schedule(ductape_sandbox: Sandbox) -> None:
    dt = ductape_sandbox
    dt.function("report")(Recorder())
    job(dt)
    end = dt.now() + timedelta(days=3, hours=1)
    dt.job.schedule(req(repeat={"every": 86_400_000, "endDate": end.isoformat()}))
    dt.advance(days=10)
    assert len(dt.job.runs()) == 4  # day 0, 1, 2, 3
    assert all(r.scheduled_at <= end for r in dt.job.runs())


def test_job_cadence_without_repeat_and_update_changes_it(ductape_sandbox: Sandbox) -> None:
    dt = ductape_sandbox
    rec = dt.function("report")(Recorder())
    job(dt, executions=0, intervals=3_600_000)
    s = dt.job.schedule(req())
    assert s.recurring
    dt.advance(hours=3)
    assert len(rec.calls) == 4  # now, +1h, +2h, +3h
    dt.job.update("report", {"intervals": 7_200_000, "executions": 6})
    dt.advance(hours=24)
    due = sorted(r.scheduled_at for r in dt.job.runs(job_id=s.job_id))
    assert len(due) == 6 and due[-1] - due[-2] == timedelta(hours=2)


def test_a_schedule_without_repeat_follows_its_job_whatever_its_cadence_was(ductape_sandbox: Sandbox) -> None:
    """A job.update to intervals 0 left a schedule that had not run yet with nothing due (it never ran; paused
    and resumed, it completed with no run); a one-off made while its job had no intervals ignored a job.update
    that gave it some."""
    dt = ductape_sandbox
    rec = dt.function("report")(Recorder())
    job(dt, executions=0, intervals=3_600_000)
    at = int((dt.now() + timedelta(minutes=30)).timestamp() * 1000)
    waiting, paused = dt.job.schedule(req(start_at=at)), dt.job.schedule(req(start_at=at))
    dt.job.pause(paused.job_id)
    dt.job.update("report", {"intervals": 0})
    dt.advance(hours=1)
    dt.job.resume(paused.job_id)
    dt.advance(hours=5)
    ran = sorted((r.job_id, r.scheduled_at) for r in dt.job.runs())
    assert ran == sorted([(waiting.job_id, waiting.scheduled_at), (paused.job_id, paused.scheduled_at)])
    assert {dt.job.get(s.job_id).status for s in (waiting, paused)} == {ScheduleStatus.COMPLETED}

    # one that a resume moved past the occurrences its pause skipped keeps its next one, not its start
    dt.job.update("report", {"intervals": 3_600_000})
    skipped = dt.job.schedule(req(start_at=int((dt.now() + timedelta(minutes=30)).timestamp() * 1000)))
    dt.job.pause(skipped.job_id)
    dt.advance(hours=3)
    resumed = dt.job.resume(skipped.job_id).next_run_at
    assert resumed == skipped.scheduled_at + timedelta(hours=3)
    dt.job.update("report", {"intervals": 0})
    assert dt.job.get(skipped.job_id).next_run_at == resumed
    dt.advance(hours=2)
    assert [r.scheduled_at for r in dt.job.runs(job_id=skipped.job_id)] == [resumed]

    calls = len(rec.calls)
    dt.job.update("report", {"intervals": 0})
    once = dt.job.schedule(req(start_at=int((dt.now() + timedelta(minutes=30)).timestamp() * 1000)))
    assert not once.recurring
    dt.job.update("report", {"intervals": 3_600_000, "executions": 3})
    dt.advance(hours=6)
    due = sorted(r.scheduled_at for r in dt.job.runs(job_id=once.job_id))
    assert due == [once.scheduled_at + timedelta(hours=n) for n in range(3)] and len(rec.calls) == calls + 3


def test_cron_in_time_zone_across_spring_forward(ductape_sandbox: Sandbox) -> None:
    dt = ductape_sandbox
    dt.clock.set(datetime(2026, 3, 7, 12, tzinfo=UTC))
    rec = dt.function("report")(Recorder())
    job(dt)
    dt.job.schedule(req(repeat={"cron": "30 2 * * *", "tz": "America/New_York"}))
    dt.advance(days=3)
    fired = [ctx.scheduled_at for _, ctx in rec.calls]
    # Mar 8 02:30 does not exist in New York: it fires once, right after the gap (03:00 EDT = 07:00 UTC).
    assert fired == [
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 6, 30, tzinfo=UTC),
        datetime(2026, 3, 10, 6, 30, tzinfo=UTC),
    ]


def test_retries_with_backoff_then_dead_letter(ductape_sandbox: Sandbox) -> None:
    dt = ductape_sandbox
    rec = dt.function("report")(Recorder(fail_times=10))
    job(dt)
    s = dt.job.schedule(req(retries=2))
    first = dt.drain()
    assert first.retried == 1
    (run,) = dt.job.runs(job_id=s.job_id)
    assert run.phase is RunPhase.RETRY_SCHEDULED and run.retry_count == 1
    assert run.available_at == dt.now() + timedelta(seconds=1)  # base backoff, no jitter in the sandbox
    dt.advance(minutes=5)
    assert len(rec.calls) == 3
    (failed,) = dt.job.runs(phase="failed")
    assert failed.id == run.id and failed.retry_count == 2 and "boom 3" in (failed.error or "")
    attempts = dt.job.run(run.id).attempts
    assert [a.outcome for a in attempts] == ["failed", "failed", "failed"]
    gaps = [b.started_at - a.started_at for a, b in itertools.pairwise(attempts)]
    assert gaps == [timedelta(seconds=1), timedelta(seconds=2)]  # exponential


def test_a_failed_attempt_that_is_retried_says_so_at_info(
    ductape_sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed attempt with retries left was said nowhere (only a run failed for good was logged): a flaky job
    failing most of its first attempts showed nothing in a worker's log."""
    dt = ductape_sandbox
    dt.function("report")(Recorder(fail_times=1))
    job(dt)
    dt.job.schedule(req(retries=2))
    with caplog.at_level(logging.INFO, logger="ductape_jobs.worker"):
        dt.drain()
    (run,) = dt.job.runs()
    retry_at = (dt.now() + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    said = [r for r in caplog.records if r.getMessage().startswith(f"run {run.id} attempt 1 failed")]
    assert [(r.levelno, r.getMessage()) for r in said] == [
        (logging.INFO, f"run {run.id} attempt 1 failed, retried at {retry_at}: RuntimeError: boom 1")
    ]


def test_a_failed_attempt_whose_schedule_was_cancelled_meanwhile_is_not_said_retried(
    ductape_sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A run's schedule is cancelled while the run runs, then its attempt fails with retries left: the store ends
    it ``cancelled`` and makes no retry. Its worker counted it as retried and logged "retried at" a time at which
    nothing would run; it says what happened, and counts it as cancelled in the drain's summary and the metrics."""
    dt = ductape_sandbox
    metrics = Metrics()
    worker = dt.new_worker()
    worker.observers = (metrics,)

    def report(input: dict[str, Any], ctx: RunContext) -> None:
        dt.job.cancel(ctx.job_id)
        raise RuntimeError("boom")

    dt.function("report")(report)
    job(dt)
    dt.job.schedule(req(retries=2))
    with caplog.at_level(logging.INFO, logger="ductape_jobs.worker"):
        summary = asyncio.run(worker.run_until_idle())
    (run,) = dt.job.runs()
    assert run.phase is RunPhase.CANCELLED and run.retry_count == 0
    assert (summary.completed, summary.retried, summary.failed, summary.cancelled, summary.ran) == (0, 0, 0, 1, 1)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"run {run.id}")]
    assert said == [f"run {run.id} attempt 1 failed, not retried: its schedule was cancelled: RuntimeError: boom"]
    counted = {
        status: metrics.registry.get_sample_value("ductape_runs_total", {"status": status, "event_type": "function"})
        for status in ("started", "retried", "cancelled")
    }
    assert counted == {"started": 1.0, "retried": None, "cancelled": 1.0}


def test_a_retry_the_flush_claims_again_at_once_keeps_both_attempts_ends_counted(
    ductape_sandbox: Sandbox,
) -> None:
    """A review: the flush that records a failed attempt claims its retry, due at once, in the same transaction; the
    retry's attempt took the first's place among the runs the metrics watch before the first's end was told, and
    the first attempt's end (retried) was never counted."""
    dt = ductape_sandbox
    metrics = Metrics()
    worker = dt.new_worker(backoff=Backoff(base=timedelta(0), jitter=0.0))
    worker.observers = (metrics,)
    dt.function("report")(Recorder(fail_times=1))
    job(dt)
    dt.job.schedule(req(retries=1))
    summary = asyncio.run(worker.run_until_idle())
    assert (summary.retried, summary.completed) == (1, 1)
    counted = {
        status: metrics.registry.get_sample_value("ductape_runs_total", {"status": status, "event_type": "function"})
        for status in ("started", "retried", "completed")
    }
    assert counted == {"started": 2.0, "retried": 1.0, "completed": 1.0}
    ended = metrics.registry.get_sample_value("ductape_run_duration_seconds_count", {"event_type": "function"})
    assert ended == 2.0


def test_retry_succeeds_on_a_later_attempt(ductape_sandbox: Sandbox) -> None:
    dt = ductape_sandbox
    dt.function("report")(Recorder(fail_times=1))
    job(dt)
    dt.job.schedule(req(retries=3))
    dt.advance(seconds=10)
    (run,) = dt.job.runs()
    assert run.phase is RunPhase.COMPLETED and run.retry_count == 1 and run.output == {"n": 2}


def test_manual_retry_of_a_failed_run(dt: Ductape) -> None:
    rec = dt.function("report")(Recorder(fail_times=1))
    job(dt)
    dt.job.schedule(req(retries=0))
    dt.drain()
    (run,) = dt.job.runs(phase="failed")
    assert dt.job.retry(run.id).phase is RunPhase.QUEUED
    assert dt.drain().completed == 1 and len(rec.calls) == 2
    assert dt.job.run(run.id).phase is RunPhase.COMPLETED
    # it completed after a retry (the stats and the history said first try, retry_count 0)
    stats = dt.job.stats()
    assert (stats.completed_first_try, stats.completed_after_retry, stats.average_retry_count) == (0, 1, 1.0)
    assert [e.retry_count for e in dt.job.history(run.job_id).executions] == [1]
    # a run cancelled before it started is not retried by job.retry: it runs for the first time
    never = dt.job.schedule(req(retries=0))
    dt.job.cancel(never.job_id)
    (cancelled,) = dt.job.runs(job_id=never.job_id)
    assert dt.job.retry(cancelled.id).retry_count == 0
    dt.drain()
    assert (dt.job.run(cancelled.id).retry_count, dt.job.stats().completed_first_try) == (0, 1)


def test_a_function_this_worker_lacks_fails_the_attempt_and_is_retried(ductape_sandbox: Sandbox) -> None:
    """It failed the run for good at once, its retries ignored: a node started without --app (a dashboard) took
    FUNCTION runs from the workers that have them. Now the attempt fails and the run is retried as its retries
    allow, by whichever worker claims it next."""
    dt = ductape_sandbox
    job(dt, fn="not_registered")
    dt.job.schedule(req(retries=2))
    assert dt.drain().retried == 1
    dt.advance(minutes=5)
    (listed,) = dt.job.runs()
    run = dt.job.run(listed.id)  # with its attempts
    assert (run.phase, run.retry_count, len(run.attempts)) == (RunPhase.FAILED, 2, 3)
    assert "FUNCTION 'not_registered' is not registered in this worker" in (run.error or "")
    dt.function("not_registered")(lambda input, ctx: "ran")  # a worker that has it: the next run completes
    dt.job.schedule(req(retries=2))
    dt.drain()
    assert dt.job.runs(phase="completed")[0].output == "ran"


def test_failed_occurrence_does_not_stop_recurring_unless_pause_on_failure(ductape_sandbox: Sandbox) -> None:
    dt = ductape_sandbox
    dt.function("report")(Recorder(fail_times=1))
    job(dt)
    keep = dt.job.schedule(req(repeat={"every": 60_000}))
    dt.advance(minutes=3)
    assert [r.phase for r in reversed(dt.job.runs(job_id=keep.job_id))] == [
        RunPhase.FAILED,
        RunPhase.COMPLETED,
        RunPhase.COMPLETED,
        RunPhase.COMPLETED,
    ]
    dt.function("flaky")(Recorder(fail_times=1))
    job(dt, tag="flaky", fn="flaky")
    stop = dt.job.schedule(req("flaky", repeat={"every": 60_000}, pause_on_failure=True))
    dt.advance(minutes=3)
    assert len(dt.job.runs(job_id=stop.job_id)) == 1
    assert dt.job.get(stop.job_id).status is ScheduleStatus.PAUSED


def test_pause_resume_cancel(ductape_sandbox: Sandbox) -> None:
    dt = ductape_sandbox
    dt.function("report")(Recorder())
    job(dt)
    s = dt.job.schedule(req(repeat={"every": 60_000}))
    dt.advance(minutes=2)
    assert len(dt.job.runs(job_id=s.job_id)) == 3
    assert dt.job.pause(s.job_id).status is ScheduleStatus.PAUSED
    dt.advance(minutes=10)
    assert len(dt.job.runs(job_id=s.job_id)) == 3
    resumed = dt.job.resume(s.job_id)
    assert resumed.status is ScheduleStatus.ACTIVE and resumed.next_run_at is not None
    assert resumed.next_run_at >= dt.now()  # occurrences while paused are skipped
    dt.advance(minutes=2)
    assert len(dt.job.runs(job_id=s.job_id)) == 6  # at the resume minute, +1, +2
    cancelled = dt.job.cancel(s.job_id, reason="no longer needed")
    assert cancelled.status is ScheduleStatus.CANCELLED and "no longer needed" in (cancelled.reason or "")
    dt.advance(minutes=10)
    assert len(dt.job.runs(job_id=s.job_id)) == 6


def test_cancel_cancels_pending_runs(dt: Ductape, clock: FakeClock) -> None:
    rec = dt.function("report")(Recorder(fail_times=1))
    job(dt)
    s = dt.job.schedule(req(retries=3))
    dt.drain()  # fails once: a retry is scheduled
    dt.job.cancel(s.job_id, reason="stop")
    clock.advance(minutes=5)
    dt.drain()
    (run,) = dt.job.runs()
    assert run.phase is RunPhase.CANCELLED and len(rec.calls) == 1


def test_a_cancel_of_a_finished_schedule_is_for_good(dt: Ductape) -> None:
    """A review: a cancel that left a completed schedule ``completed`` (to keep its record of having finished) let a
    trigger run it again and a new repeat make it active. Cancelled from any state, it runs nothing more; its runs'
    history stays."""
    rec = dt.function("report")(Recorder())
    job(dt)
    done = dt.job.schedule(req())
    dt.drain()
    cancelled = dt.job.cancel(done.job_id, reason="for good")
    assert (cancelled.status, cancelled.reason) == (ScheduleStatus.CANCELLED, "cancelled: for good")
    with pytest.raises(ConflictError):
        dt.job.trigger(done.job_id)
    with pytest.raises(ConflictError):
        dt.job.reschedule(done.job_id, {"every": 60_000})
    dt.drain()
    assert [r.phase for r in dt.job.runs(job_id=done.job_id)] == [RunPhase.COMPLETED] and len(rec.calls) == 1


@pytest.mark.parametrize(
    ("misfire", "expected_runs"),
    [("run_once", 2), ("skip", 1), ("run_all", 11)],
)
def test_misfire_policy_after_engine_downtime(dt: Ductape, clock: FakeClock, misfire: str, expected_runs: int) -> None:
    dt.function("report")(Recorder())
    job(dt)
    s = dt.job.schedule(req(repeat={"every": 60_000}, misfire=misfire))
    dt.drain()  # the first occurrence runs; then the engine is down for 10 minutes
    clock.advance(minutes=10, seconds=30)
    dt.drain()
    runs = dt.job.runs(job_id=s.job_id)
    assert len(runs) == expected_runs
    if misfire == "run_once":
        assert runs[0].scheduled_at == s.scheduled_at + timedelta(minutes=10)  # coalesced into the latest
    schedule = dt.job.get(s.job_id)
    assert schedule.next_run_at == s.scheduled_at + timedelta(minutes=11)  # and it carries on
    clock.advance(seconds=30)
    dt.drain()
    assert len(dt.job.runs(job_id=s.job_id)) == expected_runs + 1


def _hold_running(dt: Ductape, clock: FakeClock) -> list[str]:
    """Claim every due run as a worker that never finishes (a long run in flight)."""
    runs = dt.store.acquire_runs("slow-worker", 100, timedelta(hours=1), clock.now())
    return [r.id for r in runs]


def test_overlap_skip_does_not_start_while_previous_runs(dt: Ductape, clock: FakeClock) -> None:
    dt.function("report")(Recorder())
    job(dt)
    s = dt.job.schedule(req(repeat={"every": 60_000}, overlap="skip"))
    held = _hold_running(dt, clock)
    assert len(held) == 1
    clock.advance(minutes=1)
    dt.drain()
    clock.advance(minutes=1)
    dt.drain()
    assert len(dt.job.runs(job_id=s.job_id)) == 1
    assert dt.job.get(s.job_id).skipped_count == 2


@pytest.mark.parametrize(("overlap", "limit"), [("skip", 2), ("buffer_one", 3)])
def test_an_occurrence_skipped_for_overlap_does_not_use_up_the_limit(
    dt: Ductape, clock: FakeClock, overlap: str, limit: int
) -> None:
    """``limit`` counts runs: the occurrence that would have made the last run allowed is skipped (the first run
    still going; buffer_one: a held run already waits behind it), and the schedule goes on to the next one, which
    makes it, rather than ending a run short."""
    dt.function("report")(Recorder())
    job(dt)
    s = dt.job.schedule(req(repeat={"every": 60_000, "limit": limit}, overlap=overlap))
    (held,) = _hold_running(dt, clock)
    for _ in range(limit - 1):  # skip: the second occurrence is skipped; buffer_one: held, then the third skipped
        clock.advance(minutes=1)
        dt.drain()
    schedule = dt.job.get(s.job_id)
    assert (schedule.skipped_count, schedule.run_count, schedule.status.value) == (1, limit - 1, "active")
    from ductape_jobs.store import Outcome

    dt.store.finish_runs([Outcome(held, 1, "slow-worker", True, clock.now(), 10)], clock.now())
    dt.drain()  # buffer_one: the held run is released and runs
    for _ in range(3):
        clock.advance(minutes=1)
        dt.drain()
    runs = dt.job.runs(job_id=s.job_id)
    schedule = dt.job.get(s.job_id)
    assert (len(runs), schedule.run_count, schedule.status.value) == (limit, limit, "completed")
    assert [r.phase for r in runs] == [RunPhase.COMPLETED] * limit


def test_overlap_buffer_one_waits_behind_the_running_one(dt: Ductape, clock: FakeClock) -> None:
    dt.function("report")(Recorder())
    job(dt)
    s = dt.job.schedule(req(repeat={"every": 60_000}, overlap="buffer_one"))
    (held,) = _hold_running(dt, clock)
    for _ in range(3):
        clock.advance(minutes=1)
        dt.drain()
    runs = dt.job.runs(job_id=s.job_id)
    assert len(runs) == 2  # the running one and one buffered behind it
    waiting = next(r for r in runs if r.id != held)
    assert waiting.phase is RunPhase.SCHEDULED and waiting.available_at is None
    from ductape_jobs.store import Outcome

    dt.store.finish_runs([Outcome(held, 1, "slow-worker", True, clock.now(), 10)], clock.now())
    assert dt.drain().completed == 1
    assert dt.job.run(waiting.id).phase is RunPhase.COMPLETED


def test_dead_worker_lease_expires_and_the_run_is_rescued(dt: Ductape, clock: FakeClock) -> None:
    rec = dt.function("report")(Recorder())
    job(dt)
    dt.job.schedule(req(retries=0))
    (run_id,) = [r.id for r in dt.store.acquire_runs("dead-worker", 10, timedelta(seconds=30), clock.now())]
    assert dt.drain().ran == 0  # still leased
    clock.advance(seconds=31)
    assert dt.drain().completed == 1 and len(rec.calls) == 1
    attempts = dt.job.run(run_id).attempts
    assert next((a.worker_id, a.outcome) for a in attempts) == ("dead-worker", "lost")
    assert attempts[1].outcome == "completed"
    assert dt.job.run(run_id).retry_count == 0  # a rescue is not a retry


def test_timeout_fails_the_attempt_and_retries(dt: Ductape) -> None:
    calls = []

    @dt.function("slow")
    async def slow(input: dict[str, Any], ctx: RunContext) -> None:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.sleep(5)

    job(dt, tag="slow", fn="slow")
    dt.job.schedule(req("slow", timeout=50, retries=1))
    assert dt.drain().retried == 1
    (run,) = dt.job.runs()
    assert run.error == "RunTimeoutError: run exceeded its timeout of 50 ms"  # not "0:00:00.050000"
    assert dt.job.run(run.id).attempts[0].outcome == "timeout"


def test_trigger_runs_a_schedule_now(dt: Ductape, clock: FakeClock) -> None:
    dt.function("report")(Recorder())
    job(dt)
    s = dt.job.schedule(req(repeat={"cron": "0 9 * * *"}))
    clock.advance(seconds=1)
    run = dt.job.trigger(s.job_id)
    assert run.triggered_by is TriggeredBy.MANUAL
    assert dt.drain().completed == 1


def test_reschedule_moves_a_schedule_to_a_new_cron(ductape_sandbox: Sandbox) -> None:
    dt = ductape_sandbox
    rec = dt.function("report")(Recorder())
    job(dt)
    s = dt.job.schedule(req(repeat={"cron": "0 9 * * *", "tz": "UTC"}))
    changed = dt.job.reschedule(s.job_id, {"cron": "0 10 * * *", "tz": "UTC"})
    assert changed.next_run_at == datetime(2026, 1, 1, 10, tzinfo=UTC)
    dt.advance(days=2)
    assert [ctx.scheduled_at.hour for _, ctx in rec.calls] == [10, 10]


def test_reschedule_refuses_an_end_date_as_schedule_does_and_writes_nothing(ductape_sandbox: Sandbox) -> None:
    """An end date before now, or one that leaves no occurrence, is refused naming ``repeat.endDate`` (it marked the
    schedule completed); a limit its runs so far reach completes it, since ``limit`` counts every run it made."""
    dt = ductape_sandbox
    dt.function("report")(Recorder())
    job(dt)
    s = dt.job.schedule(req(repeat={"every": 3_600_000}))
    dt.advance(hours=2, minutes=10)  # runs at 00:00, 01:00 and 02:00
    before = dt.job.get(s.job_id)
    for repeat, rule in [
        ({"every": 3_600_000, "endDate": "2026-01-01T01:00:00Z"}, "is before the start"),
        ({"cron": "0 9 * * *", "endDate": "2026-01-01T05:00:00Z"}, "no occurrence"),
    ]:
        with pytest.raises(ValidationError) as refused:
            dt.job.reschedule(s.job_id, repeat)
        assert refused.value.field == "repeat.endDate" and rule in str(refused.value)
        assert dt.job.get(s.job_id) == before
    done = dt.job.reschedule(s.job_id, {"every": 1_800_000, "limit": 3})
    assert (done.status.value, done.next_run_at) == ("completed", None)
    more = dt.job.reschedule(s.job_id, {"every": 1_800_000, "limit": 4, "endDate": "2026-01-01T02:40:00Z"})
    assert (more.status.value, more.next_run_at) == ("active", datetime(2026, 1, 1, 2, 10, tzinfo=UTC))


def test_async_client_has_the_same_api(tmp_path: Any) -> None:
    async def main() -> list[RunPhase]:
        async with AsyncDuctape(f"sqlite:///{tmp_path / 'a.db'}", clock=FakeClock()) as dt:

            @dt.function("hello")
            async def hello(input: dict[str, Any], ctx: RunContext) -> str:
                return f"hi {input['name']}"

            await dt.job.create({"name": "Hello", "tag": "hello", "event_type": "function", "event_tag": "hello"})
            assert (await dt.job.fetch("hello")).event_tag == "hello"
            await dt.job.schedule({"env": "dev", "product_tag": "p", "event": "hello", "input": {"name": "ada"}})
            summary = await dt.drain()
            assert summary.completed == 1
            runs = await dt.job.runs()
            assert runs[0].output == "hi ada"
            return [r.phase for r in runs]

    assert asyncio.run(main()) == [RunPhase.COMPLETED]


def test_slow_run_that_heartbeats_is_not_rescued(tmp_path: Any) -> None:
    """Real time: a run lasting over 3 leases, next to a second worker that would rescue an expired lease. (The
    lease leaves room for a loaded machine: a heartbeat every third of it.)"""
    store = f"sqlite:///{tmp_path / 'hb.db'}"
    dt = Ductape(store, lease=timedelta(milliseconds=600), poll=timedelta(milliseconds=20))

    @dt.function("slow")
    async def slow(input: dict[str, Any], ctx: RunContext) -> int:
        await asyncio.sleep(2.0)
        return ctx.attempt

    job(dt, tag="slow", fn="slow")
    s = dt.job.schedule(req("slow"))

    async def main() -> None:
        stop = asyncio.Event()
        workers = [asyncio.create_task(dt.run_worker(stop)) for _ in range(2)]
        for _ in range(400):
            await asyncio.sleep(0.02)
            if dt.job.runs(job_id=s.job_id)[0].phase is RunPhase.COMPLETED:
                break
        stop.set()
        await asyncio.gather(*workers)

    asyncio.run(main())
    (run,) = dt.job.runs(job_id=s.job_id)
    assert run.phase is RunPhase.COMPLETED and run.output == 1
    assert [a.outcome for a in dt.job.run(run.id).attempts] == ["completed"]
    dt.close()


def test_two_schedulers_race_the_same_cron_schedule(tmp_path: Any) -> None:
    """Two engines on one store, each with its own clock, tick the same schedule: one run per tick."""
    store = f"sqlite:///{tmp_path / 'race.db'}"
    start = datetime(2026, 3, 2, tzinfo=UTC)
    a, b = Ductape(store, clock=FakeClock(start)), Ductape(store, clock=FakeClock(start))
    for d in (a, b):
        d.function("report")(Recorder())
    job(a)
    s = a.job.schedule(req(repeat={"cron": "* * * * * *"}))  # every second

    async def tick_both(n: int) -> None:
        for _ in range(n):
            for d in (a, b):
                assert isinstance(d.clock, FakeClock)
                d.clock.advance(seconds=1)
            await asyncio.gather(a.new_worker().run_until_idle(), b.new_worker().run_until_idle())

    asyncio.run(tick_both(60))
    due = [r.scheduled_at for r in a.job.runs(job_id=s.job_id, limit=1000)]
    assert len(due) == len(set(due)) == 61  # at the start, then one per second
    assert all(r.phase is RunPhase.COMPLETED for r in a.job.runs(job_id=s.job_id, limit=1000))
    a.close()
    b.close()


def test_a_function_registered_with_a_timeout_fails_slow_calls(dt: Ductape) -> None:
    calls: list[int] = []

    @dt.function("sleepy", timeout=0.05)
    async def sleepy(input: dict[str, Any], ctx: RunContext) -> str:
        calls.append(ctx.attempt)
        await asyncio.sleep(5 if ctx.attempt == 1 else 0)
        return "done"

    job(dt, tag="sleepy", fn="sleepy")
    dt.job.schedule(req("sleepy", retries=1))
    assert dt.drain().retried == 1
    (run,) = dt.job.runs()
    assert "exceeded its timeout of 0.05 s" in (run.error or "")
    # the attempt's outcome is "timeout", as a run's own timeout makes it (it was "failed")
    assert [a.outcome for a in dt.job.run(run.id).attempts] == ["timeout"]
    dt.clock.advance(seconds=5)  # type: ignore[attr-defined]
    assert dt.drain().completed == 1 and calls == [1, 2]


def test_a_sync_function_that_outlives_its_timeout_holds_its_slot_until_it_returns(
    dt: Ductape, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync function's attempt fails at its timeout, but its thread runs on (a thread cannot be stopped). Its
    slot was freed at once, so its worker claimed more runs than it had threads for: they stayed running, leased
    and heartbeated, never started, while another worker was idle (or failed at their own timeout, never having
    run). Found by a reliability probe. The thread holds its slot until it returns, and the worker says so."""
    release = threading.Event()
    ran: list[str] = []

    @dt.function("stuck", timeout=0.05)
    def stuck(input: dict[str, Any], ctx: RunContext) -> None:
        release.wait(10)

    @dt.function("quick")
    def quick(input: dict[str, Any], ctx: RunContext) -> None:
        ran.append(ctx.run_id)

    job(dt, tag="stuck", fn="stuck")
    job(dt, tag="quick", fn="quick")
    worker = dt.new_worker(concurrency=1)
    try:
        dt.job.schedule(req("stuck"))
        with caplog.at_level(logging.WARNING, logger="ductape_jobs.worker"):
            assert asyncio.run(worker.run_until_idle()).failed == 1  # timed out; its thread still waits
        assert len(worker.executors.outliving()) == 1
        assert "FUNCTION 'stuck' still runs in its thread after its attempt ended" in caplog.text
        made = dt.job.schedule(req("quick"))
        assert asyncio.run(worker.run_until_idle()).ran == 0  # its one slot is held: nothing claimed
        (waiting,) = dt.job.runs(job_id=made.job_id)
        assert waiting.phase is RunPhase.QUEUED and ran == []  # free for another worker to take
        # a running worker sleeps its poll meanwhile: it asked the store what is due, found the run due now and
        # looped at once, claiming nothing (80,000 reads in 2 s: found by a review)
        reads = spy_calls(dt.store, "next_wakeup")

        async def half_a_second() -> None:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(0.5, stop.set)
            await worker.run(stop)

        asyncio.run(half_a_second())
        assert len(reads) <= 5 and ran == []  # one a pass, a pass a poll (0.2 s)
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while worker.executors.outliving() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.executors.outliving() == set()
    assert asyncio.run(worker.run_until_idle()).completed == 1 and ran == [waiting.id]


class Stuck:
    """A job of concurrency 1 whose sync function passes its timeout (50 ms) on its first run's first attempt and
    runs on until ``release``; the most of its calls running at once (``peak``) and which are running."""

    def __init__(self, dt: Ductape, timeout: str = "function", retries: int = 1) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running: list[str] = []
        self.peak = 0

        @dt.function("slow", timeout=0.05 if timeout == "function" else None)
        def slow(input: dict[str, Any], ctx: RunContext) -> None:
            with self.lock:
                self.running.append(ctx.run_id)
                self.peak = max(self.peak, len(self.running))
            try:
                if input["stuck"] and ctx.attempt == 1:
                    self.release.wait(10)
            finally:
                with self.lock:
                    self.running.remove(ctx.run_id)

        job(dt, tag="slow", fn="slow", concurrency=1)
        extra: dict[str, Any] = {} if timeout == "function" else {"timeout": 50}
        self.stuck = dt.job.schedule(req("slow", input={"stuck": True}, retries=retries, **extra)).job_id
        self.other = dt.job.schedule(req("slow", input={"stuck": False}, **extra)).job_id

    async def past_its_timeout(self) -> None:
        while not self.running:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # four timeouts later


@pytest.mark.parametrize("timeout", ["function", "run"])
def test_a_sync_function_past_its_timeout_under_a_limit_holds_the_limit_until_it_returns(
    dt: Ductape, caplog: pytest.LogCaptureFixture, timeout: str
) -> None:
    """A limits probe: a job of concurrency 1 whose sync function passed its timeout (1 s) and slept on (3 s). Its
    attempt ended at the timeout and left the limit's count while its thread ran, so the next run started beside it
    (three at once), and so did its own retry, beside its first attempt. A run under a limit now ends when its
    thread returns: until then it is running, its limit held; then it fails as timed out and is retried."""
    stuck = Stuck(dt, timeout)
    worker = dt.new_worker(concurrency=5, poll=timedelta(milliseconds=20))

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        try:
            await stuck.past_its_timeout()
            (run,) = dt.job.runs(job_id=stuck.stuck)
            assert run.phase is RunPhase.RUNNING and stuck.running == [run.id]  # past its timeout, its thread runs
            assert dt.job.runs(job_id=stuck.other)[0].phase is not RunPhase.RUNNING  # waits for the limit (or ran)
        finally:
            stuck.release.set()
        while dt.job.runs(job_id=stuck.other)[0].phase is not RunPhase.COMPLETED:
            await asyncio.sleep(0.02)
        stop.set()
        await running

    with caplog.at_level(logging.WARNING, logger="ductape_jobs.worker"):
        asyncio.run(main())
    assert "passed its timeout; its sync function still runs in its thread" in caplog.text
    assert stuck.peak == 1  # never two at once under the limit, the retry of the stuck run among them
    (first,) = dt.job.runs(job_id=stuck.stuck)
    assert first.phase is RunPhase.RETRY_SCHEDULED and "timeout" in (first.error or "")


@pytest.mark.parametrize("end", ["stop", "thread_wait"])
def test_a_run_waiting_for_its_thread_is_ended_timed_out_at_a_stop_or_past_thread_wait(
    dt: Ductape, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    """A review: a stop waited its whole grace for a run that had timed out and waited for its thread, then gave it
    back (``released``, not ``timeout``), and another worker of the process ran it again beside the thread, a retry
    its ``retries`` of 0 did not allow; and a thread that never returned held the limit for good. At a stop it is
    ended timed out at once; past ``THREAD_WAIT`` it is ended so, its limit let go (the thread keeps its slot)."""
    from ductape_jobs.engine import worker as worker_module

    if end == "thread_wait":
        monkeypatch.setattr(worker_module, "THREAD_WAIT", timedelta(milliseconds=300))
    stuck = Stuck(dt, retries=0)
    worker = dt.new_worker(concurrency=5, poll=timedelta(milliseconds=20), shutdown_grace=timedelta(seconds=5))

    async def main() -> float:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        await stuck.past_its_timeout()
        if end == "thread_wait":
            while dt.job.runs(job_id=stuck.other)[0].phase is not RunPhase.COMPLETED:  # the limit let go
                await asyncio.sleep(0.02)
            assert len(stuck.running) == 1  # the stuck run's thread still runs
        began = time.monotonic()
        stop.set()
        await running
        return time.monotonic() - began

    try:
        with caplog.at_level(logging.WARNING, logger="ductape_jobs.worker"):
            took = asyncio.run(main())
        assert len(stuck.running) == 1  # its thread, which no stop ends
    finally:
        stuck.release.set()
    assert took < 2  # not the 5 s grace
    if end == "thread_wait":
        assert "ended as timed out now, its limits no longer held for it" in caplog.text
    (listed,) = dt.job.runs(job_id=stuck.stuck)
    run = dt.job.run(listed.id)
    assert run.phase is RunPhase.FAILED and [a.outcome for a in run.attempts] == ["timeout"]  # not "released"


def test_drain_ends_a_run_at_its_timeout_under_a_limit_too(dt: Ductape) -> None:
    """A review: ``drain()`` (no heartbeat keeps a lease there) waited for a stuck thread as long as it ran, for
    ever if it never returned. There a run under a limit ends at its timeout, as any run does."""
    stuck = Stuck(dt, retries=0)
    began = time.monotonic()
    try:
        assert dt.drain().failed == 1
        assert time.monotonic() - began < 5  # not the thread's 10 s
    finally:
        stuck.release.set()


def test_a_run_another_worker_rescued_is_stopped_at_the_next_heartbeat(
    dt: Ductape, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A limits probe: a worker paused (SIGSTOP) past its runs' leases woke and ran on the code of runs another
    worker had rescued and started again (four running under a concurrency of 2, until the first attempts ended).
    The heartbeat that finds a lease not extended asks the store which it still holds, and stops the others; the
    run it keeps goes on, and the other worker's attempt is left as it is."""
    gate = asyncio.Event()
    stopped: list[str] = []

    @dt.function("long")
    async def long(input: dict[str, Any], ctx: RunContext) -> str:
        try:
            await gate.wait()
        except asyncio.CancelledError:
            stopped.append(ctx.run_id)
            raise
        return "done"

    job(dt, tag="long", fn="long")
    lost, kept = (dt.job.schedule(req("long", input={"i": i})).job_id for i in range(2))
    worker = dt.new_worker(concurrency=2, heartbeat=0.05)

    async def main() -> None:
        stop = asyncio.Event()
        run_task = asyncio.create_task(worker.run(stop))
        while len(worker._inflight) < 2:
            await asyncio.sleep(0.01)
        (run,) = dt.job.runs(job_id=lost)
        later = clock.now() + timedelta(minutes=5)  # past the lease: rescued, and claimed by another worker
        dt.store.extend_leases(worker.id, [r.id for r in dt.job.runs(job_id=kept)], later + timedelta(minutes=5))
        assert [r.run_id for r in dt.store.rescue_expired(later, 5)] == [run.id]
        assert [r.id for r in dt.store.acquire_runs("other", 1, timedelta(minutes=1), later)] == [run.id]
        for _ in range(100):
            if stopped:
                break
            await asyncio.sleep(0.02)
        gate.set()
        while dt.job.runs(job_id=kept)[0].phase is not RunPhase.COMPLETED:
            await asyncio.sleep(0.02)
        stop.set()
        await run_task

    with caplog.at_level(logging.WARNING, logger="ductape_jobs.worker"):
        asyncio.run(main())
    (run,) = dt.job.runs(job_id=lost)
    assert stopped == [run.id] and f"run {run.id} attempt 1 stopped: its lease ran out" in caplog.text
    assert run.phase is RunPhase.RUNNING and run.attempt == 2 and run.lease_owner == "other"  # the other's, untouched
    assert dt.job.runs(job_id=kept)[0].phase is RunPhase.COMPLETED


def test_a_rescued_run_that_ignores_its_cancel_is_stopped_once_not_at_every_heartbeat(
    dt: Ductape, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A coroutine that catches its cancel and goes on (a cleanup in ``finally`` that awaits, or code that swallows
    ``CancelledError``) was cancelled again, and warned of again, at every heartbeat while it ran: a second cancel
    cuts a cleanup short. Its lease is the other worker's: it is stopped once and no longer heartbeated."""
    gate = asyncio.Event()
    cancels: list[str] = []

    @dt.function("stubborn")
    async def stubborn(input: dict[str, Any], ctx: RunContext) -> str:
        while True:
            try:
                await gate.wait()
                return "done"
            except asyncio.CancelledError:
                cancels.append(ctx.run_id)

    job(dt, tag="stubborn", fn="stubborn")
    lost = dt.job.schedule(req("stubborn")).job_id
    worker = dt.new_worker(heartbeat=0.02)
    asked: list[list[str]] = []
    extend = dt.store.extend_leases

    def extend_leases(worker_id: str, ids: list[str], until: datetime) -> int:
        asked.append(list(ids))
        return extend(worker_id, ids, until)

    dt.store.extend_leases = extend_leases  # type: ignore[method-assign]

    async def main() -> None:
        stop = asyncio.Event()
        run_task = asyncio.create_task(worker.run(stop))
        while not worker._inflight:
            await asyncio.sleep(0.01)
        (run,) = dt.job.runs(job_id=lost)
        later = clock.now() + timedelta(minutes=5)  # past the lease: rescued, and claimed by another worker
        assert [r.run_id for r in dt.store.rescue_expired(later, 5)] == [run.id]
        assert [r.id for r in dt.store.acquire_runs("other", 1, timedelta(minutes=1), later)] == [run.id]
        while not cancels:
            await asyncio.sleep(0.01)
        heartbeats = len(asked)
        await asyncio.sleep(0.2)  # ten heartbeats' time, the stubborn attempt running on
        assert len(asked) == heartbeats  # its lease, the other worker's, is no longer asked for
        gate.set()
        stop.set()
        await run_task

    with caplog.at_level(logging.WARNING, logger="ductape_jobs.worker"):
        asyncio.run(main())
    (run,) = dt.job.runs(job_id=lost)
    assert cancels == [run.id]  # cancelled once
    assert caplog.text.count(f"run {run.id} attempt 1 stopped: its lease ran out") == 1
    assert run.phase is RunPhase.RUNNING and run.attempt == 2 and run.lease_owner == "other"  # the other's


def test_a_stop_that_waits_past_the_due_time_of_a_run_claimed_ahead_gives_it_back_unattempted(
    dt: Ductape, clock: FakeClock
) -> None:
    """A soak probe: SIGTERMed, a worker gave back at once the run it had claimed ahead of its due time, but only
    told the store after waiting for its other runs, past that due time: the store counted an attempt (``released``)
    for a run never begun, and its one real run said attempt 2. The worker names the runs it never began."""
    gate = asyncio.Event()

    @dt.function("long")
    async def long(input: dict[str, Any], ctx: RunContext) -> None:
        await gate.wait()

    job(dt, tag="long", fn="long")
    dt.job.schedule(req("long"))
    ahead = dt.job.schedule(req("long", start_at=int((clock.now() + timedelta(seconds=0.5)).timestamp() * 1000)))
    worker = dt.new_worker(ahead=1)

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        while len(worker._inflight) < 2:
            await asyncio.sleep(0.01)
        stop.set()  # the one claimed ahead goes back at once; the other is waited for
        await asyncio.sleep(0.1)
        clock.advance(minutes=1)  # the wait passes the due time of the one claimed ahead
        gate.set()
        await running

    asyncio.run(main())
    (back,) = dt.job.runs(job_id=ahead.job_id)
    assert (back.phase, back.attempt, back.started_at, back.attempts) == (RunPhase.QUEUED, 0, None, [])
    assert asyncio.run(dt.new_worker().run_until_idle()).completed == 1
    assert dt.job.runs(job_id=ahead.job_id)[0].attempt == 1  # its first run is attempt 1


def _claimed_ahead_unheartbeaten(dt: Ductape, clock: FakeClock) -> tuple[DispatchResult, Worker]:
    """A run due in 0.9 s, and a worker that claims 1 s ahead with a lease of 0.5 s and no heartbeat (as a worker
    paused): its lease runs out as the clock is moved on, and the worker's own pass rescues it."""
    made = dt.job.schedule(req(start_at=_ms(clock.now() + timedelta(seconds=0.9))))
    worker = dt.new_worker(
        ahead=1, lease=timedelta(seconds=0.5), poll=timedelta(milliseconds=20), shutdown_grace=timedelta(seconds=10)
    )
    worker._heartbeat_loop = lambda: asyncio.sleep(3600)  # type: ignore[method-assign]
    return made, worker


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@pytest.mark.parametrize("due_in_grace", [False, True])
def test_a_run_claimed_ahead_again_still_waits_for_its_due_time_at_a_stop(
    dt: Ductape, clock: FakeClock, due_in_grace: bool
) -> None:
    """A review: claimed ahead, its lease run out (no heartbeat: a worker paused), rescued by this worker's own pass
    and claimed ahead again, a run's earlier attempt, stopped, took the run out of those waiting for their due time
    (they are kept by run id): at a stop the new attempt was waited for the whole grace, or started after the
    stop. It is given back at once, unstarted."""
    calls: list[int] = []
    stop = asyncio.Event()

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        calls.append(ctx.attempt)

    job(dt)
    made, worker = _claimed_ahead_unheartbeaten(dt, clock)

    async def main() -> float:
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        while not worker._inflight:
            await asyncio.sleep(0.01)
        (run_id,) = worker._inflight
        clock.advance(seconds=0.6)  # its lease (0.5 s) ran out: this worker's pass rescues it
        worker.notify()
        await asyncio.sleep(0.3)
        dt.job.schedule(req(start_at=_ms(clock.now() + timedelta(seconds=0.9))))  # a tick claims ahead again
        worker.notify()
        while worker._inflight[run_id][0].attempt != 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert run_id in worker._waiting
        began = time.monotonic()
        stop.set()
        if due_in_grace:
            await asyncio.sleep(0.05)
            clock.advance(seconds=0.5)
        await running
        return time.monotonic() - began

    assert asyncio.run(main()) < 5  # not the 10 s grace
    assert calls == []  # not started after the stop
    (run,) = dt.job.runs(job_id=made.job_id)
    assert run.phase is RunPhase.QUEUED


def test_a_run_whose_claim_answered_as_its_lease_ran_out_is_asked_of_the_store_first(
    dt: Ductape, clock: FakeClock
) -> None:
    """A review: ``_lapsed`` read the worker's leases before the claim's were added, so it found none for a run
    claimed now, and a run whose claim answered 29 s into its 30 s lease (the worker paused) started without asking
    the store whether another worker had rescued it meanwhile."""
    rec = dt.function("report")(Recorder())
    job(dt)
    dt.job.schedule(req())
    worker = dt.new_worker()
    claim, leased = dt.store.acquire_runs, dt.store.leased_runs
    asked: list[str] = []

    def late(*args: Any, **kwargs: Any) -> Any:
        got = claim(*args, **kwargs)
        clock.advance(seconds=29)  # the answer came back late: its 30 s lease all but out
        return got

    def leased_runs(worker_id: str) -> Any:
        asked.append(worker_id)
        return leased(worker_id)

    dt.store.acquire_runs = late  # type: ignore[method-assign]
    dt.store.leased_runs = leased_runs  # type: ignore[method-assign]

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        while not rec.calls:
            await asyncio.sleep(0.01)
        stop.set()
        await running

    asyncio.run(main())
    assert asked == [worker.id] and len(rec.calls) == 1  # asked, held: run once


def spy_calls(store: Any, name: str) -> list[tuple[Any, ...]]:
    """The calls made to ``store.<name>`` from now on (the method is wrapped in place)."""
    calls: list[tuple[Any, ...]] = []
    real = getattr(store, name)

    def spy(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    setattr(store, name, spy)
    return calls


def test_schedule_reads_a_job_again_when_another_client_changed_it(tmp_path: Path) -> None:
    """schedule() keeps job definitions in memory (no read per call); a change made by another client is
    caught by the write, and the schedule is planned again from the stored definition."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    with Ductape(url, clock=FakeClock()) as a, Ductape(url, clock=FakeClock()) as b:
        a.job.create({"name": "R", "tag": "r", "event_type": "FUNCTION", "event_tag": "r"})
        request = {"env": "prd", "product_tag": "p", "event": "r"}
        assert a.job.get(a.job.schedule(request).job_id).every is None  # cached: runs once
        b.job.update("r", {"intervals": 60_000, "executions": 3})  # same clock: even updated_at is unchanged
        again = a.job.get(a.job.schedule(request).job_id)
        assert again.every == timedelta(minutes=1) and again.limit == 3 and again.follows_job
        b.job.delete("r")
        with pytest.raises(ValidationError, match="no job with tag 'r'"):
            a.job.schedule(request)


def test_a_pass_after_a_sleep_starts_from_what_the_sleep_read_unless_woken_by_a_change(dt: Ductape) -> None:
    """The sleep reads next_wakeup before it waits; the pass after it starts from that (one store read less
    per pass) unless ``notify`` said something changed elsewhere meanwhile, when it reads again."""
    reads: list[int] = []
    next_wakeup = dt.store.next_wakeup

    def counted() -> Any:
        reads.append(1)
        return next_wakeup()

    dt.store.next_wakeup = counted  # type: ignore[method-assign]
    worker = dt.new_worker(poll=timedelta(milliseconds=5))

    async def main() -> list[int]:
        worker._start(None)
        counts = []
        await worker._sleep(False)  # reads, then waits out the poll
        counts.append(len(reads))
        await worker._step()
        counts.append(len(reads))  # the pass read nothing more
        await worker._sleep(False)
        worker.notify()  # a change elsewhere (the listener, or a schedule() in this process)
        await asyncio.sleep(0)
        await worker._step()
        counts.append(len(reads))  # read again
        await worker._step()
        counts.append(len(reads))  # no sleep in between: reads
        return counts

    assert asyncio.run(main()) == [1, 1, 3, 4]


def spy_threads(dt: Ductape, names: tuple[str, ...]) -> list[threading.Thread]:
    """The thread each call of the store's ``names`` was made in, in order."""
    threads: list[threading.Thread] = []
    for name in names:
        real = getattr(dt.store, name)

        def spy(*args: Any, _real: Any = real) -> Any:
            threads.append(threading.current_thread())
            return _real(*args)

        setattr(dt.store, name, spy)
    return threads


def test_a_workers_sqlite_calls_are_made_on_its_loop_when_they_need_not_wait(dt: Ductape) -> None:
    """On its event loop, a batch's transaction costs less CPU than handed to a thread whose SQLite steps give the
    GIL up to the loop and take it back (``Store.promptly``)."""
    dt.function("report")(Recorder())
    job(dt)
    for i in range(3):
        dt.job.schedule(req(input={"i": i}))
    threads = spy_threads(dt, ("next_wakeup", "acquire_runs", "finish_runs", "finish_and_acquire"))
    assert dt.drain().completed == 3
    assert threads and set(threads) == {threading.main_thread()}  # drain() runs its loop here


def test_a_call_that_would_wait_is_made_in_one_store_thread_of_the_workers_own_that_ends_with_it(
    dt: Ductape, tmp_path: Path
) -> None:
    """Another process holds the write lock: the worker's writes go to its store thread, which waits for it, while
    its loop goes on. One thread (a pass's calls follow one another anyway): not asyncio's default pool, whose up
    to six threads can each cost the process a malloc arena."""
    dt.function("report")(Recorder())
    job(dt)
    for i in range(3):
        dt.job.schedule(req(input={"i": i}))
    other = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = threading.Event()
    threads: list[threading.Thread] = []
    for name in ("acquire_runs", "finish_runs", "finish_and_acquire"):
        real = getattr(dt.store, name)

        def spy(*args: Any, _real: Any = real) -> Any:
            threads.append(threading.current_thread())
            if threading.current_thread() is not threading.main_thread() and not released.is_set():
                released.set()  # the call that met the lock is in the store thread: the other process ends soon
                threading.Timer(0.1, lambda: other.execute("ROLLBACK")).start()
            return _real(*args)

        setattr(dt.store, name, spy)
    try:
        assert dt.drain().completed == 3
    finally:
        other.close()
    assert released.is_set()
    stores = {t for t in threads if t is not threading.main_thread()}
    (thread,) = stores  # the claim that met the lock, at least
    assert thread.name.startswith("ductape-store ")
    thread.join(timeout=5)
    assert not thread.is_alive()  # the drain's end shut it down
    db = sqlite3.connect(tmp_path / "jobs.db")
    try:  # the refused calls were made again, nothing of them twice: one attempt a run, ended once
        assert db.execute("SELECT count(*), min(attempt), max(attempt) FROM attempts").fetchone() == (3, 1, 1)
        assert db.execute("SELECT outcome, count(*) FROM attempts GROUP BY outcome").fetchall() == [("completed", 3)]
    finally:
        db.close()


def test_the_async_clients_schedule_runs_on_its_loop_on_sqlite_unless_it_would_wait(tmp_path: Path) -> None:
    """A schedule() (or a schedule_many of at most PROMPT_BATCH) on the caller's loop costs less than the hop to a
    thread and back; while another process holds the write lock it goes to a thread, which waits for it, so the
    loop goes on. A larger schedule_many always goes to a thread."""
    path = tmp_path / "a.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def main() -> tuple[list[threading.Thread], int]:
        async with AsyncDuctape(f"sqlite:///{path}") as dt:
            await dt.job.create({"name": "n", "tag": "n", "event_type": "FUNCTION", "event_tag": "n"})
            threads: list[threading.Thread] = []
            real = dt.store.add_schedule_parts

            def spy(*args: Any) -> Any:
                threads.append(threading.current_thread())
                return real(*args)

            dt.store.add_schedule_parts = spy  # type: ignore[method-assign]
            one = {"env": "prd", "product_tag": "p", "event": "n"}
            await dt.job.schedule(one)
            await dt.job.schedule_many([one] * aio.PROMPT_BATCH)
            await dt.job.schedule_many([one] * (aio.PROMPT_BATCH + 1))
            other.execute("BEGIN IMMEDIATE")
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            asyncio.get_running_loop().call_later(0.3, lambda: other.execute("ROLLBACK"))
            await dt.job.schedule(one)  # waits for the lock in a thread
            ticker.cancel()
            waited, seen = ticks, 0

            async def count() -> None:
                nonlocal seen
                while True:
                    seen += 1
                    await asyncio.sleep(0)

            counter = asyncio.create_task(count())
            await asyncio.sleep(0)
            for _ in range(5):  # made on the loop, each lets the other tasks run before it returns
                await dt.job.schedule(one)
            counter.cancel()
            assert seen >= 5
            return threads, waited

    try:
        threads, ticks = asyncio.run(main())
    finally:
        other.close()
    main_thread = threading.main_thread()
    # the last call was tried on the loop first, refused before it wrote (WouldWait), then made in a thread
    assert [t is main_thread for t in threads] == [True, True, False, True, False, True, True, True, True, True]
    assert ticks >= 10  # the loop went on while the call waited
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT count(*) FROM schedules").fetchone() == (1 + 2 * aio.PROMPT_BATCH + 1 + 1 + 5,)
    finally:
        db.close()


FIRST_SESSION = {
    "schedule": """
        await dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "n", "session": token})
        await dt.job.schedule_many([{"env": "prd", "product_tag": "shop", "event": "n", "session": token}])
        made = len(await dt.job.list())""",
    "feature": """
        made = len([await dt.feature.run("greet", env="prd", product_tag="shop", session=token) for _ in range(2)])""",
    "no request": """
        try:
            await dt.job.schedule(None)
        except ValidationError as exc:
            made = str(exc)""",
}


@pytest.mark.parametrize("call", list(FIRST_SESSION))
def test_the_async_clients_first_session_is_verified_in_a_thread(tmp_path: Path, call: str) -> None:
    """Verifying a session loads PyJWT the first time in a process (tens of milliseconds): AsyncDuctape does it in
    a thread, not on its loop, for a schedule() or schedule_many and for a feature run; a request that is not one
    is refused as ever. A fresh interpreter each (this one has PyJWT loaded), given a token made here."""
    shop = {
        "tag": "shop",
        "envs": {"prd": {"session_secret": "a-session-secret-of-32-characters!"}},
        "sessions": {"user": {"name": "User", "schema": {"id": "integer"}, "selector": "$Session{id}"}},
        "features": {
            "greet": {
                "sequence": [{"sequence_tag": "a", "parents": [], "events": [{"type": "FUNCTION", "event": "n"}]}]
            }
        },
    }
    with Ductape(f"sqlite:///{tmp_path / 'token.db'}") as maker:
        maker.products.add(shop)
        token = str(maker.session.start("user", {"id": 7}, env="prd", product_tag="shop"))
    script = f"""
import asyncio, sys, threading
on_loop = []
sys.addaudithook(lambda event, args: on_loop.append(threading.current_thread() is threading.main_thread())
                 if event == "import" and args[0] == "jwt" else None)
from ductape_jobs import AsyncDuctape, ValidationError
token = {token!r}

async def main():
    async with AsyncDuctape({f"sqlite:///{tmp_path / 'a.db'}"!r}) as dt:
        dt.products.add({shop!r})
        dt.function("n")(lambda input, ctx: None)
        await dt.job.create({{"name": "n", "tag": "n", "event_type": "FUNCTION", "event_tag": "n"}})
{FIRST_SESSION[call]}
        return made

print(repr(asyncio.run(main())), on_loop)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    made, on_loop = done.stdout.rsplit(" ", 1)
    if call == "no request":  # refused before anything was verified: PyJWT not loaded at all
        assert "expected an object" in made and on_loop == "[]\n"
    else:  # both made; PyJWT loaded once, not on the loop
        assert (made, on_loop) == ("2", "[False]\n")


def test_a_worker_id_with_a_nul_character_is_refused(dt: Ductape) -> None:
    """SQLite's JSON operators end a string at NUL: the id its leases are checked against must hold none."""
    with pytest.raises(ValidationError, match=r"worker_id: must not contain a NUL"):
        Worker(dt.store, dt.scheduler, dt.executors, dt.clock, worker_id="host:1:w\x00x")


def test_a_delayed_run_is_created_and_claimed_by_one_store_call_when_it_falls_due(
    dt: Ductape, clock: FakeClock
) -> None:
    """The pass that ticks claims in the tick's transaction (``advance_due_and_acquire``): no claim of its own, so no
    other worker's turn between the run's creation and its start. A tick with fewer due schedules than a batch
    ends after one transaction."""
    rec = dt.function("report")(Recorder())
    job(dt)
    calls: list[str] = []
    for name in ("advance_due", "advance_due_and_acquire", "acquire_runs"):
        real = getattr(dt.store, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        setattr(dt.store, name, spy)
    dt.job.schedule(req(start_at=int((clock.now() + timedelta(minutes=5)).timestamp() * 1000)))
    clock.advance(minutes=5)
    assert dt.drain().completed == 1 and len(rec.calls) == 1
    assert calls == ["advance_due_and_acquire"]
    (run,) = dt.job.runs()
    assert run.started_at == clock.now() and run.phase is RunPhase.COMPLETED


def test_outcomes_are_recorded_with_the_claim_that_refills_their_slots(dt: Ductape) -> None:
    """A pass records the outcomes so far and claims runs for the capacity they free in one transaction
    (``finish_and_acquire``), never a transaction of their own; every run is claimed once, by a pass's claim or a
    flush's. (Which of the two takes which run depends on when the function's thread ends.)"""
    rec = dt.function("report")(Recorder())
    job(dt)
    dt.job.schedule_many([req(input={"i": i}) for i in range(5)])
    calls: list[tuple[str, int]] = []
    for name in ("acquire_runs", "finish_runs", "finish_and_acquire"):
        real = getattr(dt.store, name)

        def spy(*args: Any, _real: Any = real, _name: str = name) -> Any:
            result = _real(*args)
            claimed = result if isinstance(result, list) else getattr(result, "claimed", [])
            calls.append((_name, len(claimed)))
            return result

        setattr(dt.store, name, spy)
    summary = asyncio.run(dt.new_worker(concurrency=2).run_until_idle())
    assert summary.completed == 5 and sorted(given["i"] for given, _ in rec.calls) == [0, 1, 2, 3, 4]
    names = [name for name, _ in calls]
    assert "finish_runs" not in names and names.count("finish_and_acquire") >= 2
    assert sum(got for _, got in calls) == 5
    assert calls[0] == ("acquire_runs", 2) and calls[-1] == ("finish_and_acquire", 0)


def _answer_lost(dt: Ductape, name: str, call: int = 1) -> list[list[str]]:
    """``dt.store.<name>`` commits its ``call``-th call and then raises as a connection lost before the answer
    would (PostgreSQL: ``StoreError``, not retried: the COMMIT's outcome is unknown). Returns the runs each call
    took."""
    real, took = getattr(dt.store, name), []

    def lost_once(*args: Any) -> Any:
        runs = real(*args)
        took.append([run.id for run in (runs if isinstance(runs, list) else runs.claimed)])
        if len(took) == call:
            raise StoreError("PostgreSQL store: consuming input failed: server closed the connection unexpectedly")
        return runs

    setattr(dt.store, name, lost_once)
    return took


def test_a_claim_whose_answer_was_lost_starts_the_runs_it_took_at_the_next_pass(dt: Ductape) -> None:
    """Without an answer the worker cannot know that its claim landed: its next pass asks which runs it holds the
    lease of (``leased_runs``) and starts those it did not know, instead of leaving them to their lease (30 s)."""
    rec = dt.function("report")(Recorder())
    job(dt)
    dt.job.schedule_many([req(input={"i": i}) for i in range(3)])
    took = _answer_lost(dt, "acquire_runs")
    worker = dt.new_worker()
    with pytest.raises(StoreError, match="closed the connection"):
        asyncio.run(worker.run_until_idle())
    assert len(took[0]) == 3 and rec.calls == []  # claimed, and unknown to the worker

    summary = asyncio.run(worker.run_until_idle())  # its next pass, as ``run`` makes after a failed one
    assert summary.completed == 3 and sorted(given["i"] for given, _ in rec.calls) == [0, 1, 2]
    assert {(run.phase, run.attempt) for run in dt.job.runs()} == {(RunPhase.COMPLETED, 1)}  # none rescued


def test_runs_cut_off_by_a_failed_drain_are_not_taken_for_a_lost_claims(dt: Ductape) -> None:
    """A drain that fails (on the lost claim) cancels the runs it had started; the same worker's next drain starts
    the lost claim's runs but not those again (they were started here: they wait for their lease, as before)."""
    starts: list[int] = []

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        starts.append(input["i"])
        await asyncio.sleep(0.05)

    job(dt)
    dt.job.schedule_many([req(input={"i": i}) for i in range(6)])
    took = _answer_lost(dt, "acquire_runs", call=2)  # the pass's own claim after the flush's refill
    worker = dt.new_worker(concurrency=4, batch=2)
    with pytest.raises(StoreError):
        asyncio.run(worker.run_until_idle())
    assert sorted(starts) == [0, 1, 2, 3]  # 2 and 3 (the refill's) were running when the drain failed: cancelled
    asyncio.run(worker.run_until_idle())
    assert sorted(starts) == [0, 1, 2, 3, 4, 5]  # the lost claim's 4 and 5, and nothing twice
    phases = {run.id: run.phase for run in dt.job.runs()}
    assert {phases[i] for i in took[1]} == {RunPhase.COMPLETED}
    assert sorted(phases.values()).count(RunPhase.RUNNING) == 2  # the cancelled two


def test_a_cancelled_run_rescued_and_taken_again_by_a_lost_claim_starts_at_its_new_attempt(
    dt: Ductape, clock: FakeClock
) -> None:
    """What this worker started and never recorded is known by attempt: the runs it cancelled, rescued after their
    lease and claimed again (attempt 2) by a claim whose answer was lost, are started, not taken for the old ones."""
    starts: list[tuple[int, int]] = []

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        starts.append((input["i"], ctx.attempt))
        await asyncio.sleep(0.05)

    job(dt)
    dt.job.schedule_many([req(input={"i": i}) for i in range(2)])
    worker = dt.new_worker()

    async def cut_off() -> None:  # a drain ended while both runs ran: their tasks cancelled, their leases kept
        worker._start(None)
        try:
            await worker._step()
        finally:
            worker._end()

    asyncio.run(cut_off())
    assert sorted(starts) == [(0, 1), (1, 1)]
    clock.advance(seconds=31)  # past the lease: the next pass rescues them, and its claim takes them again
    _answer_lost(dt, "acquire_runs")
    with pytest.raises(StoreError):
        asyncio.run(worker.run_until_idle())
    assert asyncio.run(worker.run_until_idle()).completed == 2
    assert sorted(starts) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert {(run.phase, run.attempt) for run in dt.job.runs()} == {(RunPhase.COMPLETED, 2)}


async def _claimed_again(worker: Worker, clock: FakeClock, *, then: float) -> None:
    """``worker`` runs; 0.1 s in (its run's attempt 1 started), the clock passes that run's lease (no heartbeat on
    this clock): the worker's next pass rescues it and claims it again. It stops ``then`` seconds later."""
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop, handle_signals=False))
    await asyncio.sleep(0.1)
    clock.advance(seconds=31)
    worker.notify()
    await asyncio.sleep(then)
    stop.set()
    await running


def test_a_run_this_worker_rescued_and_claimed_again_runs_once_at_its_new_attempt(
    dt: Ductape, clock: FakeClock
) -> None:
    """Its first attempt still running here when its lease ran out, the worker's own pass rescues it and claims it
    again: the end of the first attempt does not take the second out of the worker's runs in flight (it would get
    no heartbeat, and a lost claim's look would start it a second time)."""
    starts: list[int] = []
    ends: list[int] = []

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        starts.append(ctx.attempt)
        await asyncio.sleep(0.6)
        ends.append(ctx.attempt)

    job(dt)
    dt.job.schedule(req())
    _answer_lost(dt, "finish_and_acquire")  # the first attempt's outcome: recorded, its answer lost

    asyncio.run(_claimed_again(dt.new_worker(poll=timedelta(milliseconds=50)), clock, then=2.0))
    assert starts == [1, 2]
    assert ends == [2]  # a review: attempt 1 ran on beside attempt 2 of its run; it is stopped when claimed again
    (run,) = dt.job.runs()
    assert (run.phase, run.attempt) == (RunPhase.COMPLETED, 2)


def test_a_stopped_attempt_that_runs_on_to_its_end_is_not_counted_as_its_runs_outcome(
    dt: Ductape, clock: FakeClock
) -> None:
    """Claimed again by its own worker, the first attempt caught its cancel and ran on to its end: its outcome was
    queued and flushed as if it were the run's (the store refused it), counted completed in the worker's summary, and
    it took the second attempt's place among the runs the metrics watch, so the second's end was never counted."""
    starts: list[int] = []
    ends: list[int] = []

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        starts.append(ctx.attempt)
        try:
            await asyncio.sleep(0.6)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # a cleanup that awaits, then it returns as if nothing happened
        ends.append(ctx.attempt)

    job(dt)
    dt.job.schedule(req())
    metrics = Metrics()
    worker = dt.new_worker(poll=timedelta(milliseconds=50))
    worker.observers = (metrics,)

    asyncio.run(_claimed_again(worker, clock, then=1.5))
    assert starts == [1, 2] and sorted(ends) == [1, 2]
    (run,) = dt.job.runs()
    assert (run.phase, run.attempt) == (RunPhase.COMPLETED, 2)
    assert (worker.summary.completed, worker.summary.ran) == (1, 1)
    labels = {"status": "completed", "event_type": "function"}
    assert metrics.registry.get_sample_value("ductape_runs_total", labels) == 1.0


def test_a_lost_claims_runs_whose_lease_ends_before_the_next_heartbeat_are_given_back(
    dt: Ductape, clock: FakeClock
) -> None:
    """Found 25 s into their 30 s lease, with the next heartbeat up to 10 s away, the lost claim's runs could be
    rescued by another worker while they run: they go back to the queue instead, and are claimed again at once."""
    rec = dt.function("report")(Recorder())
    job(dt)
    dt.job.schedule_many([req(input={"i": i}) for i in range(2)])
    _answer_lost(dt, "acquire_runs")
    worker = dt.new_worker()
    with pytest.raises(StoreError):
        asyncio.run(worker.run_until_idle())
    clock.advance(seconds=25)
    assert asyncio.run(worker.run_until_idle()).completed == 2
    assert sorted(given["i"] for given, _ in rec.calls) == [0, 1]
    # given back as never begun (a soak probe: the store counted their attempt, so their one run said attempt 2)
    assert {(run.phase, run.attempt) for run in dt.job.runs()} == {(RunPhase.COMPLETED, 1)}


def test_a_lost_claim_committed_after_the_first_look_is_found_by_a_later_one(dt: Ductape, clock: FakeClock) -> None:
    """The server may still be committing the lost try when the next pass looks (the connection was cut before it
    finished): passes look again, every 0.2 s at most, for 2 s after the failure."""
    rec = dt.function("report")(Recorder())
    job(dt)
    dt.job.schedule_many([req(input={"i": i}) for i in range(2)])
    claim, look = dt.store.acquire_runs, dt.store.leased_runs
    late: list[tuple[Any, ...]] = []

    def cut_before_the_commit(*args: Any) -> Any:
        if not late:
            late.append(args)
            raise StoreError("PostgreSQL store: consuming input failed: server closed the connection unexpectedly")
        return claim(*args)

    def first_look_too_early(worker_id: str) -> Any:
        found = look(worker_id)
        if late and late[0] != ():
            claim(*late[0])  # the lost try commits now, after this look
            late[0] = ()
        return found

    dt.store.acquire_runs = cut_before_the_commit  # type: ignore[method-assign]
    dt.store.leased_runs = first_look_too_early  # type: ignore[method-assign]
    worker = dt.new_worker()
    with pytest.raises(StoreError):
        asyncio.run(worker.run_until_idle())
    assert asyncio.run(worker.run_until_idle()).completed == 0  # looked too early; the runs are leased by then
    clock.advance(seconds=0.2)
    assert asyncio.run(worker.run_until_idle()).completed == 2
    assert sorted(given["i"] for given, _ in rec.calls) == [0, 1]
    assert {(run.phase, run.attempt) for run in dt.job.runs()} == {(RunPhase.COMPLETED, 1)}


def test_a_flush_whose_claim_lost_its_answer_gives_back_what_does_not_fit(dt: Ductape) -> None:
    """The flush's finishing claim is tried again after the lost answer (its outcomes are recorded once: guarded by
    lease and attempt) and fills the capacity; the pass then finds the first try's runs and, with no slot free for
    them, queues them again at once, so that every run runs once and the drain ends with none held."""
    ran: list[int] = []

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        await asyncio.sleep(0.2)  # still running when the pass looks for the lost claim's runs
        ran.append(input["i"])

    job(dt)
    dt.job.schedule_many([req(input={"i": i}) for i in range(6)])
    took = _answer_lost(dt, "finish_and_acquire")
    summary = asyncio.run(dt.new_worker(concurrency=2).run_until_idle())
    assert len(took[0]) == 2 and len(took[1]) == 2  # the lost try claimed two runs; the second try two others
    assert summary.completed == 6 and sorted(ran) == [0, 1, 2, 3, 4, 5]
    runs = {run.id: run for run in dt.job.runs()}
    assert {run.phase for run in runs.values()} == {RunPhase.COMPLETED}
    assert [runs[i].attempt for i in took[0]] == [1, 1]  # given back unstarted (no attempt counted), then run
    assert sorted(run.attempt for run in runs.values()) == [1, 1, 1, 1, 1, 1]


def test_a_run_due_while_the_flush_was_claiming_is_claimed_by_the_same_pass(dt: Ductape, clock: FakeClock) -> None:
    """The flush's claim found nothing more due, and a retry fell due while it was in the store (a real clock moves
    on): the pass claims it, so a drain does not end with a run due."""
    rec = dt.function("report")(Recorder(fail_times=1))
    job(dt)
    dt.job.schedule_many([req(input={"i": i}, retries=1) for i in range(2)])
    real = dt.store.finish_and_acquire

    def slow(*args: Any) -> Any:
        runs = real(*args)
        clock.advance(seconds=1)  # the call took a second: the failed run's retry, 1 s after it failed, is due
        return runs

    dt.store.finish_and_acquire = slow  # type: ignore[method-assign]
    worker = dt.new_worker(concurrency=2, backoff=Backoff(base=timedelta(seconds=1), jitter=0))
    summary = asyncio.run(worker.run_until_idle())
    assert (summary.completed, summary.retried, len(rec.calls)) == (2, 1, 3)


def test_outcomes_recorded_when_a_tick_is_due_leave_the_claim_to_the_tick_in_priority_order(
    dt: Ductape, clock: FakeClock
) -> None:
    """A pass whose sleep knew a tick was due records its outcomes without a claim: the tick's transaction claims,
    so a high-priority run it makes (100: its claim key 100 s earlier) goes before a run queued 60 s before it."""
    rec = dt.function("report")(Recorder())
    job(dt)
    dt.job.schedule(req(input={"i": "first"}))
    soon = int((clock.now() + timedelta(seconds=60)).timestamp() * 1000)
    dt.job.schedule(req(input={"i": "urgent"}, start_at=soon, repeat={"every": 3_600_000}, priority=100))

    async def two_passes() -> None:
        worker = dt.new_worker(concurrency=1)
        worker._start(None)
        try:
            await worker._step()  # claims and starts the first run
            await asyncio.gather(*(task for _, task in worker._inflight.values()))
            dt.job.schedule(req(input={"i": "queued"}))  # due now, priority 0
            clock.advance(seconds=60)  # the urgent schedule's first occurrence is due: a tick
            worker._slept = await worker._io(dt.store.next_wakeup)  # what the sleep before this pass read
            await worker._step()
            await asyncio.gather(*(task for _, task in worker._inflight.values()))
        finally:
            worker._end()

    asyncio.run(two_passes())
    assert [given["i"] for given, _ in rec.calls] == ["first", "urgent"]


def test_a_run_due_in_a_later_batch_of_the_tick_still_runs_in_the_same_drain(dt: Ductape, clock: FakeClock) -> None:
    """The tick's first batch makes only held runs (two buffer_one schedules whose runs another worker holds); the
    one-off due in the second batch is ticked by the next pass and run by the same drain."""
    rec = dt.function("report")(Recorder())
    job(dt)
    for _ in range(2):
        dt.job.schedule(req(repeat={"every": 60_000}, overlap="buffer_one"))
    assert len(_hold_running(dt, clock)) == 2
    clock.advance(seconds=30)
    dt.job.schedule(req(start_at=int((clock.now() + timedelta(seconds=40)).timestamp() * 1000)))
    dt.scheduler.batch = 2
    clock.advance(seconds=45)  # the two every-minute schedules are due at +60 s, the one-off at +70 s
    summary = dt.drain()
    assert (summary.created, summary.completed, len(rec.calls)) == (3, 1, 1)


def test_a_full_tick_batch_starts_its_claimed_runs_before_the_next_batch(dt: Ductape, clock: FakeClock) -> None:
    """A pass ticks one batch with its claim and starts what it claimed; the schedules left due wait for the next
    pass (a failure there cannot strand runs already claimed)."""
    rec = dt.function("report")(Recorder())
    job(dt)
    for i in range(3):
        dt.job.schedule(req(input={"i": i}, start_at=int((clock.now() + timedelta(minutes=1)).timestamp() * 1000)))
    dt.scheduler.batch = 2
    clock.advance(minutes=1)
    worker = dt.new_worker()

    async def first_pass() -> bool:
        worker._start(None)
        more = await worker._step()
        await asyncio.gather(*(task for _, task in list(worker._inflight.values())))
        worker._end()
        return more

    assert asyncio.run(first_pass()) and len(rec.calls) == 2  # two started by the first pass; more is due
    assert dt.drain().completed == 1 and len(rec.calls) == 3


def one_ends_in_the_first_flush(
    dt: Ductape, names: tuple[str, ...], *, meanwhile: Callable[[], None] = lambda: None, **options: Any
) -> list[str]:
    """Four runs on a worker (``options``) whose every store call is made in its store thread, as on PostgreSQL,
    two at a time: the first run to start ends first, and the second ends while the call of the flush recording
    the first is made (where ``meanwhile`` runs too); the store calls of ``names`` made, in order."""
    gates = [asyncio.Event() for _ in range(4)]
    ended = [threading.Event() for _ in range(4)]
    started: list[int] = []

    async def report(input: dict[str, Any], ctx: RunContext) -> None:  # gates and ends in the order runs start
        nth = len(started)
        started.append(input["i"])
        await gates[nth].wait()
        ended[nth].set()

    dt.function("report")(report)
    job(dt)
    dt.job.schedule_many([req(input={"i": i}) for i in range(4)])
    calls: list[str] = []
    loop: asyncio.AbstractEventLoop | None = None
    for name in names:
        real = getattr(dt.store, name)

        def spy(*args: Any, _real: Any = real, _name: str = name) -> Any:
            calls.append(_name)
            if _name == "finish_and_acquire" and calls.count(_name) == 1:
                assert loop is not None
                loop.call_soon_threadsafe(gates[1].set)
                assert ended[1].wait(10)
                meanwhile()
            return _real(*args)

        setattr(dt.store, name, spy)

    def would_wait() -> Any:
        raise WouldWait("as on PostgreSQL: every call in the store thread")

    dt.store.promptly = would_wait  # type: ignore[method-assign]
    worker = dt.new_worker(concurrency=2, **options)

    async def main() -> None:
        nonlocal loop
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, handle_signals=False))

        async def until(done: Callable[[], bool]) -> None:
            async with asyncio.timeout(10):
                while not done():
                    assert not running.done(), running.exception()
                    await asyncio.sleep(0.005)

        for nth in (0, 2, 3):
            await until(lambda nth=nth: len(started) > nth)  # type: ignore[misc]
            gates[nth].set()
        await until(lambda: len(dt.job.runs(phase=RunPhase.COMPLETED)) == 4)
        stop.set()
        await running

    asyncio.run(main())
    assert sorted(started) == [0, 1, 2, 3]
    return calls


def test_runs_that_end_while_a_pass_waits_for_the_store_are_recorded_with_the_claim_that_refills_them(
    dt: Ductape,
) -> None:
    """Where a worker's calls are made in its store thread (PostgreSQL's always are), its runs end while they are
    made. Those outcomes go with the next pass's claim for the slots they free, in one transaction: no claim of its
    own before them and no transaction of their own after."""
    calls = one_ends_in_the_first_flush(dt, ("next_wakeup", "acquire_runs", "finish_runs", "finish_and_acquire"))
    first = calls.index("finish_and_acquire")
    assert calls[:first] == ["next_wakeup", "acquire_runs"]  # the first pass: two runs
    # the first's outcome with the third's claim; the second's, which ended meanwhile, with the fourth's: no claim
    # between them, and no transaction of their own
    second = calls.index("finish_and_acquire", first + 1)
    assert set(calls[first + 1 : second]) <= {"next_wakeup"}
    assert "finish_runs" not in calls and calls.count("acquire_runs") == 1


def test_a_pass_that_prunes_claims_first_even_with_outcomes_waiting(dt: Ductape, clock: FakeClock) -> None:
    """Runs ended during a pass's calls wait for the next pass's refilling claim, but not behind this pass's prune:
    a prune batch can take a while, so the pass claims for the free slots before it."""
    every = timedelta(seconds=2)  # less than the lease: no run is rescued meanwhile
    calls = one_ends_in_the_first_flush(
        dt,
        ("next_wakeup", "acquire_runs", "finish_runs", "finish_and_acquire", "prune"),
        meanwhile=lambda: clock.advance(seconds=every.total_seconds()),  # a prune falls due in that pass
        retention=Retention(every=every),
    )
    assert calls[:3] == ["next_wakeup", "acquire_runs", "prune"]  # the first pass prunes
    first = calls.index("finish_and_acquire")
    second_prune = calls.index("prune", first)
    assert "acquire_runs" in calls[first + 1 : second_prune]  # the claim, then the prune


# ------------------------------------------- a review of the worker's loop: each of these failed before its fix


def test_a_run_claimed_ahead_then_claimed_again_due_now_is_waited_for_at_a_stop(dt: Ductape, clock: FakeClock) -> None:
    """Claimed ahead (in ``_waiting``), its lease lost, rescued by this worker's own pass and claimed again when due
    (not waiting): the first attempt's ``_when_due`` does not take the run id out of ``_waiting`` (the entry is the
    second attempt's), and nothing else does. At a stop the second attempt, running, is cancelled at once (no
    grace) and given back as never begun: its attempt row deleted and the run's attempt counted down."""
    starts: list[int] = []
    ends: list[int] = []
    cancelled: list[int] = []
    gate = asyncio.Event()
    stop = asyncio.Event()

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        starts.append(ctx.attempt)
        try:
            await gate.wait()
        except asyncio.CancelledError:
            cancelled.append(ctx.attempt)
            raise
        ends.append(ctx.attempt)

    job(dt)
    made, worker = _claimed_ahead_unheartbeaten(dt, clock)

    async def main() -> None:
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        while not worker._inflight:
            await asyncio.sleep(0.01)
        (run_id,) = worker._inflight
        assert run_id in worker._waiting  # claimed ahead of its due time
        clock.advance(seconds=1)  # past its due time and its lease: this worker's pass rescues it, claims it due
        worker.notify()
        while not starts:
            await asyncio.sleep(0.01)
        assert worker._inflight[run_id][0].attempt == 2
        await asyncio.sleep(0.05)
        stop.set()  # attempt 2 is running: the stop waits for it (grace 10 s)
        await asyncio.sleep(0.2)
        gate.set()
        await running

    asyncio.run(main())
    (run,) = dt.job.runs(job_id=made.job_id)
    assert starts == [2]
    assert cancelled == []  # before the fix: [2], cancelled at once, not waited for
    assert ends == [2]
    assert (run.phase, run.attempt) == (RunPhase.COMPLETED, 2)  # before the fix: QUEUED, attempt 1, attempt 2 deleted


def test_an_attempt_stopped_at_a_heartbeat_is_not_cancelled_again_when_its_run_is_claimed_again(
    dt: Ductape, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """As a831c26 for the heartbeat, the claim again: an attempt ``_stop_lost`` stopped, still running its cleanup
    (it caught its cancel), is cancelled a second time (and warned of again) by ``_begin`` when this worker claims
    its run again; its cleanup is cut short, and it leaves ``_inflight`` though it still runs."""
    gate = asyncio.Event()
    cancels: list[int] = []
    cleaned: list[int] = []

    @dt.function("stubborn")
    async def stubborn(input: dict[str, Any], ctx: RunContext) -> str:
        try:
            await gate.wait()
            return "done"
        except asyncio.CancelledError:
            cancels.append(ctx.attempt)
            await asyncio.sleep(0.5)  # a cleanup that awaits
            cleaned.append(ctx.attempt)
            raise

    job(dt, tag="stubborn", fn="stubborn")
    made = dt.job.schedule(req("stubborn")).job_id
    worker = dt.new_worker(heartbeat=0.02, poll=timedelta(milliseconds=20))

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        while not worker._inflight:
            await asyncio.sleep(0.01)
        (run,) = dt.job.runs(job_id=made)
        later = clock.now() + timedelta(minutes=5)  # another worker's rescue: queued again, due at `later`
        assert [r.run_id for r in dt.store.rescue_expired(later, 5)] == [run.id]
        while not cancels:  # the next heartbeat finds the lease lost and stops attempt 1
            await asyncio.sleep(0.01)
        clock.advance(minutes=5)  # due: this worker claims it again while attempt 1 still cleans up
        worker.notify()
        while worker._inflight[run.id][0].attempt != 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.7)
        gate.set()
        stop.set()
        await running

    with caplog.at_level(logging.WARNING, logger="ductape_jobs.worker"):
        asyncio.run(main())
    (run,) = dt.job.runs(job_id=made)
    assert caplog.text.count(f"run {run.id} attempt 1 stopped: its lease ran out") == 1  # before the fix: 2
    assert cancels == [1] and cleaned == [1]  # before the fix: cleaned == [] (its cleanup cut short)


def test_a_function_that_raises_cancelled_error_itself_is_recorded_not_left_running(
    dt: Ductape, clock: FakeClock
) -> None:
    """A coroutine that awaits a helper task it cancelled raises ``CancelledError`` though nothing cancelled its run:
    ``_execute`` takes it for a stop (``_leave``), queues no outcome and leaves the run ``running`` under this
    worker's lease, no longer heartbeated nor given back at the stop, until a rescue counts it ``lost``."""

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        helper = asyncio.ensure_future(asyncio.sleep(10))
        helper.cancel()
        await helper  # CancelledError here: the helper's, not the run's

    job(dt)
    made = dt.job.schedule(req())
    worker = dt.new_worker()

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        await asyncio.sleep(0.3)
        stop.set()
        await running

    asyncio.run(main())
    (run,) = dt.job.runs(job_id=made.job_id)
    assert run.phase is not RunPhase.RUNNING, (run.phase, run.lease_owner)  # current: RUNNING, this stopped worker's
    assert worker.summary.ran == 1  # current: 0


def test_drain_survives_a_function_that_raises_cancelled_error_itself(dt: Ductape) -> None:
    """``run_until_idle`` gathers the tasks in flight: one that ended cancelled raises ``CancelledError`` out of the
    drain (a BaseException: ``dt.drain()`` raises it to its caller)."""

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        helper = asyncio.ensure_future(asyncio.sleep(10))
        helper.cancel()
        await helper

    job(dt)
    dt.job.schedule(req())
    summary = dt.drain()  # before the fix: raises CancelledError
    assert summary.ran == 1


def test_a_run_that_ends_on_its_stop_cancel_is_told_to_the_observers_as_it_is_counted(
    dt: Ductape, clock: FakeClock
) -> None:
    """At a stop past its grace, a coroutine that catches its cancel and returns is recorded (completed) by the
    shutdown's flush and counted in the summary, but ``_shutdown`` took it out of ``_observed`` first: the metrics
    saw its start and never its end."""

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> dict[str, bool]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return {"partial": True}  # saves what it has and returns
        return {"partial": False}

    job(dt)
    made = dt.job.schedule(req())
    metrics = Metrics()
    worker = dt.new_worker(shutdown_grace=timedelta(seconds=0.1))
    worker.observers = (metrics,)

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        while not worker._inflight:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        stop.set()
        await running

    asyncio.run(main())
    (run,) = dt.job.runs(job_id=made.job_id)
    assert run.phase is RunPhase.COMPLETED and worker.summary.completed == 1
    labels = {"status": "completed", "event_type": "function"}
    assert metrics.registry.get_sample_value("ductape_runs_total", labels) == 1.0  # before the fix: None


def test_a_run_that_ends_during_the_grace_is_not_rescued_before_its_outcome_is_recorded(
    dt: Ductape, clock: FakeClock
) -> None:
    """A stop waits up to its grace (30 s by default, the lease's length) for the runs in flight; the outcomes of
    those that end meanwhile are recorded only after it, and their leases are no longer heartbeated (the heartbeat
    extends ``_inflight`` only). Another worker rescues such a run, which completed here, and runs it again."""
    quick_gate, long_gate = asyncio.Event(), asyncio.Event()
    quick_calls: list[int] = []

    @dt.function("quick")
    async def quick(input: dict[str, Any], ctx: RunContext) -> None:
        quick_calls.append(ctx.attempt)
        await quick_gate.wait()

    @dt.function("long")
    async def long(input: dict[str, Any], ctx: RunContext) -> None:
        await long_gate.wait()

    job(dt, tag="quick", fn="quick")
    job(dt, tag="long", fn="long")
    q = dt.job.schedule(req("quick")).job_id
    dt.job.schedule(req("long"))
    worker = dt.new_worker(heartbeat=0.05, shutdown_grace=timedelta(seconds=20))

    async def main() -> list[str]:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        while len(worker._inflight) < 2:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.sleep(0.05)
        quick_gate.set()  # ends early in the grace; the other run goes on
        await asyncio.sleep(0.1)
        for _ in range(31):  # 31 s of the grace pass; the heartbeats go on for the run still going
            clock.advance(seconds=1)
            await asyncio.sleep(0.12)
        rescued = [r.run_id for r in dt.store.rescue_expired(clock.now(), 3)]  # another worker's pass
        long_gate.set()
        await running
        return rescued

    rescued = asyncio.run(main())
    (run,) = dt.job.runs(job_id=q)
    assert rescued == []  # before the fix: [the quick run's id]
    assert run.phase is RunPhase.COMPLETED  # before the fix: QUEUED, its attempt "lost, then completed"


def test_a_pass_that_the_stop_interrupts_claims_nothing_more(dt: Ductape, clock: FakeClock) -> None:
    """SIGTERM while a pass awaits a store call (PostgreSQL: every call is made in the store thread): the pass goes
    on to tick and claim a batch, which starts after the stop and is waited for (or given back attempted)."""
    rec = dt.function("report")(Recorder())
    job(dt)
    dt.job.schedule_many([req(input={"i": i}) for i in range(3)])
    stop = asyncio.Event()
    real = dt.store.next_wakeup

    def next_wakeup() -> Any:
        stop.set()  # the signal handler ran while the pass waited for this read
        return real()

    dt.store.next_wakeup = next_wakeup  # type: ignore[method-assign]
    asyncio.run(dt.new_worker().run(stop, handle_signals=False))
    assert rec.calls == []  # before the fix: 3 runs started after the stop
    assert {r.phase for r in dt.job.runs()} == {RunPhase.QUEUED}


def test_a_function_that_raises_a_base_exception_does_not_hold_its_run_running_for_ever(
    dt: Ductape, clock: FakeClock
) -> None:
    """``_execute`` catches ``Exception``: a ``BaseException`` of the function's (not ``SystemExit``, which
    ``_call`` turns into a failure) ends its task with no ``_ended``/``_leave``. Its ``_inflight`` entry and
    ``_held`` stay, so the heartbeat extends its lease at every beat: the run stays ``running`` with nothing running,
    never rescued, its slot (and its limits') held while the worker lives; at a stop it is released as begun."""

    class Abort(BaseException):
        pass

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        raise Abort("not an Exception")

    job(dt)
    made = dt.job.schedule(req())
    worker = dt.new_worker(heartbeat=0.05)

    async def main() -> tuple[list[str], Any, int]:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        await asyncio.sleep(0.3)
        for _ in range(6):  # a minute passes: its lease (30 s) would run out, were it not extended
            clock.advance(seconds=10)
            await asyncio.sleep(0.12)
        rescued = [r.run_id for r in dt.store.rescue_expired(clock.now(), 3)]
        (run,) = dt.job.runs(job_id=made.job_id)
        free = worker._free()
        stop.set()
        await running
        return rescued, run, free

    rescued, run, free = asyncio.run(main())
    assert free == worker.options.concurrency  # before the fix: one slot held by a task that ended
    assert run.phase is not RunPhase.RUNNING or rescued, (run.phase, run.lease_expires_at)  # current: running, leased


def test_a_lease_that_expires_before_the_next_rescue_is_due_does_not_spin_the_loop(
    dt: Ductape, clock: FakeClock
) -> None:
    """``_step`` rescues at most every ``rescue_every`` (2 s), but ``_sleep`` wakes for ``lease_expiry`` however it
    is past: a lease of a dead worker that runs out within 2 s of the last rescue makes every pass until then sleep
    0 and read ``next_wakeup`` again (a busy loop of store reads)."""
    dt.function("report")(Recorder())
    job(dt)
    dt.job.schedule_many([req(input={"i": i}) for i in range(2)])
    lease = timedelta(seconds=30)
    assert len(dt.store.acquire_runs("dead", 1, lease, clock.now())) == 1  # its lease: T0 + 30 s
    assert len(dt.store.acquire_runs("dead", 1, lease, clock.now() + timedelta(seconds=1))) == 1  # T0 + 31 s
    clock.advance(seconds=30.5)  # the first lease ran out: the worker's first pass rescues it (next rescue: +2 s)
    worker = dt.new_worker()
    reads = spy_calls(dt.store, "next_wakeup")

    async def main() -> int:
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, handle_signals=False))
        await asyncio.sleep(0.3)
        clock.advance(seconds=1)  # the second lease ran out, 1 s before the next rescue is due
        worker.notify()
        await asyncio.sleep(0.05)
        before = len(reads)
        await asyncio.sleep(0.5)
        n = len(reads) - before
        stop.set()
        await running
        return n

    n = asyncio.run(main())
    assert n < 20, n  # a poll (0.2 s) each: ~3. Current code: a read at every turn of the loop
