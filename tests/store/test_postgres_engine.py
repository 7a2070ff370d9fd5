"""The whole engine on PostgreSQL: ``Ductape("postgresql://...?schema=...")`` with an injected clock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from storekit import Backend, CutProxy, postgres_backend

from ductape_jobs import Backoff, Ductape, FakeClock, RunContext, RunPhase, ScheduleStatus
from ductape_jobs.testing import Sandbox

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def pg() -> Iterator[Backend]:
    with postgres_backend() as backend:
        yield backend


def report_job(dt: Ductape) -> None:
    dt.job.create({"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"})


def test_every_occurrence_runs_once_with_two_nodes_draining(pg: Backend) -> None:
    clock = FakeClock(T0)
    nodes = [Ductape(pg.url, clock=clock) for _ in range(2)]  # two "machines" on one database
    try:
        seen: list[datetime] = []
        lock = threading.Lock()
        for node in nodes:

            @node.function("report")
            def report(input: dict[str, Any], ctx: RunContext) -> None:
                with lock:
                    seen.append(ctx.scheduled_at)

        report_job(nodes[0])
        s = nodes[0].job.schedule(
            {"env": "prd", "product_tag": "shop", "event": "report", "repeat": {"every": 60_000, "limit": 5}}
        )
        for _ in range(7):
            threads = [threading.Thread(target=node.drain) for node in nodes]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            clock.advance(minutes=1)

        assert sorted(seen) == [T0 + timedelta(minutes=i) for i in range(5)]  # each occurrence once
        runs = nodes[1].job.runs(job_id=s.job_id)
        assert [r.phase for r in runs] == [RunPhase.COMPLETED] * 5
        assert nodes[1].job.get(s.job_id).status is ScheduleStatus.COMPLETED
    finally:
        for node in nodes:
            node.close()


def test_a_failing_function_is_retried_then_fails(pg: Backend) -> None:
    clock = FakeClock(T0)
    dt = Ductape(pg.url, clock=clock, backoff=Backoff(base=timedelta(seconds=10), jitter=0.0))
    try:
        calls: list[int] = []

        @dt.function("report")
        def report(input: dict[str, Any], ctx: RunContext) -> None:
            calls.append(ctx.attempt)
            raise RuntimeError(f"boom {ctx.attempt}")

        report_job(dt)
        s = dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "report", "retries": 2})
        first = dt.drain()
        assert (first.retried, first.failed) == (1, 0)
        (run,) = dt.job.runs(job_id=s.job_id)
        assert (run.phase, run.available_at) == (RunPhase.RETRY_SCHEDULED, T0 + timedelta(seconds=10))
        clock.advance(seconds=10)
        assert dt.drain().retried == 1
        clock.advance(seconds=20)
        assert dt.drain().failed == 1
        run = dt.job.run(run.id)
        assert (run.phase, run.retry_count, calls) == (RunPhase.FAILED, 2, [1, 2, 3])
        assert [a.outcome for a in run.attempts] == ["failed", "failed", "failed"]
        assert run.error is not None and "boom 3" in run.error
        assert dt.drain().ran == 0
    finally:
        dt.close()


def test_a_sandbox_runs_a_cron_schedule_on_postgres(pg: Backend) -> None:
    dt = Sandbox(pg.url, start=T0)
    try:
        ran: list[datetime] = []
        dt.function("report")(lambda input, ctx: ran.append(ctx.scheduled_at))
        report_job(dt)
        dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "report", "repeat": {"cron": "0 9 * * *"}})
        dt.advance(days=3)
        assert ran == [datetime(2026, 3, d, 9, 0, tzinfo=UTC) for d in (3, 4, 5)]
    finally:
        dt.close()


def test_a_claim_whose_commit_answer_is_lost_runs_its_runs_at_once(
    pg: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection is cut after the server committed the worker's claim and before its answer arrived (a proxy
    in between): the claim is not sent again (its outcome is unknown), the pass fails, and the next pass finds the
    three runs it holds the lease of and runs them, instead of leaving them to their 30-second lease."""
    url = urlsplit(pg.url)
    proxy = CutProxy(url.hostname or "127.0.0.1", url.port or 5432, writes=(b"SELECT 3\x00",))  # the claim of 3
    dt = Ductape(urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}")))
    ran: list[int] = []
    try:
        stop = asyncio.Event()

        @dt.function("report")
        async def report(input: dict[str, Any], ctx: RunContext) -> None:
            ran.append(input["i"])
            if len(ran) == 3:
                stop.set()

        report_job(dt)
        dt.job.schedule_many(
            [{"env": "prd", "product_tag": "shop", "event": "report", "input": {"i": i}} for i in range(3)]
        )
        proxy.arm()

        async def work() -> None:
            await asyncio.wait_for(dt.run_worker(stop), timeout=20)  # the lease is 30 s

        asyncio.run(work())
        assert proxy.cut.is_set() and sorted(ran) == [0, 1, 2]
        assert "a claim whose answer was lost took 3 run(s): starting 3" in caplog.text  # the claim's was cut
        assert {(run.phase, run.attempt) for run in dt.job.runs()} == {(RunPhase.COMPLETED, 1)}
    finally:
        dt.close()
        proxy.close()
