"""Worker processes on one PostgreSQL schema (several "machines"): every occurrence once, a SIGKILLed worker's runs
rescued, a database restart survived, racing schedulers, and idle workers woken by NOTIFY.

Each worker is ``python app.py`` (a small app written to the test's folder) running ``ductape.worker()``; its
functions log what they ran to a file per process, which the tests compare with the runs in the database.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from storekit import PG_URL, postgres_backend

from ductape_jobs import Ductape, FakeClock, RunPhase

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os, pathlib, time
    from datetime import timedelta
    from ductape_jobs import Ductape

    ductape = Ductape(
        os.environ["DUCTAPE_STORE"],
        lease=timedelta(seconds=float(os.environ.get("LEASE", "30"))),
        poll=timedelta(milliseconds=float(os.environ.get("POLL_MS", "50"))),
        concurrency=int(os.environ.get("CONCURRENCY", "8")),
    )
    LOG = pathlib.Path(os.environ["MARKS"]) / f"ran.{os.getpid()}.log"

    def mark(word, ctx):
        with open(LOG, "a") as f:
            f.write(f"{word} {os.getpid()} {ctx.run_id} {ctx.job_id} {ctx.scheduled_at.isoformat()} {ctx.attempt}\\n")

    @ductape.function("quick")
    def quick(input, ctx):
        mark("ran", ctx)

    @ductape.function("sleepy")
    def sleepy(input, ctx):
        mark("start", ctx)
        time.sleep(float(input.get("seconds", 0.5)))
        mark("ran", ctx)

    if __name__ == "__main__":
        ahead = {"ahead": float(os.environ["AHEAD"])} if "AHEAD" in os.environ else {}
        ductape.worker(rescue_every=timedelta(milliseconds=200), **ahead)
    """
)


class Line:
    def __init__(self, text: str) -> None:
        self.word, pid, self.run_id, self.job_id, due, attempt = text.split()
        self.pid = int(pid)
        self.due = datetime.fromisoformat(due)
        self.attempt = int(attempt)


class Cluster:
    """Worker processes on one database, a client in this process, and what their functions logged."""

    def __init__(self, tmp: Path, url: str, schema: str, admin_url: str = PG_URL) -> None:
        self.tmp = tmp
        self.url = url
        self.schema = schema
        self.admin_url = admin_url
        self.marks = tmp / "marks"
        self.marks.mkdir()
        (tmp / "app.py").write_text(APP)
        self.client = Ductape(self.url)
        for tag in ("quick", "sleepy"):
            self.client.job.create({"name": tag, "tag": tag, "event_type": "FUNCTION", "event_tag": tag})
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        full = {**os.environ, "DUCTAPE_STORE": self.url, "MARKS": str(self.marks), **env}
        log = open(self.tmp / f"worker{len(self.procs)}.err", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=self.tmp, env=full, stderr=log)
        log.close()
        self.procs.append(proc)
        return proc

    def start_workers(self, n: int, **env: str) -> list[subprocess.Popen[bytes]]:
        """``n`` workers, returned once each listens for changes (so none misses a NOTIFY)."""
        procs = [self.start_worker(**env) for _ in range(n)]
        self.wait(f"{n} workers to listen", lambda: self.listening() >= n)
        return procs

    def listening(self) -> int:
        rows = self.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'LISTEN%%'",
            [self.schema],
        )
        return int(rows[0][0])

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def wait(self, what: str, cond: Callable[[], bool], seconds: float = 45) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cond():
                return
            for proc in self.procs:
                assert proc.poll() is None or proc.returncode in (0, -signal.SIGKILL), self.stderr(proc)[-3000:]
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; runs: {self.client.store.count_runs()}")

    def stderr(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.tmp / f"worker{self.procs.index(proc)}.err").read_text(errors="replace")

    def completed(self) -> int:
        return self.client.store.count_runs().get(RunPhase.COMPLETED, 0)

    def lines(self, word: str = "ran") -> list[Line]:
        found = [Line(t) for path in sorted(self.marks.glob("ran.*.log")) for t in path.read_text().splitlines()]
        return [line for line in found if line.word == word]

    def runs(self) -> list[tuple[str, str, datetime, str]]:
        """(run id, schedule id, due time, phase) of every run, from the database."""
        rows = self.sql(f"SELECT id, schedule_id, scheduled_at, phase FROM {self.schema}.runs")
        return [(r[0], r[1], datetime.fromtimestamp(r[2] / 1000, UTC), r[3]) for r in rows]

    def attempts(self) -> dict[str, list[tuple[str, str]]]:
        """Run id -> its attempts' (worker id, outcome), in order."""
        rows = self.sql(f"SELECT run_id, worker_id, outcome FROM {self.schema}.attempts ORDER BY run_id, attempt")
        found: dict[str, list[tuple[str, str]]] = {}
        for run_id, worker_id, outcome in rows:
            found.setdefault(run_id, []).append((worker_id, outcome))
        return found

    def stop(self) -> list[int | None]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return [proc.returncode for proc in self.procs]

    def close(self) -> None:
        self.stop()
        self.client.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with postgres_backend() as backend:
        assert backend.schema is not None
        c = Cluster(tmp_path, backend.url, backend.schema)
        try:
            yield c
        finally:
            c.close()


REQ = {"env": "test", "product_tag": "p"}


def test_three_workers_run_every_job_and_every_occurrence_exactly_once(cluster: Cluster) -> None:
    workers = cluster.start_workers(3, CONCURRENCY="50")
    start = cluster.client.clock.now() + timedelta(seconds=1)
    recurring = cluster.client.job.schedule_many(
        [
            {**REQ, "event": "quick", "start_at": start, "misfire": "run_all", "repeat": {"every": every, "limit": 10}}
            for every in (200 + (300 * i) // 49 for i in range(50))  # every 200 ms ... 500 ms
        ]
    )
    for _ in range(4):
        cluster.client.job.schedule_many([{**REQ, "event": "quick"}] * 500)
    total = 2_000 + 50 * 10
    cluster.wait("every run to complete", lambda: cluster.completed() == total)
    time.sleep(0.5)  # nothing more turns up
    assert cluster.stop() == [0, 0, 0]
    assert all(w.returncode == 0 for w in workers)

    runs = cluster.runs()
    assert len(runs) == total and {r[3] for r in runs} == {"completed"}
    ran = cluster.lines()
    assert sorted(line.run_id for line in ran) == sorted(r[0] for r in runs)  # each run ran, and once
    assert len({line.pid for line in ran}) == 3, "the work should be shared by the three processes"
    due = Counter((r[1], r[2]) for r in runs)
    assert max(due.values()) == 1  # no occurrence twice
    for s in recurring:  # and none missing: exactly the ten due times of each schedule
        sched = cluster.client.job.get(s.job_id)
        assert sched.every is not None
        expected = {(s.job_id, sched.start_at + sched.every * k) for k in range(10)}
        assert {key for key in due if key[0] == s.job_id} == expected
    assert {line.attempt for line in ran} == {1}


def pid_of(worker_id: str) -> int:
    return int(worker_id.split(":")[-2])  # host:pid:suffix


def test_a_sigkilled_workers_runs_complete_on_the_others_and_only_its_attempts_repeat(cluster: Cluster) -> None:
    workers = cluster.start_workers(3, CONCURRENCY="4", LEASE="3")
    victim = workers[0]
    n = 60
    cluster.client.job.schedule_many([{**REQ, "event": "sleepy", "input": {"seconds": 0.4}}] * n)

    def victim_busy() -> bool:
        started = {line.run_id for line in cluster.lines("start") if line.pid == victim.pid}
        return len(started - {line.run_id for line in cluster.lines() if line.pid == victim.pid}) >= 2

    cluster.wait("the victim to hold runs", victim_busy)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    cluster.wait("every run to complete on the others", lambda: cluster.completed() == n)
    assert cluster.stop()[1:] == [0, 0]

    attempts = cluster.attempts()
    assert len(attempts) == n
    repeated = {run_id for run_id, tries in attempts.items() if len(tries) > 1}
    for run_id, tries in attempts.items():
        outcomes = [outcome for _, outcome in tries]
        if run_id in repeated:  # an attempt in flight when the victim died: lost, then completed by another
            assert outcomes == ["lost", "completed"], (run_id, tries)
            assert pid_of(tries[0][0]) == victim.pid != pid_of(tries[1][0]), (run_id, tries)
        else:
            assert outcomes == ["completed"], (run_id, tries)

    # The functions: the survivors ran each run they completed once and nothing else; of what the victim had
    # started, exactly what it had not recorded (its lost attempts) ran again.
    survivors_ran = Counter(line.run_id for line in cluster.lines() if line.pid != victim.pid)
    assert survivors_ran == Counter(r for r, tries in attempts.items() if pid_of(tries[-1][0]) != victim.pid)
    victim_started = {line.run_id for line in cluster.lines("start") if line.pid == victim.pid}
    assert victim_started & set(survivors_ran) == victim_started & repeated
    assert victim_started & repeated, "the victim held runs when it died"


def test_a_worker_paused_past_its_lease_never_starts_the_run_it_claimed_ahead(cluster: Cluster) -> None:
    """A worker claims a run ahead of its due time and is paused (SIGSTOP) until after it: another worker rescues the
    run and completes it. Woken, the first started the function all the same (a probe: a second execution, begun
    after the run was recorded completed, or cancelled). It asks the store first now, and leaves the run."""
    (paused,) = cluster.start_workers(1, LEASE="1", AHEAD="1")
    due = datetime.now(UTC) + timedelta(seconds=2)
    job_id = cluster.client.job.schedule({**REQ, "event": "sleepy", "input": {"seconds": 0}, "start_at": due}).job_id

    def claimed() -> bool:
        return [r.phase for r in cluster.client.job.runs(job_id=job_id)] == [RunPhase.RUNNING]

    cluster.wait("the run claimed ahead", claimed)
    (run,) = cluster.client.job.runs(job_id=job_id)
    paused.send_signal(signal.SIGSTOP)
    try:
        assert datetime.now(UTC) < due - timedelta(milliseconds=200)  # claimed ahead: not started yet
        other = cluster.start_worker(LEASE="1")
        cluster.wait("the other worker to rescue and complete it", lambda: cluster.completed() == 1)
    finally:
        paused.send_signal(signal.SIGCONT)
    cluster.wait("the paused worker to leave it", lambda: "not started: its lease ran out" in cluster.stderr(paused))
    assert [line.pid for line in cluster.lines("start")] == [other.pid]  # started once, by the rescuer
    done = cluster.client.job.run(run.id)
    assert done.phase is RunPhase.COMPLETED and [a.outcome for a in done.attempts] == ["lost", "completed"]
    assert cluster.stop() == [0, 0]


def test_the_workers_ride_out_a_database_restart_and_run_every_job_once(tmp_path: Path) -> None:
    with private_postgres() as server:
        cluster = Cluster(tmp_path, server.url("jobs"), "jobs", admin_url=server.url(None))
        try:
            # pool_timeout=1: the workers' store calls fail within a second of the outage instead of waiting
            # for the database, as they would in a longer one: the loop must survive them and keep outcomes
            cluster.url = server.url("jobs") + "&pool_timeout=1"
            workers = cluster.start_workers(2, CONCURRENCY="10", LEASE="60")
            n = 200  # 0.2 s to 1.25 s each: some are still running when the database stops
            seconds = [0.2 + 0.15 * (i % 8) for i in range(n)]
            cluster.client.job.schedule_many([{**REQ, "event": "sleepy", "input": {"seconds": s}} for s in seconds])
            cluster.wait("runs to be under way", lambda: len(cluster.lines()) >= 30)
            server.ctl("stop", "-m", "fast")  # connections drop with runs in flight
            at_stop = len(cluster.lines())
            time.sleep(8)  # longer than a worker's retries of one store call: they give up and try again later
            finished_while_down = len(cluster.lines()) - at_stop  # their outcomes wait for the database
            server.ctl("start")
            assert [w.poll() for w in workers] == [None, None]
            cluster.wait("every run to complete after the restart", lambda: cluster.completed() == n, 50)
            assert cluster.stop() == [0, 0]

            assert at_stop < n and finished_while_down > 0
            # the outage reached the workers' loops: a pass or an outcomes' write failed there and was tried again
            # (which of the two depends on what each store thread was doing when the database stopped)
            failed = [
                e
                for w in workers
                for e in ("worker pass failed", "recording outcomes failed")
                if e in cluster.stderr(w)
            ]
            assert failed
            ran = Counter(line.run_id for line in cluster.lines())
            assert len(ran) == n and set(ran.values()) == {1}  # every job ran, none twice
        finally:
            cluster.close()


def test_two_schedulers_racing_a_cron_schedule_make_one_run_per_tick(cluster: Cluster) -> None:
    t0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    clocks = [FakeClock(t0 + timedelta(seconds=30)), FakeClock(t0 + timedelta(seconds=30))]
    nodes = [Ductape(cluster.url, clock=clock) for clock in clocks]
    try:
        ids = [
            s.job_id
            for s in nodes[0].job.schedule_many([{**REQ, "event": "quick", "repeat": {"cron": "* * * * *"}}] * 20)
        ]
        ticks = 40
        made: list[list[int]] = []
        for k in range(1, ticks + 1):
            for clock in clocks:  # in lockstep, onto each minute: every schedule has one occurrence due
                clock.set(t0 + timedelta(minutes=k))
            barrier = threading.Barrier(2)
            created = [0, 0]

            def tick(i: int, node: Ductape, barrier: threading.Barrier = barrier, created: list[int] = created) -> None:
                barrier.wait()
                created[i] = len(node.scheduler.tick(node.clock.now()))

            threads = [threading.Thread(target=tick, args=(i, node)) for i, node in enumerate(nodes)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            made.append(created)
        assert [sum(c) for c in made] == [20] * ticks  # every schedule's occurrence once per tick
        assert sum(c[0] for c in made) > 0 and sum(c[1] for c in made) > 0  # both schedulers took part
        runs = cluster.runs()
        assert len(runs) == 20 * ticks
        expected = {(i, t0 + timedelta(minutes=k)) for i in ids for k in range(1, ticks + 1)}
        assert {(r[1], r[2]) for r in runs} == expected
    finally:
        for node in nodes:
            node.close()


def test_an_idle_worker_process_starts_a_job_from_another_process_at_once(cluster: Cluster) -> None:
    cluster.start_workers(1, POLL_MS="5000")
    time.sleep(0.5)  # its first pass is over: it sleeps for the 5 s poll
    s = cluster.client.job.schedule({**REQ, "event": "quick"})
    cluster.wait("the run to complete", lambda: cluster.completed() == 1, 10)
    (run,) = cluster.client.job.runs(job_id=s.job_id)
    assert run.started_at is not None
    assert run.started_at - run.scheduled_at < timedelta(seconds=1)  # woken by NOTIFY, not the 5 s poll


# ------------------------------------------------------------------------------- a private PostgreSQL


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    return None


class PrivateServer:
    """A PostgreSQL cluster of this test's own (so the shared server is never stopped)."""

    def __init__(self, folder: Path, port: int, user: str | None) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = port
        self.user = user

    def url(self, schema: str | None) -> str:
        url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        return url if schema is None else f"{url}?schema={schema}&application_name={schema}"

    def ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        cmd = [_pg_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w"]
        cmd += [*args, "-o", options] if args[0] == "start" else list(args)
        subprocess.run(cmd, check=True, capture_output=True, user=self.user, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_postgres() -> Iterator[PrivateServer]:
    initdb = _pg_bin("initdb")
    if initdb is None or _pg_bin("pg_ctl") is None:
        reason = "PostgreSQL's initdb/pg_ctl are not installed (needed for a private cluster to restart)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI every service must be up", pytrace=False)
        pytest.skip(reason)
    user = None
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as the postgres user
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run a private cluster as")
    folder = Path(tempfile.mkdtemp(prefix="ductape-pg-"))  # not under pytest's root-only tmp folder
    if user is not None:
        shutil.chown(folder, user)
    server = PrivateServer(folder, _free_port(), user)
    try:
        subprocess.run(
            [initdb, "-U", "postgres", "--auth=trust", "-D", str(server.data)],
            check=True,
            capture_output=True,
            user=user,
            timeout=120,
        )
        server.ctl("start")
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            server.ctl("stop", "-m", "immediate")
        shutil.rmtree(folder, ignore_errors=True)
