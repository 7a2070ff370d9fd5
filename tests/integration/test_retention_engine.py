"""Retention through the client, the worker and the CLI: the worker prunes on its cadence (a fake clock, no
sleeps), ``ductape.prune`` and ``ductape prune`` delete (or count) what is past its keep."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ductape_jobs import Ductape, FakeClock, PruneCounts, Retention, RunPhase
from ductape_jobs.cli.main import app
from ductape_jobs.errors import NotFoundError, ValidationError

DAY = timedelta(days=1)


def history(dt: Ductape, clock: FakeClock, *, ok: int = 1, failed: int = 0) -> list[str]:
    """Runs that completed (``ok``) and failed (``failed``) now; their ids."""
    dt.function("fine")(lambda input, ctx: {"ok": True})

    def boom(input: dict[str, Any], ctx: Any) -> None:
        raise RuntimeError("boom")

    dt.function("boom")(boom)
    for tag in ("fine", "boom"):
        if dt.store.get_job("", tag) is None:
            dt.job.create({"name": tag, "tag": tag, "event_type": "FUNCTION", "event_tag": tag})
    for tag, n in (("fine", ok), ("boom", failed)):
        for _ in range(n):
            dt.job.schedule({"env": "prd", "product_tag": "p", "event": tag})
    dt.drain()
    return [r.id for r in dt.job.runs(limit=1000)]


def test_prune_deletes_what_is_past_the_clients_keep(dt: Ductape, clock: FakeClock) -> None:
    history(dt, clock, ok=3, failed=2)
    assert dt.retention == Retention()  # on by default: 7 days completed, 30 days failed
    clock.advance(8 * DAY)
    # each one-off's schedule ended with its run, and goes with it: the failed runs' stay while they do
    assert dt.prune(dry_run=True) == PruneCounts(runs=3, attempts=3, schedules=3)
    assert len(dt.job.runs()) == 5  # a dry run deletes nothing
    assert dt.prune() == PruneCounts(runs=3, attempts=3, schedules=3)
    assert {r.phase for r in dt.job.runs()} == {RunPhase.FAILED}
    assert sorted(s.job_tag for s in dt.store.list_schedules()) == ["boom", "boom"]
    assert dt.prune(keep_failed=timedelta(days=7)) == PruneCounts(runs=2, attempts=2, schedules=2)
    assert dt.job.runs() == [] and dt.store.list_schedules() == []


def test_prune_sweeps_every_ended_schedule_that_holds_no_run_batch_after_batch(tmp_path: Path) -> None:
    """Schedules cancelled before their first run have no run to go with: a worker's prune sweeps a batch of them
    by id at a time; ``ductape.prune()`` sweeps them all, and counts them in its dry run first."""
    clock = FakeClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    with Ductape(f"sqlite:///{tmp_path / 'sweep.db'}", clock=clock, retention=Retention(batch=2)) as dt:
        dt.function("fine")(lambda input, ctx: None)
        dt.job.create({"name": "fine", "tag": "fine", "event_type": "FUNCTION", "event_tag": "fine"})
        later = {"env": "prd", "product_tag": "p", "event": "fine", "start_at": clock.now() + DAY}
        made = [dt.job.schedule(later).job_id for _ in range(5)]
        kept = dt.job.schedule(later).job_id  # still to run
        for job_id in made:
            dt.job.cancel(job_id, reason="not needed")
        clock.advance(8 * DAY)
        assert dt.prune(dry_run=True).schedules == 5
        assert dt.prune().schedules == 5
        assert [s.id for s in dt.job.list()] == [kept]
        with pytest.raises(NotFoundError):
            dt.job.get(made[0])


def test_retention_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="keep_failed"):
        Retention(keep_failed=timedelta(days=-1))
    with pytest.raises(ValidationError, match="batch"):
        Retention(batch=0)
    for share in (0, -0.5, 1.5):
        with pytest.raises(ValidationError, match="share"):
            Retention(share=share)


def test_the_worker_prunes_on_its_cadence(tmp_path: Path) -> None:
    clock = FakeClock(datetime.fromisoformat("2026-03-02T12:00:00+00:00"))
    keep = Retention(keep_completed=timedelta(hours=1), every=timedelta(minutes=1), batch=2)
    dt = Ductape(f"sqlite:///{tmp_path / 'w.db'}", clock=clock, retention=keep, poll=timedelta(milliseconds=5))
    try:
        history(dt, clock, ok=5)
        asyncio.run(_worker_prunes_on_its_cadence(dt, clock))
    finally:
        dt.close()


async def _worker_prunes_on_its_cadence(dt: Ductape, clock: FakeClock) -> None:
    calls: list[tuple[datetime, PruneCounts]] = []
    called = threading.Event()
    prune = dt.store.prune

    def spy(now: datetime, retention: Retention, limit: int) -> PruneCounts:
        counts = prune(now, retention, limit)
        calls.append((now, counts))
        called.set()
        return counts

    dt.store.prune = spy  # type: ignore[method-assign]
    passes = 0
    wakeup = dt.store.next_wakeup

    def counting_wakeup() -> Any:
        nonlocal passes
        passes += 1
        return wakeup()

    dt.store.next_wakeup = counting_wakeup  # type: ignore[method-assign]

    async def until(check: Any) -> None:
        for _ in range(2000):
            if check():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the worker did not get there")

    async def some_passes() -> None:
        start = passes
        await until(lambda: passes >= start + 10)

    stop = asyncio.Event()
    task = asyncio.create_task(dt.run_worker(stop))
    await until(lambda: len(calls) == 1)  # at start: nothing is an hour old yet
    assert calls[0][0] == clock.now() and calls[0][1] == PruneCounts()
    await some_passes()
    assert len(calls) == 1  # not again within the minute
    clock.advance(timedelta(seconds=59))
    await some_passes()
    assert len(calls) == 1
    clock.advance(timedelta(hours=2))  # now the runs are past their keep: batches of 2 until done
    await until(lambda: sum(c.runs for _, c in calls) == 5)
    assert [c.runs for _, c in calls[1:]] == [2, 2, 1]  # a full batch is followed at the next pass
    await some_passes()
    assert len(calls) == 4  # the last batch was not full: the next prune waits for the cadence
    clock.advance(timedelta(minutes=1))
    await until(lambda: len(calls) == 5)
    assert dt.job.runs() == []
    stop.set()
    await task


def test_a_drain_does_not_prune(dt: Ductape, clock: FakeClock) -> None:
    history(dt, clock, ok=1)
    clock.advance(30 * DAY)
    dt.drain()
    assert len(dt.job.runs()) == 1


def test_ductape_prune_command(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'cli.db'}"
    with Ductape(store) as dt:
        history(dt, FakeClock())
        dt.store.cache_put("k", 1, datetime.fromisoformat("2020-01-01T00:00:00+00:00"), dt.clock.now())
    env = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None, "COLUMNS": "200"}

    def cli(*args: str) -> Any:
        result = CliRunner().invoke(app, ["prune", *args, "--store", store], env=env)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result.stdout

    assert json.loads(cli("--json")) == {  # the run is younger than 7 days: kept
        "dry_run": False,
        "runs": 0,
        "attempts": 0,
        "schedules": 0,
        "feature_runs": 0,
        "feature_events": 0,
        "webhook_deliveries": 0,
        "cache_entries": 1,
        "outbox": 0,
        "run_minutes": 0,
    }
    assert json.loads(cli("--dry-run", "--keep-completed", "0s", "--json"))["runs"] == 1
    assert "runs" in cli("--dry-run", "--keep-completed", "0s") and "Would delete" in cli("--dry-run")
    assert json.loads(cli("--keep-completed", "0s", "--keep-failed", "1d", "--json"))["runs"] == 1
    assert json.loads(cli("--keep-completed", "0s", "--json"))["runs"] == 0
    bad = CliRunner().invoke(app, ["prune", "--keep-failed", "soon", "--store", store], env=env)
    assert bad.exit_code == 2 and "keep-failed" in bad.stderr


def test_a_jobs_own_keep_overrides_the_clients_for_its_runs(dt: Ductape, clock: FakeClock) -> None:
    history(dt, clock, ok=2, failed=3)
    dt.job.update("fine", {"keep_completed": "1d"})
    dt.job.update("boom", {"keep_failed": 1})  # only the newest failed run is kept
    assert dt.job.fetch("boom").keep_failed == 1
    assert dt.prune(dry_run=True) == PruneCounts(runs=2, attempts=2)
    assert dt.prune() == PruneCounts(runs=2, attempts=2)  # two failed runs: the count needs no age
    clock.advance(2 * DAY)
    assert dt.prune() == PruneCounts(runs=2, attempts=2)  # the completed ones, after the job's day
    assert [r.phase for r in dt.job.runs()] == [RunPhase.FAILED]


def test_a_jobs_keep_is_validated_naming_the_field(dt: Ductape) -> None:
    with pytest.raises(ValidationError, match="keep_completed"):
        dt.job.create({"name": "x", "tag": "x", "event_type": "FUNCTION", "event_tag": "x", "keep_completed": "soon"})
    assert dt.store.get_job("", "x") is None


def test_a_jobs_keep_of_a_huge_number_is_refused_without_echoing_it(dt: Ductape) -> None:
    """A count past any bound (10**5000: its text alone is past Python's 4,300 digits) is named, not written out."""
    with pytest.raises(ValidationError) as refused:
        dt.job.create({"name": "x", "tag": "x", "event_type": "FUNCTION", "event_tag": "x", "keep_failed": 10**5000})
    assert refused.value.field == "keep_failed" and refused.value.rule.endswith("(got a number beyond ±10^20)")
    assert len(str(refused.value)) < 200 and dt.store.get_job("", "x") is None
    for text in ("9" * 100_000, "9" * 100_000 + "d", "x" * 100_000):  # given as text: cut too
        with pytest.raises(ValidationError) as refused:
            dt.job.create({"name": "x", "tag": "x", "event_type": "FUNCTION", "event_tag": "x", "keep_failed": text})
        assert refused.value.field == "keep_failed" and len(str(refused.value)) < 200, str(refused.value)[:300]


def test_a_backlog_is_pruned_at_most_its_share_of_the_workers_time(tmp_path: Path) -> None:
    """After a full batch the worker's pruner rests ``rest_after(took)`` of real time (share 0.05: 19 times as long
    as the batch took) before the next, so a backlog never starves the runs."""
    clock = FakeClock(datetime.fromisoformat("2026-03-02T12:00:00+00:00"))
    keep = Retention(keep_completed=timedelta(hours=1), batch=2, share=0.05)
    assert keep.rest_after(0.01) == pytest.approx(0.19)
    dt = Ductape(f"sqlite:///{tmp_path / 'w.db'}", clock=clock, retention=keep, poll=timedelta(milliseconds=5))
    try:
        history(dt, clock, ok=7)
        clock.advance(timedelta(hours=2))
        calls = asyncio.run(_timed_prunes(dt, until_runs=7))
    finally:
        dt.close()
    assert [n for _, _, n in calls] == [2, 2, 2, 1]
    for (start, end, _), (next_start, _, _) in itertools.pairwise(calls):
        assert next_start - end >= keep.rest_after(end - start)  # rested its share after each full batch


async def _timed_prunes(dt: Ductape, until_runs: int) -> list[tuple[float, float, int]]:
    """The worker's prune calls as (monotonic start, end, runs pruned), until ``until_runs`` went."""
    calls: list[tuple[float, float, int]] = []
    prune = dt.store.prune

    def timed(now: datetime, retention: Retention, limit: int) -> PruneCounts:
        start = time.monotonic()
        counts = prune(now, retention, limit)
        calls.append((start, time.monotonic(), counts.runs))
        return counts

    dt.store.prune = timed  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(dt.run_worker(stop))
    for _ in range(2000):
        if sum(n for _, _, n in calls) >= until_runs:
            break
        await asyncio.sleep(0.005)
    stop.set()
    await task
    return calls


def test_without_pruning_an_engine_process_still_deletes_a_closed_dashboards_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live stream's row keeps every event written and unpruned until it is deleted; with retention off no
    prune deletes it, so every engine process (``run_services``) deletes lapsed streams on its own."""
    from ductape_jobs import client as client_module

    monkeypatch.setattr(client_module, "STREAMS_EXPIRE_EVERY", timedelta(milliseconds=20))
    clock = FakeClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock, retention=Retention(enabled=False))
    lease = timedelta(seconds=30)
    start = dt.store.open_stream("dashboard:closed", None, clock.now() + lease, clock.now())
    clock.advance(lease + timedelta(seconds=1))  # its browser went away: the lease lapsed

    async def main() -> bool:
        stop = asyncio.Event()
        services = asyncio.create_task(dt.run_services(stop))
        try:
            for _ in range(250):  # up to 5 s
                await asyncio.sleep(0.02)
                if not dt.store.renew_stream("dashboard:closed", start.position, clock.now() + lease, clock.now()):
                    return True  # deleted (a renewal finds no row)
                clock.advance(lease + timedelta(seconds=1))  # the renewal above kept it: lapse it again
            return False
        finally:
            stop.set()
            await services

    try:
        assert asyncio.run(main())
    finally:
        dt.close()
