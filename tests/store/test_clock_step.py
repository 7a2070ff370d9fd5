"""A node's own clock stepped (an NTP step, chrony's makestep, a VM resumed and resynced, ``date -s``) after its
``StoreClock`` measured the offset from the database's: until the next resync (30 s) every reading was the local
clock plus the stale offset, so the node ran delayed runs early and rescued the live leases of healthy workers
(their runs then ran twice at once). README, "One clock: the database's": a node whose clock is off "neither runs
a job early nor rescues another node's live lease"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from storekit import Backend, postgres_backend

from ductape_jobs import Ductape, RunPhase
from ductape_jobs.clock import StoreClock

REQ = {"env": "test", "product_tag": "p", "event": "quick"}


@pytest.fixture
def pg() -> Iterator[Backend]:
    with postgres_backend() as backend:
        yield backend


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
