"""What ``ductape copy`` costs: a SQLite store of N one-off schedules, each with a run that completed (its attempt
and history), copied to PostgreSQL and back to a new SQLite file. A plain script: it prints figures only.

    python bench/copy_store.py [-n 100000] [--pg postgresql://postgres@127.0.0.1:5432/test]

Each copy is timed as a call of ``Ductape.copy_to`` in this process (its peak RSS is printed after both). The
PostgreSQL schema is made for it and dropped afterwards; the SQLite files live in a temporary folder.
"""

from __future__ import annotations

import argparse
import resource
import secrets
import tempfile
import time
from pathlib import Path

import psycopg

from ductape_jobs import Ductape
from ductape_jobs.store.transfer import STORE_TABLES


def fill(url: str, n: int) -> None:
    """N schedules, each with a run that completed: rows in schedules, runs, attempts and the stats."""
    with Ductape(url) as dt:
        dt.function("noop")(lambda input, ctx: None)
        dt.job.create({"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
        request = {"env": "prd", "product_tag": "bench", "event": "noop"}
        for first in range(0, n, 1_000):
            dt.job.schedule_many([{**request, "input": {"i": i}} for i in range(first, min(n, first + 1_000))])
        dt.drain()


def timed_copy(source: str, target: str) -> tuple[float, dict[str, int]]:
    with Ductape(source) as dt:
        started = time.perf_counter()
        copied = dt.copy_to(target)
        return time.perf_counter() - started, copied


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000, help="schedules (each with a completed run)")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    schema = f"bench_copy_{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as folder:
        source, back = f"sqlite:///{Path(folder) / 'jobs.db'}", f"sqlite:///{Path(folder) / 'back.db'}"
        pg = f"{args.pg}?schema={schema}"
        started = time.perf_counter()
        fill(source, args.n)
        print(f"filled {args.n:,} schedules with their runs in {time.perf_counter() - started:.1f} s")
        try:
            took, copied = timed_copy(source, pg)
            rows = sum(copied.values())
            print(f"SQLite -> PostgreSQL: {rows:,} rows in {took:.1f} s ({rows / took:,.0f} rows/s)")
            took, copied = timed_copy(pg, back)
            rows = sum(copied.values())
            print(f"PostgreSQL -> SQLite: {rows:,} rows in {took:.1f} s ({rows / took:,.0f} rows/s)")
            print("  by table: " + ", ".join(f"{t} {copied[t]:,}" for t in STORE_TABLES if copied.get(t)))
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB (the fill's drain included)")


if __name__ == "__main__":
    main()
