"""A tick with many schedules: the scheduler finds due schedules by index, never loading them all.

    python bench/many_schedules.py [--store URL] [-k 200000] [--due 1000]

Stores K recurring schedules, of which --due fall due at the measured tick, then times that tick (creating the
due runs) and a claim of them, and prints the process's peak memory.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta

from ductape_jobs import Ductape, FakeClock


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default=None)
    ap.add_argument("-k", type=int, default=200_000, help="schedules stored")
    ap.add_argument("--due", type=int, default=1_000, help="schedules due at the measured tick")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    dt = Ductape(args.store or f"sqlite:///{tmp.name}/many.db", clock=clock)
    dt.job.create({"name": "n", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
    start = clock.now() + timedelta(hours=1)
    t0 = time.perf_counter()
    for i in range(0, args.k, 5000):
        dt.job.schedule_many(
            {
                "env": "b",
                "product_tag": "b",
                "event": "noop",
                "start_at": start + timedelta(seconds=0 if j < args.due else 3600 + j),
                "repeat": {"every": 86_400_000},
            }
            for j in range(i, min(args.k, i + 5000))
        )
    print(f"stored {args.k:,} schedules in {time.perf_counter() - t0:.1f} s")
    clock.set(start)
    t1 = time.perf_counter()
    created = dt.scheduler.tick()
    t2 = time.perf_counter()
    runs = dt.store.acquire_runs("bench", args.due, timedelta(seconds=30), clock.now())
    t3 = time.perf_counter()
    idle = time.perf_counter()
    again = dt.scheduler.tick()
    t4 = time.perf_counter()
    print(
        f"tick with {len(created):,} due of {args.k:,}: {(t2 - t1) * 1000:.1f} ms; "
        f"claim {len(runs):,}: {(t3 - t2) * 1000:.1f} ms; idle tick: {(t4 - idle) * 1000:.2f} ms ({len(again)} runs)"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    dt.close()


if __name__ == "__main__":
    main()
