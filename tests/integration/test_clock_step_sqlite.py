"""A worker on SQLite (no server clock: the machine's is the only one) whose clock is stepped forward past the lease
(an NTP step, a VM resumed and resynced, ``date -s``) while a run executes: its own rescue pass took the lease
it had set a moment before as lapsed, recorded its live attempt ``lost`` and ran the run a second time beside it
(a sync function's first attempt ran on to its end in its thread). Nothing died and nothing paused: no run should
be rescued, nor run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
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
