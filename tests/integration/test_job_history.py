"""``ductape.job.history(job_id)`` and ``ductape.job.stats(...)``, in Python and awaited (issue 11)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs import AsyncDuctape, FakeClock, JobHistory, NotFoundError, RunPhase, TriggeredBy, ValidationError
from ductape_jobs.limits import MAX_PAGE
from ductape_jobs.testing import Sandbox

START = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
TICK = {"name": "Tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"}


def tick(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Fails at the occurrence of START + 2 min, every time; returns the minute otherwise."""
    if ctx.scheduled_at == START + 2 * MINUTE:
        raise RuntimeError("minute two is bad")
    return {"minute": ctx.scheduled_at.minute}


@pytest.fixture
def sandbox() -> Any:
    with Sandbox(start=START) as dt:
        dt.function("tick")(tick)
        dt.job.create(TICK)
        yield dt


def every_minute(dt: Sandbox, product_tag: str = "shop", env: str = "prd", **extra: Any) -> str:
    request = {"env": env, "product_tag": product_tag, "event": "tick", "repeat": {"every": 60_000}, **extra}
    return dt.job.schedule(request).job_id


def test_history_numbers_a_schedules_runs_and_counts_them(sandbox: Sandbox) -> None:
    job_id = every_minute(sandbox)
    sandbox.advance(minutes=3)  # occurrences at 0, 1, 2 (fails) and 3 minutes
    manual = sandbox.job.trigger(job_id)  # at 3 minutes too: its own run
    sandbox.drain()
    history = sandbox.job.history(job_id)
    assert isinstance(history, JobHistory) and (history.job_id, history.job_tag) == (job_id, "tick")
    assert (history.total, history.successful, history.failed) == (5, 4, 1)
    assert [e.number for e in history.executions] == [5, 4, 3, 2, 1]
    assert [e.scheduled_at - START for e in history.executions] == [
        3 * MINUTE,
        3 * MINUTE,
        2 * MINUTE,
        MINUTE,
        0 * MINUTE,
    ]
    oldest, failed = history.executions[-1], history.executions[2]
    assert (oldest.phase, oldest.result, oldest.error, oldest.triggered_by) == (
        RunPhase.COMPLETED,
        {"minute": 0},
        None,
        TriggeredBy.SCHEDULE,
    )
    assert oldest.started_at == START and oldest.completed_at is not None and oldest.duration_ms is not None
    assert (failed.phase, failed.result) == (RunPhase.FAILED, None)
    assert "minute two is bad" in (failed.error or "")
    assert manual.id in {e.run_id for e in history.executions[:2]}

    newest = sandbox.job.history(job_id, limit=2)
    assert (newest.total, [e.number for e in newest.executions]) == (5, [5, 4])


def test_history_of_an_unknown_schedule_is_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundError) as caught:
        sandbox.job.history("job_nope")
    assert (caught.value.kind, caught.value.key) == ("schedule", "job_nope")


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1, True, "5", 2.5])
def test_history_refuses_a_bad_limit(sandbox: Sandbox, limit: Any) -> None:
    job_id = every_minute(sandbox)
    with pytest.raises(ValidationError) as caught:
        sandbox.job.history(job_id, limit=limit)
    assert caught.value.field == "limit" and str(MAX_PAGE) in caught.value.rule


@pytest.mark.parametrize("max_bytes", [0, -1, True, "5", 2.5])
def test_history_refuses_a_bad_bound_in_bytes(sandbox: Sandbox, max_bytes: Any) -> None:
    job_id = every_minute(sandbox)
    with pytest.raises(ValidationError) as caught:
        sandbox.job.history(job_id, max_bytes=max_bytes)
    assert caught.value.field == "max_bytes"
    assert len(sandbox.job.history(job_id, max_bytes=10**30).executions) >= 1  # past SQL's integers: no bound


def test_stats_count_outcomes_with_optional_filters(sandbox: Sandbox) -> None:
    every_minute(sandbox, retries=1)  # minute two fails twice: a retry, then failed for good
    every_minute(sandbox, product_tag="blog", env="dev", start_at=(START + 10 * MINUTE).isoformat())
    sandbox.advance(minutes=3)
    stats = sandbox.job.stats()
    assert (stats.total, stats.finished) == (4, 4)
    assert {p: n for p, n in stats.by_phase.items() if n} == {RunPhase.COMPLETED: 3, RunPhase.FAILED: 1}
    assert (stats.success_rate, stats.completed_first_try, stats.completed_after_retry) == (0.75, 3, 0)
    assert stats.average_retry_count == 0.25  # the failed run was retried once
    assert sandbox.job.stats(product_tag="blog").total == 0
    sandbox.advance(minutes=8)  # to 11 minutes: blog runs at 10 and 11
    assert (sandbox.job.stats(product_tag="blog", env="dev").total, sandbox.job.stats(env="prd").total) == (2, 12)

    window = sandbox.job.stats(product_tag="shop", since=START + MINUTE, until=START + 3 * MINUTE)
    assert (window.total, window.by_phase[RunPhase.FAILED], window.success_rate) == (2, 1, 0.5)
    as_ms = sandbox.job.stats(since=int((START + MINUTE).timestamp() * 1000), until=(START + 3 * MINUTE).isoformat())
    assert as_ms.total == 2 and as_ms.since == START + MINUTE
    assert sandbox.job.stats(product_tag="none").success_rate is None


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"since": START + MINUTE, "until": START}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"until": -5}, "until"),
        ({"until": 0}, "until"),
        ({"product_tag": ""}, "product_tag"),
        ({"env": 7}, "env"),
    ],
)
def test_stats_refuse_bad_filters_naming_them(sandbox: Sandbox, given: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        sandbox.job.stats(**given)
    assert caught.value.field == field


def test_async_history_and_stats_are_awaited(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncDuctape(f"sqlite:///{tmp_path / 'a.db'}", clock=FakeClock(START)) as client:
            client.function("tick")(tick)
            await client.job.create(TICK)
            made = await client.job.schedule({"env": "prd", "product_tag": "shop", "event": "tick"})
            await client.drain()
            history = await client.job.history(made.job_id, limit=1)
            assert (history.total, history.successful, history.executions[0].result) == (1, 1, {"minute": 0})
            stats = await client.job.stats(product_tag="shop", since=START)
            assert (stats.total, stats.success_rate) == (1, 1.0)
            with pytest.raises(NotFoundError):
                await client.job.history("job_nope")

    asyncio.run(main())
