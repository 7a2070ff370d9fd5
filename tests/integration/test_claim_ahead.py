"""A worker claims a delayed run a little before it falls due (``WorkerOptions.ahead``) and starts it at its due
time, and never before it by the clock it judges due times by, allowing for that clock's error (``StoreClock``'s
``uncertainty``). Real time here: what is checked is that a run starts no earlier than a time, and that its claim
came before it (``ahead`` is a second, far more than a worker's start and a pass take)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs import DispatchResult, Ductape, Run, RunContext, RunPhase, ValidationError
from ductape_jobs.clock import StoreClock, SystemClock, uncertainty
from ductape_jobs.store import Outcome, Rescued

REQ = {"env": "prd", "product_tag": "reports", "event": "report"}


class Starts:
    """An observer (as metrics are): when it was told each run started."""

    def __init__(self) -> None:
        self.told: list[tuple[str, datetime]] = []

    def runs_started(self, runs: Sequence[Run], now: datetime) -> None:
        self.told += [(run.id, datetime.now(UTC)) for run in runs]

    def runs_finished(self, finished: Sequence[tuple[Run, Outcome]]) -> None:
        pass

    def runs_rescued(self, rescued: Sequence[Rescued]) -> None:
        pass


def recorded_starts(dt: Ductape) -> list[datetime]:
    starts: list[datetime] = []

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        starts.append(datetime.now(UTC))

    dt.job.create({"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"})
    return starts


def work_until_completed(dt: Ductape, *schedules: DispatchResult) -> None:
    """A worker claiming 1 s ahead, until every run of ``schedules`` (one each) has completed (10 s at most)."""

    async def main() -> None:
        stop = asyncio.Event()
        worker = asyncio.create_task(dt.run_worker(stop, ahead=1))
        for _ in range(500):
            await asyncio.sleep(0.02)
            runs = [r for s in schedules for r in dt.job.runs(job_id=s.job_id)]
            if len(runs) == len(schedules) and all(r.phase is RunPhase.COMPLETED for r in runs):
                break
        stop.set()
        await worker

    asyncio.run(main())


def test_a_delayed_run_is_claimed_ahead_and_starts_when_it_is_due(tmp_path: Path) -> None:
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", poll=timedelta(milliseconds=50))
    starts = recorded_starts(dt)
    ticks: list[tuple[datetime, timedelta]] = []  # when the worker ticked and claimed, and how far ahead
    real = dt.store.advance_due_and_acquire

    def spy(*args: Any, **kwargs: Any) -> Any:
        ticks.append((datetime.now(UTC), kwargs["ahead"]))
        return real(*args, **kwargs)

    dt.store.advance_due_and_acquire = spy  # type: ignore[method-assign]
    observer = Starts()
    dt.observers.append(observer)
    due_ms = math.ceil((time.time() + 1.5) * 1000)
    due = datetime.fromtimestamp(due_ms / 1000, UTC)
    scheduled = dt.job.schedule({**REQ, "start_at": due_ms})

    try:
        work_until_completed(dt, scheduled)
        (run,) = dt.job.runs(job_id=scheduled.job_id)
        assert run.phase is RunPhase.COMPLETED and len(starts) == 1
        assert starts[0] >= due  # never early
        assert ticks and ticks[0][1] == timedelta(seconds=1) and ticks[0][0] < due  # claimed before it was due
        # claimed as starting at its due time, recorded at its end as starting when its task began
        assert run.started_at is not None and due <= run.started_at <= starts[0]
        assert [a.started_at for a in dt.job.run(run.id).attempts] == [run.started_at]
        assert [run_id for run_id, _ in observer.told] == [run.id] and observer.told[0][1] >= due  # told at its start
    finally:
        dt.close()


class SlowServer:
    """A database whose clock agrees with this machine's, read over a round trip of ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def server_time(self) -> datetime | None:
        time.sleep(self.delay / 2)
        at = datetime.now(UTC)
        time.sleep(self.delay / 2)
        return at


def test_a_run_waits_out_the_error_of_the_clock_it_is_judged_by(tmp_path: Path) -> None:
    """A clock corrected by a server's is known only within half the round trip it was measured over: a run
    starts once its due time plus that has passed, so that it is not early by the server's clock."""
    clock = StoreClock(SystemClock(), SlowServer(0.6), samples=1)
    assert timedelta(seconds=0.3) <= uncertainty(clock) < timedelta(seconds=5)
    assert uncertainty(SystemClock()) == timedelta(0)
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock)
    try:
        starts: list[datetime] = []

        @dt.function("report")
        async def report(input: dict[str, Any], ctx: RunContext) -> None:
            starts.append(clock.now())  # by the clock due times are judged by

        dt.job.create({"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"})
        dt.job.schedule({**REQ, "start_at": 0})
        (run,) = dt.job.runs()
        assert run.available_at is not None
        assert dt.drain().completed == 1
        assert starts[0] - run.available_at >= uncertainty(clock)
    finally:
        dt.close()


@pytest.mark.parametrize("bad", [-0.001, 1.5, float("nan"), True, "soon", timedelta(seconds=-1)])
def test_how_far_ahead_is_checked(tmp_path: Path, bad: Any) -> None:
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        with pytest.raises(ValidationError, match=r"^ahead: must be seconds \(or a timedelta\) from 0 to 1$"):
            dt.new_worker(ahead=bad)
        assert dt.new_worker(ahead=0).options.ahead == timedelta(0)
        assert dt.new_worker(ahead=timedelta(milliseconds=5)).options.ahead == timedelta(milliseconds=5)
        assert dt.new_worker().options.ahead == timedelta(milliseconds=20)
    finally:
        dt.close()


def ticks_of(dt: Ductape) -> list[datetime]:
    """When the worker ticked (and claimed in the same transaction)."""
    ticks: list[datetime] = []
    real = dt.store.advance_due_and_acquire

    def spy(*args: Any, **kwargs: Any) -> Any:
        ticks.append(datetime.now(UTC))
        return real(*args, **kwargs)

    dt.store.advance_due_and_acquire = spy  # type: ignore[method-assign]
    return ticks


async def run_until(dt: Ductape, done: Any, *, seconds: float = 10, **options: Any) -> Any:
    """``dt.run_worker(stop, **options)`` until ``done()``; then stop it and return the worker."""
    stop = asyncio.Event()
    task = asyncio.create_task(dt.run_worker(stop, **options))
    for _ in range(int(seconds / 0.02)):
        await asyncio.sleep(0.02)
        if done():
            break
    stop.set()
    return await task


def test_a_run_waiting_for_its_due_time_at_a_stop_is_given_back_unstarted(tmp_path: Path) -> None:
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", poll=timedelta(milliseconds=50))
    try:
        starts = recorded_starts(dt)
        due_ms = math.ceil((time.time() + 1.5) * 1000)
        scheduled = dt.job.schedule({**REQ, "start_at": due_ms})

        def claimed() -> bool:
            runs = dt.job.runs(job_id=scheduled.job_id)
            return bool(runs) and runs[0].phase is RunPhase.RUNNING

        worker = asyncio.run(run_until(dt, claimed, ahead=1))
        assert worker.abandoned == 0 and starts == []  # the stop came before its due time: it never ran
        (run,) = dt.job.runs(job_id=scheduled.job_id)
        assert run.phase is RunPhase.QUEUED and run.available_at == datetime.fromtimestamp(due_ms / 1000, UTC)
        # as its claim found it: no attempt (one "released" that ended before it started, -360 ms long), no start,
        # and its first run is attempt 1 (it was 2)
        assert (dt.job.run(run.id).attempts, run.attempt, run.started_at) == ([], 0, None)
        time.sleep(max(0.0, due_ms / 1000 - time.time()) + 0.05)  # due now
        asyncio.run(dt.new_worker().run_until_idle())
        ran = dt.job.run(run.id)
        assert (ran.phase, ran.attempt, [a.attempt for a in ran.attempts]) == (RunPhase.COMPLETED, 1, [1])
    finally:
        dt.close()


def test_a_schedule_left_by_a_tick_ahead_is_looked_at_again_when_due_not_at_once(tmp_path: Path) -> None:
    """A schedule with an overlap policy is ticked only when due: the worker that looked ahead and left it sleeps
    till then (it does not tick again and again meanwhile)."""
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        starts = recorded_starts(dt)
        ticks = ticks_of(dt)
        due_ms = math.ceil((time.time() + 0.95) * 1000)
        dt.job.schedule({**REQ, "start_at": due_ms, "overlap": "skip"})
        asyncio.run(run_until(dt, lambda: bool(starts), ahead=1))
        assert len(starts) == 1 and starts[0] >= datetime.fromtimestamp(due_ms / 1000, UTC)
        assert 2 <= len(ticks) <= 3  # once ahead (nothing), once when due (its run); not at every poll (0.2 s)
    finally:
        dt.close()


def test_a_reschedule_within_ahead_of_an_occurrence_made_ahead_does_not_make_it_again(tmp_path: Path) -> None:
    """A tick ahead made the run due at T (so the schedule's last due time is after now); a reschedule then must
    not give the schedule T again: the next tick would plan it, its insert would be dropped as a second run of the
    same occurrence, and the run limit would count it twice."""
    from ductape_jobs.clock import FakeClock

    at = datetime(2026, 3, 2, 12, 0, 10, tzinfo=UTC)  # a whole second
    clock = FakeClock(at - timedelta(seconds=3))
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock)
    dt.function("report")(lambda input, ctx: None)
    dt.job.create({"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"})
    every_second = {"cron": "* * * * * *", "limit": 3}
    made = dt.job.schedule({**REQ, "start_at": at, "repeat": every_second})
    clock.set(at - timedelta(milliseconds=10))
    created, _, _ = dt.scheduler.tick_and_claim(
        clock.now(), "w1", 10, timedelta(seconds=30), timedelta(milliseconds=20)
    )
    assert [r.scheduled_at for r in created] == [at]

    changed = dt.job.reschedule(made.job_id, every_second)
    assert changed.next_run_at == at + timedelta(seconds=1) and changed.run_count == 1
    clock.set(at)
    assert dt.scheduler.tick(at) == []
    clock.set(at + timedelta(seconds=1))
    assert [r.scheduled_at for r in dt.scheduler.tick(clock.now())] == [at + timedelta(seconds=1)]
    after = dt.job.get(made.job_id)
    assert after.run_count == 2 == len(dt.job.runs(job_id=made.job_id))

    # and the occurrence after the one made ahead is held to the new end date: none left, the schedule completes
    clock.set(at + timedelta(seconds=2) - timedelta(milliseconds=10))
    created, _, _ = dt.scheduler.tick_and_claim(
        clock.now(), "w1", 10, timedelta(seconds=30), timedelta(milliseconds=20)
    )
    assert [r.scheduled_at for r in created] == [at + timedelta(seconds=2)]
    end = at + timedelta(seconds=2, milliseconds=500)
    ended = dt.job.reschedule(made.job_id, {"cron": "* * * * * *", "end_date": end.isoformat()})
    assert (ended.status.value, ended.next_run_at) == ("completed", None)
    dt.close()


def test_a_run_claimed_ahead_records_when_it_really_began(tmp_path: Path) -> None:
    """Claimed ahead, a run is recorded as starting at its due time; if its worker's loop is busy then (a job that
    blocks it), it begins later, and its outcome records that: the store's lateness shows the delay."""
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", poll=timedelta(milliseconds=50))
    began: dict[str, datetime] = {}

    @dt.function("block")
    async def block(input: dict[str, Any], ctx: RunContext) -> None:
        began["block"] = datetime.now(UTC)
        time.sleep(0.4)  # holds the loop, as a job that forgot to await would

    @dt.function("report")
    async def report(input: dict[str, Any], ctx: RunContext) -> None:
        began["report"] = datetime.now(UTC)

    for tag in ("block", "report"):
        dt.job.create({"name": tag, "tag": tag, "event_type": "FUNCTION", "event_tag": tag})
    due_ms = math.ceil((time.time() + 1.5) * 1000)
    first = dt.job.schedule({**REQ, "event": "block", "start_at": due_ms})
    second = dt.job.schedule({**REQ, "start_at": due_ms + 20})  # due while the first holds the loop

    try:
        work_until_completed(dt, first, second)
        (late,) = dt.job.runs(job_id=second.job_id)
        assert late.phase is RunPhase.COMPLETED and late.started_at is not None
        due = late.scheduled_at
        assert began["report"] >= began["block"] + timedelta(seconds=0.4)  # it waited for the loop
        assert late.started_at >= began["block"] + timedelta(seconds=0.4) - timedelta(milliseconds=1)
        assert late.started_at - due >= timedelta(milliseconds=300)  # not its due time
        assert [a.started_at for a in dt.job.run(late.id).attempts] == [late.started_at]
        lateness = dt.store.lateness_sample(due - timedelta(seconds=5), 10)
        assert max(lateness) >= timedelta(milliseconds=300)
    finally:
        dt.close()


def test_a_lease_check_the_store_cannot_answer_is_asked_again_until_it_does(tmp_path: Path) -> None:
    """A run claimed ahead whose lease this worker cannot vouch for at its due time (here: every heartbeat seemed to
    miss a lease, though it extended it) is asked of the store first. A call that failed made the run be left
    unstarted: held by this worker, unextended, until its lease ran out and a rescue counted an attempt it never
    began as lost. The store is asked again until it answers, and the run starts once, its only attempt completed."""
    from ductape_jobs.errors import StoreError

    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", poll=timedelta(milliseconds=50), lease=timedelta(seconds=0.6))
    try:
        starts = recorded_starts(dt)
        failures: list[str] = []
        real_leased, real_extend = dt.store.leased_runs, dt.store.extend_leases

        def leased_runs(worker_id: str) -> list[Run]:
            if len(failures) < 2:  # the store away for the first two asks
                failures.append(worker_id)
                raise StoreError("the store is away")
            return real_leased(worker_id)

        def extend_leases(worker_id: str, run_ids: Sequence[str], until: datetime) -> int:
            extended = real_extend(worker_id, run_ids, until)
            return extended if len(failures) >= 2 else 0  # heartbeats: extended, but said to be missed

        dt.store.leased_runs = leased_runs  # type: ignore[method-assign]
        dt.store.extend_leases = extend_leases  # type: ignore[method-assign]
        scheduled = dt.job.schedule({**REQ, "start_at": math.ceil((time.time() + 1.0) * 1000)})

        def completed() -> bool:
            return [r.phase for r in dt.job.runs(job_id=scheduled.job_id)] == [RunPhase.COMPLETED]

        asyncio.run(run_until(dt, completed, ahead=1))
        (run,) = dt.job.runs(job_id=scheduled.job_id)
        assert len(failures) == 2 and len(starts) == 1
        assert [a.outcome for a in dt.job.run(run.id).attempts] == ["completed"]
    finally:
        dt.close()
