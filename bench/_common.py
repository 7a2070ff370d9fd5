"""What the benchmark scripts share: the store (fresh per phase), real worker processes with their RSS sampled,
the jobs' own record of what ran, percentiles, and a line naming the machine.

The definitions mirror ``../shared/peerbench/harness.py`` so that figures can be set beside peerbench's.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

import _job
from ductape_jobs import Ductape

BENCH = Path(__file__).resolve().parent
PG_PREFIXES = ("postgresql://", "postgres://")


# --------------------------------------------------------------------------------------------- machine


def machine() -> str:
    """``nproc``, the CPU model, RAM, Python and SQLite: printed first, so a figure always names its machine."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "?"
    ram = psutil.virtual_memory().total / 2**30
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cpu ({model}), {ram:.0f} GiB RAM, {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; load average {load}"
    )


# ----------------------------------------------------------------------------------------------- store


class Store:
    """The store URL under test: a temporary SQLite file by default, or a PostgreSQL URL whose ``schema`` is dropped
    and created again by ``reset()`` (so each phase starts clean, as peerbench's fresh database does)."""

    def __init__(self, url: str | None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="ductape-bench-")
        self.url = url or f"sqlite:///{self.tmp.name}/bench.db"
        self.is_pg = self.url.startswith(PG_PREFIXES)
        if self.is_pg:
            from ductape_jobs.store.postgres.connection import check_schema, split_url

            self.conninfo, options = split_url(self.url)
            if "schema" not in options:
                raise SystemExit("give the PostgreSQL URL a schema (?schema=bench): it is dropped and created again")
            self.schema = check_schema(options["schema"])

    @property
    def label(self) -> str:
        return "PostgreSQL" if self.is_pg else "SQLite"

    def reset(self) -> None:
        if self.is_pg:
            import psycopg
            from psycopg import sql

            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
        else:
            path = self.url.removeprefix("sqlite:///")
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)

    def fresh(self) -> Ductape:
        """Reset, then open a client and create the job (migrations and setup, untimed, as in peerbench)."""
        self.reset()
        dt = _job.make_app(self.url)
        dt.job.create(_job.JOB)
        return dt

    def close(self) -> None:
        self.tmp.cleanup()


# --------------------------------------------------------------------------------------------- records


@dataclass
class Records:
    """What the jobs wrote (``_job.noop``): one line per run start, read incrementally from every worker's file."""

    path: Path
    count: int = 0
    seen: set[int] = field(default_factory=set)
    first: float | None = None
    last: float | None = None
    ready: float | None = None
    lateness_ms: list[float] = field(default_factory=list)
    _offsets: dict[str, int] = field(default_factory=dict)

    def scan(self) -> None:
        for f in self.path.glob("*.rec"):
            with f.open("rb") as fh:
                fh.seek(self._offsets.get(f.name, 0))
                data = fh.read()
            end = data.rfind(b"\n") + 1
            self._offsets[f.name] = self._offsets.get(f.name, 0) + end
            for line in data[:end].splitlines():
                i_s, start_s, due_s = line.split()
                i, start, due = int(i_s), float(start_s), float(due_s)
                if i < 0:
                    self.ready = start if self.ready is None else min(self.ready, start)
                    continue
                self.count += 1
                self.seen.add(i)
                self.first = start if self.first is None else min(self.first, start)
                self.last = start if self.last is None else max(self.last, start)
                if due:
                    self.lateness_ms.append((start - due) * 1000)

    @property
    def distinct(self) -> int:
        return len(self.seen)


# --------------------------------------------------------------------------------------------- workers


def rss_tree(p: psutil.Process) -> tuple[int, int]:
    """RSS now and the kernel's peak RSS (``VmHWM``, Linux) summed over ``p`` and its children, in bytes."""
    now = peak = 0
    try:
        tree = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for q in tree:
        try:
            now += q.memory_info().rss
            for line in Path(f"/proc/{q.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) * 1024
        except (psutil.Error, OSError):
            pass
    return now, peak


def cpu_tree(p: psutil.Process) -> float:
    """CPU seconds (user + system) spent so far by ``p`` and its children."""
    total = 0.0
    try:
        tree = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for q in tree:
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class Workers:
    """``count`` real ``ductape worker --app _job:app`` processes, each in its own session, with the RSS of their
    process trees sampled every ``sample`` seconds (peerbench: the largest sum over all trees, every 0.2 s), and
    their CPU seconds (``cpu_between``: a figure that other processes' load moves far less than a rate)."""

    def __init__(self, store: Store, count: int, extra: list[str], *, sample: float = 0.2, name: str = "w") -> None:
        self.records = Records(Path(tempfile.mkdtemp(prefix="rec-", dir=store.tmp.name)))
        self.log: IO[str] = open(Path(store.tmp.name) / f"{name}.log", "w")  # noqa: SIM115 - closed by stop()
        env = {**os.environ, _job.STORE_ENV: store.url, _job.RECORDS_ENV: str(self.records.path)}
        env["PYTHONUNBUFFERED"] = "1"
        exe = shutil.which("ductape", path=str(Path(sys.executable).parent)) or shutil.which("ductape")
        if exe is None:
            raise SystemExit("no `ductape` command: install the project (make .venv/.installed)")
        cmd = [exe, "worker", "--app", "_job:app", *extra]
        self.t_spawn = time.time()
        self.procs = [
            subprocess.Popen(cmd, cwd=BENCH, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
            for _ in range(count)
        ]
        self.peak_rss = 0
        self.rss = 0
        self.cpu: list[tuple[float, float]] = []  # (time.time(), CPU seconds of every worker tree so far)
        self._sample = sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sampler, daemon=True)
        self._thread.start()

    def _sampler(self) -> None:
        ps = [psutil.Process(p.pid) for p in self.procs]
        while not self._stop.is_set():
            self.rss = sum(rss_tree(p)[0] for p in ps)
            self.peak_rss = max(self.peak_rss, self.rss)
            self.cpu.append((time.time(), sum(cpu_tree(p) for p in ps)))
            self._stop.wait(self._sample)

    def cpu_between(self, t0: float, t1: float) -> float | None:
        """The workers' CPU seconds from the last sample at or before ``t0`` to the first at or after ``t1``."""
        before = [c for t, c in self.cpu if t <= t0]
        after = [c for t, c in self.cpu if t >= t1]
        return after[0] - before[-1] if before and after else None

    def hwm(self) -> int:
        """The kernel's peak RSS of every worker tree so far (a peak the sampler may have missed)."""
        return sum(rss_tree(psutil.Process(p.pid))[1] for p in self.procs if p.poll() is None)

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def wait_for(self, n: int, timeout: float, poll: float = 0.02) -> tuple[float, bool]:
        """Poll the records every 20 ms until ``n`` distinct runs started: (the time it happened, timed out?)."""
        end = time.time() + timeout
        while time.time() < end:
            self.records.scan()
            if self.records.distinct >= n:
                return time.time(), False
            if not self.alive():
                print("  all worker processes exited early; see", self.log.name, file=sys.stderr)
                break
            time.sleep(poll)
        return time.time(), True

    def wait_ready(self, timeout: float = 60) -> float | None:
        """Wait until a probe (``i < 0``) ran; the time it started."""
        end = time.time() + timeout
        while time.time() < end and self.alive():
            self.records.scan()
            if self.records.ready is not None:
                return self.records.ready
            time.sleep(0.02)
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for p in self.procs:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.time() + 10
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()


def worker_args(concurrency: int | None, poll: float | None) -> list[str]:
    """``ductape worker`` options; none given means the project's defaults (as peerbench runs it)."""
    out = ["--concurrency", str(concurrency)] if concurrency else []
    return out + (["--poll", str(poll)] if poll else [])


# ------------------------------------------------------------------------------------------------ maths


def pct(ordered: list[float], q: float) -> float:
    """The ``q``th percentile of sorted values, by peerbench's rule (nearest rank)."""
    k = max(0, min(len(ordered) - 1, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[k]


def due_ms(epoch_s: float) -> int:
    """A due time as whole Unix milliseconds (what the store keeps), never before ``epoch_s``."""
    return math.ceil(epoch_s * 1000)


def check(records: Records, expected: int, timed_out: bool) -> str:
    """Did every job run exactly once? lost = expected - distinct jobs started, doubled = starts - distinct."""
    lost, doubled = expected - records.distinct, records.count - records.distinct
    ok = "OK" if lost == doubled == 0 else "MISMATCH"
    late = " (TIMED OUT)" if timed_out else ""
    counts = f"{records.count:,} starts, {records.distinct:,} distinct"
    return f"  check: {counts}: lost {lost}, doubled {doubled} -> {ok}{late}"


def describe_workers(count: int, concurrency: int | None, poll: float | None) -> str:
    return f"{count} x `ductape worker` {' '.join(worker_args(concurrency, poll)) or '(defaults)'}"
