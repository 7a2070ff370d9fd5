"""A page of runs deep in a long history: by ``offset`` against by ``after`` (the last run of the page before). A plain
script: it prints figures only.

    python bench/run_pages.py [--store URL] [-n 100000]

``--store`` defaults to a temporary SQLite file; a PostgreSQL URL names its schema (``?schema=bench``), which is
dropped and made again first, and dropped at the end. N runs
are made by ``schedule_many`` (untimed, due now: many share a due time, ordered by id), then for a few depths the
page of 50 found each way is read three times: the best time of each is printed, and the two pages are checked to
be the same runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from _common import Store, machine
from _job import REQUEST


def best(read: Callable[[], list[str]]) -> tuple[float, list[str]]:
    times, got = [], []
    for _ in range(3):
        started = time.perf_counter()
        got = read()
        times.append(time.perf_counter() - started)
    return min(times), got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    print(machine())
    store = Store(args.store)
    try:
        with store.fresh() as dt:
            for start in range(0, args.n, 1000):
                chunk = range(start, min(args.n, start + 1000))
                dt.job.schedule_many([{**REQUEST, "input": {"i": i}, "start_at": 0} for i in chunk])
            print(f"store: {store.label}; {args.n:,} runs; a page of 50, best of 3")
            for depth in (0, args.n // 10, args.n // 2, args.n - 100):
                by_offset, page = best(lambda d=depth: [r.id for r in dt.job.runs(limit=50, offset=d)])  # type: ignore[misc]
                before = dt.job.runs(limit=1, offset=depth - 1)[0].id if depth else None
                by_after, same = best(lambda b=before: [r.id for r in dt.job.runs(limit=50, after=b)])  # type: ignore[misc]
                if page != same:
                    raise SystemExit(f"at depth {depth} the two pages differ")
                print(f"  {depth:>9,} runs deep: offset {by_offset * 1000:7.2f} ms, after {by_after * 1000:6.2f} ms")
    finally:
        if store.is_pg:
            import psycopg
            from psycopg import sql

            with psycopg.connect(store.conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(store.schema)))
        store.close()


if __name__ == "__main__":
    main()
