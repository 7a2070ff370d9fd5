"""Several nodes on one PostgreSQL: idle workers woken by LISTEN/NOTIFY, due times judged by the database's clock."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from storekit import Backend, pg_admin, postgres_backend

from ductape_jobs import Ductape, RunPhase
from ductape_jobs.clock import StoreClock

REQ = {"env": "test", "product_tag": "p", "event": "quick"}


@pytest.fixture
def pg() -> Iterator[Backend]:
    with postgres_backend() as backend:
        yield backend


class SkewedClock:
    """A machine whose clock is off by ``skew``."""

    def __init__(self, skew: timedelta) -> None:
        self.skew = skew

    def now(self) -> datetime:
        return datetime.now(UTC) + self.skew


def quick_job(dt: Ductape) -> None:
    dt.job.create({"name": "quick", "tag": "quick", "event_type": "FUNCTION", "event_tag": "quick"})


def wait_for(what: str, cond: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def listening(pg: Backend) -> int:
    """Connections of this test's schema (its application_name) that have LISTENed."""
    rows = pg_admin(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'LISTEN%%'", [pg.schema]
    )
    return int(rows[0][0])


class WorkerThread:
    """``dt.run_worker`` in a thread of its own (another node's engine), stopped by ``stop()``."""

    def __init__(self, dt: Ductape, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        self.thread = threading.Thread(target=self._run, args=(dt, options), name="test-worker")
        self.thread.start()

    def _run(self, dt: Ductape, options: dict[str, Any]) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(dt.run_worker(self.stop_event, **options))
        finally:
            self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_an_idle_worker_is_woken_by_another_client_at_once(pg: Backend) -> None:
    node = Ductape(pg.url)
    other = Ductape(pg.url)  # another machine's client: its schedule() reaches the worker only by NOTIFY
    try:
        ran = threading.Event()
        node.function("quick")(lambda input, ctx: ran.set())
        quick_job(other)
        worker = WorkerThread(node, poll=timedelta(seconds=5))
        try:
            wait_for("the worker to listen", lambda: listening(pg) == 1)
            time.sleep(0.3)  # let the worker's first pass end, so it sleeps for the 5 s poll

            s = other.job.schedule(REQ)
            assert ran.wait(10)
            wait_for("the run to complete", lambda: other.job.runs(job_id=s.job_id)[0].phase is RunPhase.COMPLETED)
            (run,) = other.job.runs(job_id=s.job_id)
            assert run.started_at is not None
            assert run.started_at - run.scheduled_at < timedelta(seconds=1)  # not the 5 s poll
        finally:
            worker.stop()
        assert listening(pg) == 0  # the LISTEN connection is closed with the worker
        assert not [t for t in threading.enumerate() if t.name.startswith("ductape-listen")]
    finally:
        node.close()
        other.close()


def test_an_idle_worker_told_of_a_later_schedule_reads_nothing_for_it_and_starts_a_near_one_on_time(
    pg: Backend,
) -> None:
    """Another client's delayed schedule reaches the worker by NOTIFY with its due time: one due after the worker's
    own next read costs it no read (each was a pass's round trips, for every listening worker, at every schedule);
    one due before that read is started when due (a poke set for then), not at the next poll."""
    node = Ductape(pg.url)
    other = Ductape(pg.url)
    try:
        ran = threading.Event()
        node.function("quick")(lambda input, ctx: ran.set())
        quick_job(other)
        reads: list[float] = []
        next_wakeup = node.store.next_wakeup

        def counted() -> Any:
            reads.append(time.monotonic())
            return next_wakeup()

        node.store.next_wakeup = counted  # type: ignore[method-assign]
        worker = WorkerThread(node, poll=timedelta(seconds=5))  # a horizon of 10 s
        try:
            wait_for("the worker to listen", lambda: listening(pg) == 1)
            time.sleep(0.3)  # its first pass ended: it sleeps for the 5 s poll
            before = len(reads)
            other.job.schedule({**REQ, "start_at": datetime.now(UTC) + timedelta(seconds=60)})  # past the horizon
            time.sleep(0.5)
            assert len(reads) == before  # told, and read nothing for it
            assert not ran.is_set()

            due = datetime.now(UTC) + timedelta(milliseconds=1200)  # before its next poll, after the notice
            s = other.job.schedule({**REQ, "start_at": due})
            assert ran.wait(10)
            wait_for("the run to complete", lambda: other.job.runs(job_id=s.job_id)[0].phase is RunPhase.COMPLETED)
            (run,) = other.job.runs(job_id=s.job_id)
            assert run.started_at is not None
            assert run.started_at - run.scheduled_at < timedelta(seconds=2)  # when due, not at the poll (~3.5 s on)
        finally:
            worker.stop()
    finally:
        node.close()
        other.close()


def test_a_node_with_a_skewed_clock_judges_due_times_by_the_database(pg: Backend) -> None:
    honest = Ductape(pg.url)  # no clock injected: the database's clock
    skewed = SkewedClock(timedelta(hours=1))
    corrected = Ductape(pg.url, clock=skewed, server_clock=True)  # an hour fast, corrected by the database
    naive = Ductape(pg.url, clock=skewed)  # an hour fast, taken as given
    try:
        ran: list[str] = []
        for node in (honest, corrected, naive):
            node.function("quick")(lambda input, ctx: ran.append(ctx.run_id))
        assert isinstance(honest.clock, StoreClock) and isinstance(corrected.clock, StoreClock)
        assert abs(corrected.clock.now() - honest.clock.now()) < timedelta(seconds=1)
        assert naive.clock is skewed

        quick_job(honest)
        later = honest.job.schedule({**REQ, "start_at": honest.clock.now() + timedelta(seconds=5)})
        live = honest.job.schedule(REQ)  # a run the honest node holds under a 30 s lease
        (held,) = honest.store.acquire_runs("honest-node", 1, timedelta(seconds=30), honest.clock.now())
        assert held.job_id == live.job_id

        summary = corrected.drain()  # neither the run due in 5 s nor the live lease
        assert (summary.ran, ran) == (0, [])
        assert honest.job.runs(job_id=later.job_id) == []  # its occurrence is not due yet
        assert honest.job.run(held.id).phase is RunPhase.RUNNING

        summary = naive.drain()  # the contrast: an hour fast, it runs the job early and rescues the lease
        assert (summary.created, summary.completed) == (1, 2)
        (early,) = honest.job.runs(job_id=later.job_id)
        assert early.phase is RunPhase.COMPLETED and early.started_at is not None
        assert early.started_at - early.scheduled_at > timedelta(minutes=59)  # by the skewed clock
        rescued = honest.job.run(held.id)
        assert [a.outcome for a in rescued.attempts] == ["lost", "completed"]
    finally:
        for node in (honest, corrected, naive):
            node.close()


class FakeServer:
    def __init__(self, at: datetime | None) -> None:
        self.at = at
        self.calls = 0
        self.fail = False

    def server_time(self) -> datetime | None:
        self.calls += 1
        if self.fail:
            raise RuntimeError("database away")
        return self.at


def test_store_clock_measures_the_offset_and_resyncs_in_the_background() -> None:
    server = FakeServer(datetime.now(UTC) - timedelta(minutes=10))
    clock = StoreClock(SkewedClock(timedelta(0)), server, resync=timedelta(milliseconds=50))
    assert server.calls == 3  # the best of three round trips
    assert abs(clock.offset + timedelta(minutes=10)) < timedelta(seconds=1)
    assert abs(clock.now() - server.at) < timedelta(seconds=1)

    server.at = datetime.now(UTC) + timedelta(minutes=5)  # the estimate moves on the next resync
    time.sleep(0.06)
    clock.now()  # starts a resync; now() never waits for it
    wait_for("the resync", lambda: abs(clock.offset - timedelta(minutes=5)) < timedelta(seconds=1), 5)

    server.fail = True  # a failed resync keeps the last offset
    offset = clock.offset
    time.sleep(0.06)
    calls = server.calls
    clock.now()
    wait_for("the failed resync", lambda: server.calls > calls and not clock._syncing, 5)
    assert clock.offset == offset


def test_a_store_without_a_server_clock_keeps_the_local_clock(tmp_path: Any) -> None:
    local = SkewedClock(timedelta(0))
    assert StoreClock.attach(local, FakeServer(None)) is local
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", server_clock=True)
    try:
        assert not isinstance(dt.clock, StoreClock)
    finally:
        dt.close()


# A node's own clock stepped (an NTP step, chrony's makestep, a VM resumed and resynced, ``date -s``) after its
# ``StoreClock`` measured the offset: until the next resync (30 s) it ran delayed runs early and rescued the live
# leases of healthy workers (their runs then ran twice at once).


class SteppedClock:
    """The machine's clock, which an operator or NTP may step by ``step``."""

    def __init__(self) -> None:
        self.step = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.step


def test_a_node_whose_clock_steps_forward_neither_runs_early_nor_rescues_a_live_lease(pg: Backend) -> None:
    honest = Ductape(pg.url)
    local = SteppedClock()
    node = Ductape(pg.url, clock=local, server_clock=True)  # corrected by the database's clock
    try:
        ran: list[str] = []
        for n in (honest, node):
            n.function("quick")(lambda input, ctx: ran.append(ctx.run_id))
        assert isinstance(node.clock, StoreClock)
        honest.job.create({"name": "quick", "tag": "quick", "event_type": "FUNCTION", "event_tag": "quick"})
        later = honest.job.schedule({**REQ, "start_at": honest.clock.now() + timedelta(seconds=20)})
        live = honest.job.schedule(REQ)  # a run the honest node holds under a 30 s lease
        (held,) = honest.store.acquire_runs("honest-node", 1, timedelta(seconds=30), honest.clock.now())
        assert held.job_id == live.job_id

        local.step = timedelta(minutes=1)  # the node's clock is stepped a minute forward, its offset measured before
        summary = node.drain()
        assert (summary.ran, ran) == (0, [])  # it ran the run due in 20 s, and the live run again
        assert honest.job.runs(job_id=later.job_id) == []
        run = honest.job.run(held.id)
        assert run.phase is RunPhase.RUNNING and [a.outcome for a in run.attempts] == [None]  # not rescued
        assert abs(node.clock.now() - honest.clock.now()) < timedelta(seconds=1)  # it told a minute ahead
    finally:
        honest.close()
        node.close()
