"""A worker's clock stepped: on SQLite (no server clock: the machine's is the only one), a worker whose clock is
stepped forward past the lease
(an NTP step, a VM resumed and resynced, ``date -s``) while a run executes: its own rescue pass took the lease
it had set a moment before as lapsed, recorded its live attempt ``lost`` and ran the run a second time beside it
(a sync function's first attempt ran on to its end in its thread). Nothing died and nothing paused: no run should
be rescued, nor run twice. And a slow pass is not taken for a step: ``Worker._judge_step`` compared the clock read at
the start of a pass with the monotonic clock read after the pass's store calls, so a pass whose calls took 1.5 s
looked like a jump, and the worker rescued nothing for a whole lease."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ductape_jobs import Ductape

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os, pathlib, time
    from datetime import UTC, datetime, timedelta
    from ductape_jobs import Ductape

    STEP = pathlib.Path(os.environ["STEP_FILE"])

    class SteppedClock:
        def now(self):
            return datetime.now(UTC) + timedelta(seconds=float(STEP.read_text()) if STEP.exists() else 0.0)

    ductape = Ductape(os.environ["DUCTAPE_STORE"], clock=SteppedClock(), lease=timedelta(seconds=3),
                      poll=timedelta(milliseconds=50))
    MARKS = pathlib.Path(os.environ["MARKS"])

    @ductape.function("slow")
    def slow(input, ctx):
        (MARKS / f"{ctx.run_id}.{ctx.attempt}").touch()
        time.sleep(4)

    if __name__ == "__main__":
        ductape.worker()
    """
)


def test_a_clock_stepped_forward_does_not_rescue_the_runs_of_a_live_worker(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    marks = tmp_path / "marks"
    marks.mkdir()
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    client = Ductape(store)
    client.job.create({"name": "slow", "tag": "slow", "event_type": "FUNCTION", "event_tag": "slow"})
    job_id = client.job.schedule({"env": "test", "product_tag": "p", "event": "slow"}).job_id
    env = {**os.environ, "DUCTAPE_STORE": store, "MARKS": str(marks), "STEP_FILE": str(tmp_path / "step")}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not list(marks.glob("*.1")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(marks.glob("*.1")), "the run never started"
        (tmp_path / "step").write_text("60")  # the machine's clock jumps a minute ahead, the run 1 s in
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and client.job.runs(job_id=job_id)[0].phase.value == "running":
            time.sleep(0.05)
        (run,) = client.job.runs(job_id=job_id)
        ran = sorted(p.name for p in marks.iterdir())
        assert [a.outcome for a in client.job.run(run.id).attempts] == ["completed"]  # was ["lost", "completed"]
        assert ran == [f"{run.id}.1"]  # was [.1, .2]: executed twice, at once
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        client.close()


REQ = {"env": "test", "product_tag": "p", "event": "quick"}


async def _until_not_running(dt: Ductape, run_id: str, most: float) -> float:
    """Seconds until the run ``run_id`` is no longer running (rescued, or ended), waiting ``most`` at most."""
    started = time.monotonic()
    while dt.job.run(run_id).phase.value == "running" and time.monotonic() - started < most:
        await asyncio.sleep(0.05)
    return time.monotonic() - started


class SteppableClock:
    """The machine's clock, as a user's own ``Clock`` (no ``monotonic``), which an operator or NTP may step."""

    def __init__(self) -> None:
        self.step = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.step


def test_a_slow_pass_is_not_taken_for_a_clock_step(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dt = Ductape(
        f"sqlite:///{tmp_path / 'jobs.db'}",
        clock=SteppableClock(),
        lease=timedelta(seconds=6),
        poll=timedelta(milliseconds=50),
    )
    try:
        dt.function("quick")(lambda input, ctx: None)
        dt.job.create({"name": "quick", "tag": "quick", "event_type": "FUNCTION", "event_tag": "quick"})
        dt.job.schedule(REQ)
        # a worker that died holding the run: its lease lapses 1 s from now
        (held,) = dt.store.acquire_runs("dead-worker", 1, timedelta(seconds=1), dt.clock.now())
        real = dt.store.next_wakeup
        calls = 0

        def next_wakeup() -> object:  # the first read is slow (a busy database), the others quick
            nonlocal calls
            calls += 1
            if calls == 1:
                time.sleep(1.5)
            return real()

        dt.store.next_wakeup = next_wakeup  # type: ignore[method-assign]

        async def main() -> float:
            stop = asyncio.Event()
            task = asyncio.create_task(dt.run_worker(stop))
            took = await _until_not_running(dt, held.id, 12)
            stop.set()
            await task
            return took

        with caplog.at_level(logging.WARNING):
            took = asyncio.run(main())
        jumped = [r.getMessage() for r in caplog.records if "clock jumped" in r.getMessage()]
        assert jumped == [], jumped  # "the clock jumped 1.5s ahead": it did not
        assert took < 4.5, f"the dead worker's run was rescued after {took:.1f}s (lease 1 s, rescue every 2 s)"
    finally:
        dt.close()


def test_a_clock_stepped_back_does_not_put_off_the_rescue_of_a_dead_workers_run() -> None:
    """A worker's next rescue was set by the time before its clock stepped back (every 2 s): after a step of an hour
    back it rescued nothing for an hour, the runs of workers that died after the step too."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        clock = SteppableClock()
        dt = Ductape(
            f"sqlite:///{tmp}/jobs.db", clock=clock, lease=timedelta(seconds=6), poll=timedelta(milliseconds=50)
        )
        try:
            dt.function("quick")(lambda input, ctx: None)
            dt.job.create({"name": "quick", "tag": "quick", "event_type": "FUNCTION", "event_tag": "quick"})

            async def main() -> float:
                stop = asyncio.Event()
                task = asyncio.create_task(dt.run_worker(stop))
                dt.job.schedule(REQ)  # a run rescued before the step sets the next rescue 2 s on
                (first,) = dt.store.acquire_runs("dead-worker", 1, timedelta(milliseconds=200), dt.clock.now())
                while dt.job.run(first.id).phase.value == "running":
                    await asyncio.sleep(0.05)
                clock.step = -timedelta(hours=1)
                await asyncio.sleep(0.5)  # passes by the time after it
                dt.job.schedule(REQ)
                # a worker that died holding the run after the step: its lease lapses 1 s from now
                (held,) = dt.store.acquire_runs("dead-worker", 1, timedelta(seconds=1), dt.clock.now())
                took = await _until_not_running(dt, held.id, 10)
                stop.set()
                await task
                return took

            took = asyncio.run(main())
            assert took < 5, f"the dead worker's run was rescued after {took:.1f}s (lease 1 s, rescue every 2 s)"
        finally:
            dt.close()
