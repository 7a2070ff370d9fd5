"""Limits across real worker processes on one PostgreSQL schema (issue 14's proof): a concurrency limit shared by
three jobs and four workers, a rate over ten seconds, a SIGKILLed worker's slot freed after its lease, and
priorities ordering a backlog. Each worker is ``python app.py`` running ``ductape.worker()``; its function logs
its own start and end (wall clock) to a file per process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from storekit import PG_URL, postgres_backend

from ductape_jobs import Ductape, RunPhase
from ductape_jobs.products import Products

pytestmark = pytest.mark.slow

PRODUCT: dict[str, Any] = {
    "tag": "shop",
    "envs": ["prd"],
    "resources": {"crm-api": {"concurrency": 2}, "feed": {"rate": "20/s"}},
}

APP = textwrap.dedent(
    """
    import json, os, pathlib, time
    from datetime import timedelta
    from ductape_jobs import Ductape
    from ductape_jobs.products import Products

    ductape = Ductape(
        os.environ["DUCTAPE_STORE"],
        products=Products([json.loads(os.environ["PRODUCT"])]),
        lease=timedelta(seconds=float(os.environ.get("LEASE", "30"))),
        poll=timedelta(milliseconds=50),
        concurrency=8,
    )
    LOG = pathlib.Path(os.environ["MARKS"]) / f"ran.{os.getpid()}.log"

    @ductape.function("work")
    def work(input, ctx):
        start = time.time()
        time.sleep(float(input.get("seconds", 0)))
        with open(LOG, "a") as f:
            f.write(f"{ctx.run_id} {start} {time.time()} {input.get('n', '')}\\n")

    if __name__ == "__main__":
        ductape.worker(rescue_every=timedelta(milliseconds=200))
    """
)


class Cluster:
    def __init__(self, tmp: Path, url: str, schema: str) -> None:
        self.tmp, self.url, self.schema = tmp, url, schema
        self.marks = tmp / "marks"
        self.marks.mkdir()
        (tmp / "app.py").write_text(APP)
        self.client = Ductape(url, products=Products([PRODUCT]))  # type: ignore[list-item]
        self.procs: list[subprocess.Popen[bytes]] = []

    def job(self, tag: str, **extra: Any) -> None:
        self.client.product("shop").jobs.create(
            {"name": tag, "tag": tag, "event_type": "FUNCTION", "event_tag": "work", **extra}
        )

    def schedule(self, tag: str, n: int, **extra: Any) -> None:
        reqs = [{"env": "prd", "product_tag": "shop", "event": tag, **extra} for _ in range(n)]
        self.client.job.schedule_many(reqs)

    def start_workers(self, n: int, **env: str) -> list[subprocess.Popen[bytes]]:
        full = {**os.environ, "DUCTAPE_STORE": self.url, "MARKS": str(self.marks), "PRODUCT": json.dumps(PRODUCT)}
        started = []
        for _ in range(n):
            log = open(self.tmp / f"worker{len(self.procs)}.err", "wb")  # noqa: SIM115 (closed with the process)
            proc = subprocess.Popen([sys.executable, "app.py"], cwd=self.tmp, env={**full, **env}, stderr=log)
            log.close()
            self.procs.append(proc)
            started.append(proc)
        return started

    def wait(self, what: str, cond: Callable[[], bool], seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cond():
                return
            for i, proc in enumerate(self.procs):
                err = (self.tmp / f"worker{i}.err").read_text(errors="replace")[-3000:]
                assert proc.poll() is None or proc.returncode in (0, -signal.SIGKILL), err
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; runs: {self.client.store.count_runs()}")

    def listening(self) -> int:
        """Workers listening for changes: started up, and woken by the schedule's NOTIFY."""
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'LISTEN%%'",
                [self.schema],
            ).fetchone()
        return int(row[0]) if row else 0

    def completed(self) -> int:
        return self.client.store.count_runs().get(RunPhase.COMPLETED, 0)

    def spans(self) -> list[tuple[str, float, float, str]]:
        """(run id, start, end, n) of every run a function finished, from the workers' logs."""
        out = []
        for path in sorted(self.marks.glob("ran.*.log")):
            for line in path.read_text().splitlines():
                run_id, start, end, *n = line.split()
                out.append((run_id, float(start), float(end), n[0] if n else ""))
        return out

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        self.client.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with postgres_backend() as backend:
        c = Cluster(tmp_path, backend.url, backend.schema or "")
        try:
            yield c
        finally:
            c.close()


def most_at_once(spans: list[tuple[str, float, float, str]]) -> int:
    events = sorted([(s, 1) for _, s, _, _ in spans] + [(e, -1) for _, _, e, _ in spans], key=lambda x: (x[0], x[1]))
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def test_a_concurrency_of_2_over_3_jobs_and_4_workers_never_runs_more_than_2(cluster: Cluster) -> None:
    for tag in ("sync-a", "sync-b", "sync-c"):
        cluster.job(tag, resources=["crm-api"])
        cluster.schedule(tag, 10, input={"seconds": 0.15})
    cluster.start_workers(4)
    cluster.wait("every run to complete", lambda: cluster.completed() == 30)
    spans = cluster.spans()
    assert len(spans) == 30 and len({s[0] for s in spans}) == 30
    assert most_at_once(spans) == 2  # never more, and the limit is used
    elapsed = max(e for _, _, e, _ in spans) - min(s for _, s, _, _ in spans)
    assert elapsed < 30 * 0.15 / 2 * 2  # within twice the ideal 2.25 s: slots are reused promptly


def test_a_rate_of_20_per_second_over_10_seconds_starts_200(cluster: Cluster) -> None:
    cluster.job("ping", resources=["feed"])
    cluster.start_workers(4)
    cluster.wait("4 workers to listen", lambda: cluster.listening() >= 4)  # none still starting up
    cluster.schedule("ping", 300)
    cluster.wait("eleven seconds of runs", lambda: cluster.completed() >= 230)
    runs = cluster.client.job.runs(job_tag="ping", limit=1000)
    starts = sorted(r.started_at for r in runs if r.started_at is not None)
    first = starts[0]
    in_ten = [s for s in starts if s < first + timedelta(seconds=10)]
    per_second = [
        sum(1 for s in starts if first + timedelta(seconds=k) <= s < first + timedelta(seconds=k + 1))
        for k in range(12)
    ]
    assert 198 <= len(in_ten) <= 202, (len(in_ten), per_second)
    for i, s in enumerate(starts):  # any window of one second, from each start
        assert sum(1 for t in starts[i:] if t < s + timedelta(seconds=1)) <= 20, s


def test_a_sigkilled_worker_s_slot_is_freed_after_its_lease(cluster: Cluster) -> None:
    cluster.job("hold", resources=["crm-api"])
    cluster.schedule("hold", 2, input={"seconds": 3600})  # both slots, held by one worker
    (doomed,) = cluster.start_workers(1, LEASE="2")
    cluster.wait("both slots taken", lambda: cluster.client.store.count_runs().get(RunPhase.RUNNING, 0) == 2)
    cluster.schedule("hold", 2, input={"seconds": 0})
    time.sleep(0.5)
    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait(10) == -signal.SIGKILL
    killed_at = datetime.now().astimezone()
    cluster.start_workers(1, LEASE="2")
    cluster.wait("the queued runs to complete", lambda: cluster.completed() >= 2, seconds=30)
    runs = cluster.client.job.runs(job_tag="hold", limit=10)
    quick = [r for r in runs if r.input == {"seconds": 0}]
    assert all(r.phase is RunPhase.COMPLETED for r in quick)
    # they started only once the dead worker's lease ran out and the rescue freed its slots
    assert all(r.started_at is not None and r.started_at > killed_at for r in quick)
    lost = [r for r in runs if r.input == {"seconds": 3600}]
    assert all(r.attempt >= 1 for r in lost)


def test_priorities_order_a_backlog(cluster: Cluster) -> None:
    cluster.job("batch", concurrency=1)  # one at a time: the order is the claim order
    cluster.schedule("batch", 5, priority=-5, input={"n": "low"})
    cluster.schedule("batch", 5, input={"n": "normal"})
    cluster.schedule("batch", 5, priority=20, input={"n": "high"})
    cluster.start_workers(2)
    cluster.wait("every run to complete", lambda: cluster.completed() == 15)
    order = [n for _, _, _, n in sorted(cluster.spans(), key=lambda s: s[1])]
    assert order == ["high"] * 5 + ["normal"] * 5 + ["low"] * 5
