"""Worker processes on one PostgreSQL schema (several "machines"): each run once, a killed worker's run rescued."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from storekit import Backend, postgres_backend

from ductape_jobs import Ductape, RunPhase

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
        concurrency=8,
    )
    MARKS = pathlib.Path(os.environ["MARKS"])

    @ductape.function("quick")
    def quick(input, ctx):
        with open(MARKS / "quick.log", "a") as f:
            f.write(f"{os.getpid()} {ctx.run_id} {ctx.scheduled_at.isoformat()}\\n")

    @ductape.function("slow")
    def slow(input, ctx):
        (MARKS / f"slow.{ctx.attempt}").touch()
        if ctx.attempt == 1:
            time.sleep(3600)
        return {"attempt": ctx.attempt}

    if __name__ == "__main__":
        ductape.worker(rescue_every=timedelta(milliseconds=200))
    """
)


class Cluster:
    def __init__(self, tmp: Path, backend: Backend) -> None:
        self.tmp = tmp
        self.url = backend.url
        self.marks = tmp / "marks"
        self.marks.mkdir()
        (tmp / "app.py").write_text(APP)
        self.client = Ductape(self.url)
        for tag in ("quick", "slow"):
            self.client.job.create({"name": tag, "tag": tag, "event_type": "FUNCTION", "event_tag": tag})
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        full = {**os.environ, "DUCTAPE_STORE": self.url, "MARKS": str(self.marks), **env}
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=self.tmp, env=full, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def wait(self, what: str, cond: Callable[[], bool], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; runs: {self.client.store.count_runs()}")

    def completed(self) -> int:
        return self.client.store.count_runs().get(RunPhase.COMPLETED, 0)

    def quick_log(self) -> list[list[str]]:
        path = self.marks / "quick.log"
        return [line.split() for line in path.read_text().splitlines()] if path.exists() else []

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stderr:
                proc.stderr.close()

    def close(self) -> None:
        self.stop()
        self.client.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with postgres_backend() as backend:
        c = Cluster(tmp_path, backend)
        try:
            yield c
        finally:
            c.close()


def test_worker_processes_share_runs_and_occurrences_each_once(cluster: Cluster) -> None:
    req = {"env": "test", "product_tag": "p", "event": "quick"}
    cluster.client.job.schedule_many([req] * 300)
    recurring = cluster.client.job.schedule({**req, "repeat": {"every": 250, "limit": 8}}).job_id
    workers = [cluster.start_worker() for _ in range(3)]
    cluster.wait("every run to complete", lambda: cluster.completed() == 308)
    cluster.stop()
    assert [w.returncode for w in workers] == [0, 0, 0]

    log = cluster.quick_log()
    run_ids = [line[1] for line in log]
    assert len(run_ids) == 308 and len(set(run_ids)) == 308  # each run ran exactly once
    assert len({line[0] for line in log}) >= 2, "the work should be shared between processes"
    occurrences = [r.scheduled_at for r in cluster.client.job.runs(job_id=recurring)]
    assert len(occurrences) == 8 and len(set(occurrences)) == 8  # three schedulers: each occurrence once


def test_a_killed_workers_run_is_rescued_by_another_process(cluster: Cluster) -> None:
    slow = cluster.client.job.schedule({"env": "test", "product_tag": "p", "event": "slow"}).job_id
    first = cluster.start_worker(LEASE="1")
    cluster.wait("the slow run to start", lambda: (cluster.marks / "slow.1").exists())
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    cluster.start_worker(LEASE="1")
    cluster.wait("the slow run to be rescued and complete", lambda: cluster.completed() == 1)
    (run,) = cluster.client.job.runs(job_id=slow)
    done = cluster.client.job.run(run.id)
    assert done.output == {"attempt": 2}
    assert [a.outcome for a in done.attempts] == ["lost", "completed"]
    assert done.attempts[0].worker_id != done.attempts[1].worker_id
