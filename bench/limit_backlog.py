"""A backlog behind a full limit (issue 14): what a claim that finds the limit full costs, and next_wakeup, with
N runs waiting behind a concurrency of 1. A plain script: it prints figures and asserts nothing.

    python bench/limit_backlog.py [--store URL] [-n 50000]

One run is claimed (the limit is then full); then 5 claims, each 2 s of the store's clock after the last (a
concurrency's hold lapses after 1 s, so each looks again and finds the limit still full), and 50 next_wakeups.
The store defaults to ``postgresql://postgres@127.0.0.1:5432/test?schema=bench_backlog`` (the schema is dropped and
created first); ``--store sqlite:///path`` runs on a SQLite file (removed first).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta

from ductape_jobs import Ductape
from ductape_jobs.products import Products
from resource_limits import reset  # bench/resource_limits.py, beside this script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/test?schema=bench_backlog")
    ap.add_argument("-n", type=int, default=50_000, help="runs waiting")
    args = ap.parse_args()
    reset(args.store)
    product = {"tag": "bench", "envs": ["bench"], "resources": {"db": {"concurrency": 1}}}
    dt = Ductape(args.store, products=Products([product]))  # type: ignore[list-item]
    job = {"name": "nap", "tag": "nap", "event_type": "FUNCTION", "event_tag": "nap", "resources": ["db"]}
    dt.product("bench").jobs.create(job)
    req = {"env": "bench", "product_tag": "bench", "event": "nap", "input": {}}
    for i in range(0, args.n, 5000):
        dt.job.schedule_many([req] * min(5000, args.n - i))
    store = dt.store
    store.define_resources([lim for tag in dt.products.tags() for lim in dt.products.get(tag).limits()], dt.clock.now())
    now = dt.clock.now()
    store.acquire_runs("w1", 1, timedelta(seconds=30), now)
    claims = []
    for _ in range(5):
        now += timedelta(seconds=2)
        started = time.perf_counter()
        store.acquire_runs("w2", 10, timedelta(seconds=30), now)
        claims.append((time.perf_counter() - started) * 1000)
    wakes = []
    for _ in range(50):
        started = time.perf_counter()
        store.next_wakeup()
        wakes.append((time.perf_counter() - started) * 1000)
    dt.close()
    print(f"store: {args.store.split('?')[0]}; {args.n:,} runs waiting behind a concurrency of 1")
    print(f"  a claim that finds the limit full: {statistics.median(claims):.1f} ms (median of 5)")
    print(f"  next_wakeup:                       {statistics.median(wakes):.2f} ms (median of 50)")


if __name__ == "__main__":
    main()
