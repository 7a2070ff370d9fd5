"""Throughput and lateness of ductape-jobs. A plain script: it prints figures, it asserts nothing about speed.

    python bench/throughput.py [--store URL] [-n 20000] [-m 2000] [--workers 1] [--concurrency 200]

1. Enqueue N immediate no-op FUNCTION jobs (``schedule_many`` in chunks; plus a sample of single
   ``schedule()`` calls) while worker processes run; time until every run completed. Checks: N runs
   completed, N attempts (no run ran twice).
2. Schedule M one-off jobs due over the next few seconds; lateness = start - due, p50/p95/p99/max in ms.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from typing import Any

from ductape_jobs import Ductape, RunContext, RunPhase


def noop(input: dict[str, Any], ctx: RunContext) -> None:
    return None


def make(store: str, concurrency: int) -> Ductape:
    dt = Ductape(store, concurrency=concurrency, poll=timedelta(milliseconds=50))
    dt.function("noop")(noop)
    return dt


def worker_main(store: str, concurrency: int) -> None:
    make(store, concurrency).worker()


def reset_schema(store: str) -> None:
    """A PostgreSQL URL's ``schema`` is dropped and created again, so each run starts clean."""
    if not store.startswith(("postgresql://", "postgres://")):
        return
    import psycopg
    from psycopg import sql

    from ductape_jobs.store.postgres.connection import check_schema, split_url

    conninfo, options = split_url(store)
    if "schema" not in options:
        raise SystemExit("give the PostgreSQL URL a schema (?schema=bench_x): it is dropped and created again")
    schema = check_schema(options["schema"])
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def wait_done(dt: Ductape, total: int, deadline: float) -> float:
    while time.perf_counter() < deadline:
        done = dt.job.runs(status=RunPhase.COMPLETED, offset=total - 1, limit=1)
        if done:
            return time.perf_counter()
        time.sleep(0.01)
    raise SystemExit(f"timed out: {dt.store.count_runs()}")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    ap.add_argument("-n", type=int, default=20_000, help="immediate jobs")
    ap.add_argument("-m", type=int, default=2_000, help="jobs for the lateness test")
    ap.add_argument("--workers", type=int, default=1, help="worker processes")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=1000)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    store = args.store or f"sqlite:///{tmp.name}/bench.db"
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {sys.version.split()[0]}; store {store}")

    reset_schema(store)
    client = make(store, args.concurrency)
    client.job.create({"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
    procs = [
        mp.get_context("spawn").Process(target=worker_main, args=(store, args.concurrency)) for _ in range(args.workers)
    ]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let workers start (imports, migrations)

    # 1. throughput
    req = {"env": "bench", "product_tag": "bench", "event": "noop"}
    t0 = time.perf_counter()
    for i in range(0, args.n, args.chunk):
        client.job.schedule_many([req] * min(args.chunk, args.n - i))
    t_enq = time.perf_counter()
    t_done = wait_done(client, args.n, t0 + 600)
    counts = client.store.count_runs()
    runs = [r for page in range(0, args.n, 5000) for r in client.job.runs(limit=5000, offset=page)]
    once = sum(1 for r in runs if r.attempt == 1 and r.phase is RunPhase.COMPLETED)
    distinct = len({r.id for r in runs})
    print(f"\n[throughput] N={args.n}, {args.workers} worker process(es), concurrency {args.concurrency}")
    print(f"  enqueue (schedule_many, chunks of {args.chunk}): {args.n / (t_enq - t0):,.0f} jobs/s")
    print(
        f"  end to end (first enqueue -> last completed):  {args.n / (t_done - t0):,.0f} jobs/s ({t_done - t0:.2f} s)"
    )
    print(
        f"  check: {counts.get(RunPhase.COMPLETED, 0)} completed, {distinct} distinct runs, {once} ran exactly once"
        f" -> {'OK' if once == distinct == args.n else 'MISMATCH'}"
    )
    sample = 500
    t1 = time.perf_counter()
    for _ in range(sample):
        client.job.schedule(req)
    print(f"  single schedule() calls: {sample / (time.perf_counter() - t1):,.0f} jobs/s")
    wait_done(client, args.n + sample, time.perf_counter() + 120)

    # 2. lateness
    start = client.clock.now() + timedelta(seconds=1)
    spread = 3.0
    reqs = [{**req, "start_at": start + timedelta(seconds=spread * i / args.m)} for i in range(args.m)]
    client.job.schedule_many(reqs)
    wait_done(client, args.n + sample + args.m, time.perf_counter() + 60)
    late = [
        (r.started_at - r.scheduled_at).total_seconds() * 1000
        for r in client.job.runs(since=start - timedelta(milliseconds=1), limit=args.m)
        if r.started_at is not None
    ]
    print(f"\n[lateness] M={len(late)} one-off jobs due over {spread:.0f} s")
    print(
        f"  p50 {percentile(late, 50):.1f} ms  p95 {percentile(late, 95):.1f} ms  "
        f"p99 {percentile(late, 99):.1f} ms  max {max(late):.1f} ms  (mean {statistics.mean(late):.1f})"
    )
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(10)
    client.close()


if __name__ == "__main__":
    main()
