"""``job.trigger(id)`` is a run of its own, whatever the schedule's occurrences (issue 11): it never collides
with an occurrence of the same instant, and never takes that occurrence's place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ductape_jobs import RunPhase, TriggeredBy
from ductape_jobs.testing import Sandbox

START = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def sandbox() -> tuple[Sandbox, list[tuple[datetime, str]]]:
    dt = Sandbox(start=START)
    seen: list[tuple[datetime, str]] = []
    dt.function("tick")(lambda input, ctx: seen.append((ctx.scheduled_at, ctx.run_id)))
    dt.job.create({"name": "Tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
    return dt, seen


def by_kind(dt: Sandbox, job_id: str) -> list[tuple[datetime, TriggeredBy, RunPhase]]:
    return sorted((r.scheduled_at, r.triggered_by, r.phase) for r in dt.job.runs(job_id=job_id))


def test_trigger_at_the_instant_an_occurrence_fell_due_is_its_own_run() -> None:
    """The issue's steps: ``every 60000``, ``advance(minutes=1)``, ``trigger``: it raised ConflictError."""
    dt, seen = sandbox()
    with dt:
        made = dt.job.schedule({"env": "dev", "product_tag": "p", "event": "tick", "repeat": {"every": 60_000}})
        dt.advance(minutes=1)
        run = dt.job.trigger(made.job_id)
        assert (run.triggered_by, run.scheduled_at, run.phase) == (TriggeredBy.MANUAL, START + MINUTE, RunPhase.QUEUED)
        assert dt.drain().completed == 1
        assert dt.job.trigger(made.job_id).id != run.id  # and again, in the same millisecond
        dt.drain()
        done = RunPhase.COMPLETED
        assert by_kind(dt, made.job_id) == [
            (START, TriggeredBy.SCHEDULE, done),
            (START + MINUTE, TriggeredBy.MANUAL, done),
            (START + MINUTE, TriggeredBy.MANUAL, done),
            (START + MINUTE, TriggeredBy.SCHEDULE, done),
        ]
        assert len(seen) == 4


def test_the_occurrence_a_trigger_falls_on_still_runs_exactly_once() -> None:
    """Triggered at a due time before the scheduler made its occurrence: the occurrence still runs, once."""
    dt, seen = sandbox()
    with dt:
        made = dt.job.schedule({"env": "dev", "product_tag": "p", "event": "tick", "repeat": {"every": 60_000}})
        dt.drain()
        dt.clock.set(START + MINUTE)  # the next occurrence is due, and no engine has made its run yet
        manual = dt.job.trigger(made.job_id)
        summary = dt.advance(minutes=2)  # runs both at START + 1 min, then the occurrences at + 2 and + 3 min
        assert summary.completed == 4
        done = RunPhase.COMPLETED
        assert by_kind(dt, made.job_id) == [
            (START, TriggeredBy.SCHEDULE, done),
            (START + MINUTE, TriggeredBy.MANUAL, done),
            (START + MINUTE, TriggeredBy.SCHEDULE, done),
            (START + 2 * MINUTE, TriggeredBy.SCHEDULE, done),
            (START + 3 * MINUTE, TriggeredBy.SCHEDULE, done),
        ]
        assert sorted(seen).count((START + MINUTE, manual.id)) == 1
        assert [at for at, _ in sorted(seen)] == [START, START + MINUTE, START + MINUTE, START + 2 * MINUTE,
                                                  START + 3 * MINUTE]  # fmt: skip
        assert dt.job.get(made.job_id).run_count == 4  # the schedule counts its occurrences, not manual runs
