"""A drain heartbeats the leases of the runs it holds, as a worker does. It did not: a run of ``ductape drain`` (or
``drain()``) longer than its lease was rescued by another worker or drain, as if its process were dead, and ran a
second time beside the first (an SRE's probe: on PostgreSQL beside a worker, on SQLite with two drains a cron
started 35 s apart). A real process drains here while this one drains too, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs import Ductape, RunPhase

pytestmark = pytest.mark.slow

LEASE = timedelta(seconds=1)
RUNS_FOR = 3.5  # seconds: past three leases

APP = textwrap.dedent(
    f"""
    import os, pathlib, time
    from datetime import timedelta
    from ductape_jobs import Ductape

    ductape = Ductape(os.environ["DUCTAPE_STORE"], lease=timedelta(seconds={LEASE.total_seconds()}))
    STARTS = pathlib.Path(os.environ["STARTS"])


    @ductape.function("slow")
    def slow(input, ctx):
        with STARTS.open("a") as f:
            f.write(f"{{os.getpid()}} {{ctx.attempt}}\\n")
        time.sleep({RUNS_FOR})
        return {{"done": True}}


    if __name__ == "__main__":
        print(ductape.drain())
        ductape.close()
    """
)


def test_a_run_longer_than_its_lease_is_not_taken_from_a_live_drain(store_url: str, tmp_path: Path) -> None:
    starts = tmp_path / "starts.txt"
    (tmp_path / "drain_app.py").write_text(APP)
    other = Ductape(store_url, lease=LEASE)
    try:

        @other.function("slow")
        def slow(input: dict[str, Any], ctx: Any) -> None:  # another process's drain would run it again here
            with starts.open("a") as f:
                f.write(f"{os.getpid()} {ctx.attempt}\n")

        other.job.create({"name": "Slow", "tag": "slow", "event_type": "FUNCTION", "event_tag": "slow"})
        job = other.job.schedule({"env": "prd", "product_tag": "p", "event": "slow", "start_at": 0})
        env = {**os.environ, "DUCTAPE_STORE": store_url, "STARTS": str(starts)}
        drain = subprocess.Popen(
            [sys.executable, "drain_app.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while not starts.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert starts.exists(), "the drain never started the run"
            ends = time.monotonic() + RUNS_FOR + 1
            while time.monotonic() < ends:  # past the run's lease many times over: a rescue would come here
                other.drain()
                time.sleep(0.1)
            out, _ = drain.communicate(timeout=60)
        finally:
            drain.kill()
            drain.wait()
        assert drain.returncode == 0, out
        assert "completed=1" in out
        lines = starts.read_text().splitlines()
        assert lines == [f"{drain.pid} 1"], lines  # one execution, the drain's, never rescued
        [run] = other.job.runs(job_id=job.job_id)
        assert (run.phase, run.attempt) == (RunPhase.COMPLETED, 1)
    finally:
        other.close()


def test_a_drain_whose_run_loses_its_lease_carries_on(tmp_path: Path) -> None:
    """A run the drain holds that another process takes (its lease was lost: here, its owner changed in the store)
    is stopped in the drain, which carries on: its gathering of the runs raised the stopped run's CancelledError, the
    drain ended without a summary and left its other runs ``running`` (a review)."""
    import sqlite3
    import threading

    path = tmp_path / "jobs.db"
    dt = Ductape(f"sqlite:///{path}", lease=LEASE)
    starts: list[int] = []

    @dt.function("slow")
    async def slow(input: dict[str, Any], ctx: Any) -> None:
        starts.append(ctx.attempt)
        await asyncio.sleep(2)

    try:
        dt.job.create({"name": "Slow", "tag": "slow", "event_type": "FUNCTION", "event_tag": "slow"})
        for _ in range(2):
            dt.job.schedule({"env": "prd", "product_tag": "p", "event": "slow", "start_at": 0})

        def take_one() -> None:
            time.sleep(0.5)
            with sqlite3.connect(path, timeout=30) as db:
                db.execute(
                    "UPDATE runs SET lease_owner = 'another' WHERE id = "
                    "(SELECT min(id) FROM runs WHERE phase = 'running')"
                )

        threading.Thread(target=take_one, daemon=True).start()
        summary = dt.drain()  # raised CancelledError
        assert summary.completed == 2  # the other run, and the taken one once its lease lapsed (rescued, run again)
        assert sorted(starts) == [1, 1, 2]
        assert {(r.phase, r.attempt) for r in dt.job.runs()} == {(RunPhase.COMPLETED, 1), (RunPhase.COMPLETED, 2)}
    finally:
        dt.close()


def test_a_drain_cancelled_stops_its_runs(tmp_path: Path) -> None:
    """``await asyncio.wait_for(ductape.drain(), ...)`` timing out cancels the runs the drain started, as gathering
    them did: waited on instead, they ran on unwatched, their leases lapsed, and a later drain ran them again (a
    review: each run executed twice)."""
    from ductape_jobs import AsyncDuctape

    ends: list[int] = []

    async def scenario() -> None:
        async with AsyncDuctape(f"sqlite:///{tmp_path / 'jobs.db'}", lease=LEASE) as dt:

            @dt.function("slow")
            async def slow(input: dict[str, Any], ctx: Any) -> None:
                await asyncio.sleep(1)
                ends.append(ctx.attempt)

            await dt.job.create({"name": "Slow", "tag": "slow", "event_type": "FUNCTION", "event_tag": "slow"})
            for _ in range(2):
                await dt.job.schedule({"env": "prd", "product_tag": "p", "event": "slow", "start_at": 0})
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(dt.drain(), 0.3)
            await asyncio.sleep(1.5)  # past their end: a run left going would have ended by now
            assert ends == []
            alive = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("run ")]
            assert alive == []

    asyncio.run(scenario())
