"""Real worker processes on one SQLite file: SIGKILL mid-run, restart with the misfire policy, SIGTERM."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ductape_jobs import Ductape, RunPhase
from support import free_port

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os, pathlib, time
    from datetime import timedelta
    from ductape_jobs import Ductape

    ductape = Ductape(
        os.environ["DUCTAPE_STORE"],
        lease=timedelta(seconds=float(os.environ.get("LEASE", "30"))),
        poll=timedelta(milliseconds=50),
        misfire_grace=timedelta(milliseconds=200),
        shutdown_grace=timedelta(seconds=float(os.environ.get("SHUTDOWN_GRACE", "30"))),
    )
    MARKS = pathlib.Path(os.environ["MARKS"])

    @ductape.function("slow")
    def slow(input, ctx):
        (MARKS / f"{ctx.run_id}.{ctx.attempt}").touch()
        if ctx.attempt == 1:
            time.sleep(float(input.get("first_attempt_sleeps", 0)))
        return {"attempt": ctx.attempt}

    @ductape.function("quick")
    def quick(input, ctx):
        with open(MARKS / "quick.log", "a") as f:
            f.write(ctx.run_id + "\\n")

    @ductape.function("asleep")
    async def asleep(input, ctx):
        import asyncio
        (MARKS / f"{ctx.run_id}.{ctx.attempt}").touch()
        await asyncio.sleep(30)

    @ductape.function("exits")
    def exits(input, ctx):
        import sys
        sys.exit(0)

    @ductape.function("aexits")
    async def aexits(input, ctx):
        raise SystemExit(1)

    @ductape.function("interrupts")
    def interrupts(input, ctx):
        raise KeyboardInterrupt("from the function's own code")

    if __name__ == "__main__":
        import atexit
        atexit.register(lambda: (MARKS / "atexit").touch())
        ductape.worker()
        (MARKS / "after-worker").touch()
    """
)


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.store = f"sqlite:///{tmp / 'jobs.db'}"
        self.marks = tmp / "marks"
        self.marks.mkdir()
        (tmp / "app.py").write_text(APP)
        self.client = Ductape(self.store)
        for tag in ("slow", "quick", "asleep", "exits", "aexits", "interrupts"):
            self.client.job.create({"name": tag, "tag": tag, "event_type": "FUNCTION", "event_tag": tag})
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_worker(self, *, serve: bool = False, **env: str) -> subprocess.Popen[bytes]:
        """``app.py``'s ``ductape.worker()``, or with ``serve`` a ``ductape serve`` of its app (API and worker)."""
        full = {**os.environ, "DUCTAPE_STORE": self.store, "MARKS": str(self.marks), **env}
        argv = [sys.executable, "app.py"]
        if serve:
            argv = [str(Path(sys.executable).parent / "ductape"), "serve", "--app", "app:ductape"]
            argv += ["--port", str(free_port())]
        proc = subprocess.Popen(argv, cwd=self.tmp, env=full, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def schedule(self, event: str, **extra: object) -> str:
        req = {"env": "test", "product_tag": "p", "event": event, **extra}
        return self.client.job.schedule(req).job_id

    def wait(self, what: str, cond: Callable[[], bool], seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; runs: {self.client.store.count_runs()}")

    def completed(self) -> int:
        return self.client.store.count_runs().get(RunPhase.COMPLETED, 0)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            if proc.stderr:
                proc.stderr.close()
        self.client.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.close()


def test_a_function_that_calls_sys_exit_fails_its_run_and_the_worker_goes_on(env: Env) -> None:
    """asyncio raises a task's SystemExit out of its event loop: a function calling ``sys.exit()`` stopped its
    worker (exit code 0) with the other runs in flight unrecorded, and its run, given back, stopped each worker that
    took it next. It is now a failed attempt, as any exception."""
    slow = env.schedule("slow", input={"first_attempt_sleeps": 1})
    worker = env.start_worker()
    env.wait("the slow run to start", lambda: bool(list(env.marks.glob("*.1"))))
    exits = [env.schedule("exits"), env.schedule("aexits"), env.schedule("interrupts")]
    env.wait("all three to fail", lambda: env.client.store.count_runs().get(RunPhase.FAILED, 0) == 3)
    raises = ("SystemExit(0)", "SystemExit(1)", 'KeyboardInterrupt("from the function\'s own code")')
    for job_id, raised in zip(exits, raises, strict=True):
        (run,) = env.client.job.runs(job_id=job_id)
        assert run.phase is RunPhase.FAILED and run.attempt == 1
        assert f"raised {raised}: a run cannot stop its worker" in (run.error or "")
    env.wait("the slow run to complete", lambda: env.completed() == 1)
    assert [r.attempt for r in env.client.job.runs(job_id=slow)] == [1]  # recorded by the worker that ran it, once
    assert worker.poll() is None  # still running


def test_sigkill_mid_run_the_run_is_rescued_and_nothing_is_lost(env: Env) -> None:
    quick = [env.schedule("quick") for _ in range(30)]
    slow = env.schedule("slow", input={"first_attempt_sleeps": 3600})
    a = env.start_worker(LEASE="1.5")
    env.wait("the slow run to start", lambda: bool(list(env.marks.glob("*.1"))))
    env.wait("the quick runs to complete", lambda: env.completed() == 30)
    a.send_signal(signal.SIGKILL)
    assert a.wait(10) == -signal.SIGKILL
    quick += [env.schedule("quick") for _ in range(30)]  # scheduled while no worker runs
    (slow_run,) = env.client.job.runs(job_id=slow)
    assert slow_run.phase is RunPhase.RUNNING  # the dead worker still holds it

    env.start_worker(LEASE="1.5")
    env.wait("every run to complete", lambda: env.completed() == 61)
    done = env.client.job.run(slow_run.id)
    assert done.phase is RunPhase.COMPLETED and done.output == {"attempt": 2}
    assert [a.outcome for a in done.attempts] == ["lost", "completed"]
    assert done.attempts[0].worker_id != done.attempts[1].worker_id
    lines = (env.marks / "quick.log").read_text().split()
    assert len(lines) == 60 and len(set(lines)) == 60  # each quick run ran exactly once
    assert {r.job_id for r in env.client.job.runs(job_tag="quick", limit=1000)} == set(quick)


def test_a_run_its_schedule_cancelled_whose_worker_is_killed_is_not_run_again(env: Env) -> None:
    """Cancelled while it ran, then its worker SIGKILLed: the next worker's rescue ends the run ``cancelled``
    (its attempt ``lost``) and never starts it again; it queued it, and the cancelled schedule ran a second time."""
    job_id = env.schedule("slow", input={"first_attempt_sleeps": 3600})
    a = env.start_worker(LEASE="1.5")
    env.wait("the slow run to start", lambda: bool(list(env.marks.glob("*.1"))))
    env.client.job.cancel(job_id, reason="not wanted")
    a.send_signal(signal.SIGKILL)
    assert a.wait(10) == -signal.SIGKILL
    (run,) = env.client.job.runs(job_id=job_id)
    assert run.phase is RunPhase.RUNNING  # the dead worker still holds it

    b = env.start_worker(LEASE="1.5")
    env.wait("the rescue to end it", lambda: env.client.job.run(run.id).phase is not RunPhase.RUNNING)
    quick = env.schedule("quick")  # a run after the rescue's pass: the worker went on claiming
    env.wait("the quick run to complete", lambda: env.completed() == 1)
    ended = env.client.job.run(run.id)
    assert (ended.phase, ended.error) == (RunPhase.CANCELLED, "cancelled: not wanted")
    assert [x.outcome for x in ended.attempts] == ["lost"]
    assert sorted(p.name for p in env.marks.glob(f"{run.id}.*")) == [f"{run.id}.1"]  # never started again
    assert env.client.job.runs(job_id=quick)[0].phase is RunPhase.COMPLETED
    b.send_signal(signal.SIGTERM)
    assert b.wait(15) == 0
    assert b.stderr is not None and b"not run again: their schedule was cancelled" in b.stderr.read()


def test_restart_after_downtime_fires_missed_occurrences_once(env: Env) -> None:
    job_id = env.schedule("quick", repeat={"every": 400})  # misfire: run_once (the default)
    a = env.start_worker()
    env.wait("a few occurrences", lambda: len(env.client.job.runs(job_id=job_id)) >= 4)
    a.send_signal(signal.SIGTERM)
    assert a.wait(10) == 0
    stopped = datetime.now(UTC)
    time.sleep(2.5)  # the engine is down for ~6 occurrences
    restarted = datetime.now(UTC)
    env.start_worker()
    env.wait(  # the coalesced run and two after it have finished (a slow start under load makes the coalesced
        "the schedule to carry on",  # one late: a run due soon after the restart may be that one)
        lambda: (
            sum(r.scheduled_at > stopped and r.phase is RunPhase.COMPLETED for r in env.client.job.runs(job_id=job_id))
            >= 3
        ),
    )
    runs = sorted(env.client.job.runs(job_id=job_id, limit=1000), key=lambda r: r.scheduled_at)
    before = [r for r in runs if r.scheduled_at <= stopped]
    after = [r for r in runs if r.scheduled_at > stopped]
    assert all(r.phase is RunPhase.COMPLETED for r in before)
    # None of the ~6 occurrences of the downtime ran on its own: one run (coalesced) was due before the
    # restarted worker's first claim; it sits on the schedule's grid, long after the last run before the stop ...
    first_claim = after[0].started_at
    assert first_claim is not None
    assert [r.id for r in after if r.scheduled_at <= first_claim] == [after[0].id], [r.scheduled_at for r in runs]
    assert not [r for r in runs if stopped < r.scheduled_at <= restarted - timedelta(milliseconds=400)]
    grid = timedelta(milliseconds=400)
    assert all((r.scheduled_at - runs[0].scheduled_at) % grid == timedelta(0) for r in runs)
    assert after[0].scheduled_at - before[-1].scheduled_at >= timedelta(seconds=2)
    # ... and the schedule carries on at its cadence.
    gaps = {b.scheduled_at - a.scheduled_at for a, b in itertools.pairwise(after)}
    assert gaps == {grid}


def test_sigterm_lets_in_flight_runs_finish(env: Env) -> None:
    job_id = env.schedule("slow", input={"first_attempt_sleeps": 1.0})
    a = env.start_worker()
    env.wait("the run to start", lambda: bool(list(env.marks.glob("*.1"))))
    a.send_signal(signal.SIGTERM)
    assert a.wait(15) == 0
    (run,) = env.client.job.runs(job_id=job_id)
    assert run.phase is RunPhase.COMPLETED and run.output == {"attempt": 1}


def test_sigterm_past_the_grace_period_releases_the_run(env: Env) -> None:
    job_id = env.schedule("slow", input={"first_attempt_sleeps": 30})
    a = env.start_worker(SHUTDOWN_GRACE="0.3")
    env.wait("the run to start", lambda: bool(list(env.marks.glob("*.1"))))
    a.send_signal(signal.SIGTERM)
    assert a.wait(15) == 0
    (run,) = env.client.job.runs(job_id=job_id)
    assert run.phase is RunPhase.QUEUED and run.lease_owner is None
    assert [a.outcome for a in env.client.job.run(run.id).attempts] == ["released"]
    env.start_worker()
    env.wait("another worker to finish it", lambda: env.client.job.run(run.id).phase is RunPhase.COMPLETED)
    assert env.client.job.run(run.id).output == {"attempt": 2}


@pytest.mark.parametrize("serve", [False, True])
def test_a_second_sigterm_gives_the_runs_in_flight_back_at_once(env: Env, serve: bool) -> None:
    """The first signal waits for the run (the grace is 30 s); a second one (Ctrl-C twice, a supervisor's repeated
    TERM) was ignored, so the only way out sooner was SIGKILL, and a rescue after the lease."""
    job_id = env.schedule("asleep")
    a = env.start_worker(serve=serve)
    env.wait("the run to start", lambda: bool(list(env.marks.glob("*.1"))))
    a.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        a.wait(1)  # within its grace: still waiting for the run
    a.send_signal(signal.SIGTERM)
    assert a.wait(10) == 0
    (run,) = env.client.job.runs(job_id=job_id)
    assert run.phase is RunPhase.QUEUED and run.lease_owner is None
    assert [a.outcome for a in env.client.job.run(run.id).attempts] == ["released"]
    assert a.stderr is not None and b"again: giving the runs in flight back to the queue now" in a.stderr.read()


def test_a_stop_that_leaves_no_code_in_a_thread_returns_from_worker_and_runs_atexit(env: Env) -> None:
    """An async run past the grace is cancelled and given back, and nothing of it runs on: the process exited at
    once anyway (os._exit), skipping the code after ``worker()`` and atexit (a tracing exporter's flush). A sync
    function's thread cannot be stopped: that one still exits at once, saying so."""
    env.schedule("asleep")
    a = env.start_worker(SHUTDOWN_GRACE="0.3")
    env.wait("the run to start", lambda: bool(list(env.marks.glob("*.1"))))
    a.send_signal(signal.SIGTERM)
    assert a.wait(15) == 0
    assert (env.marks / "after-worker").exists() and (env.marks / "atexit").exists()
    assert a.stderr is not None and b"still executing in threads" not in a.stderr.read()

    for mark in ("after-worker", "atexit"):
        (env.marks / mark).unlink()
    env.schedule("slow", input={"first_attempt_sleeps": 30})
    b = env.start_worker(SHUTDOWN_GRACE="0.3")
    env.wait("the sync run to start", lambda: len(list(env.marks.glob("*.1"))) == 2)
    b.send_signal(signal.SIGTERM)
    assert b.wait(15) == 0
    assert not (env.marks / "after-worker").exists()
    assert b.stderr is not None and b"exiting with 1 run(s) still executing in threads" in b.stderr.read()
