"""W3, many stored schedules: the scheduler finds the due ones by index and never loads them all.

    python bench/many_schedules.py [--store URL] [-k 1000000] [--due 1000] [--ticks 5] [--chunk 1000]

Run twice, on a fresh store each time: first with only --due schedules stored (the baseline), then with K stored,
of which --due fall due. All are recurring (every 24 h); the ones not due start ten years from now.
1. Store them with ``job.schedule_many`` in chunks (timed: schedules/s). This is the public API; nothing is written
   into the store's tables directly.
2. Spawn one real ``ductape worker`` process, wait until a probe job ran, then store the --due schedules due 2 s
   later. The worker's own tick finds them, makes their runs and runs them; its RSS is sampled every 10 ms from
   spawn until the last has started (and the kernel's peak, VmHWM, is read too). Target: under 100 MB.
3. With the worker stopped, time ``scheduler.tick(at)`` in this process at the next --ticks occurrences (each finds
   the same --due schedules due and makes their runs), then an idle tick. Target: the median tick with K stored is
   at most 2x the median tick with --due stored. Targets are reported, not asserted.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from datetime import UTC, datetime, timedelta

from _common import Store, Workers, check, due_ms, machine
from _job import REQUEST
from ductape_jobs import Ductape

DAY = timedelta(days=1)
EVERY = {"every": int(DAY.total_seconds() * 1000)}


def store_schedules(dt: Ductape, count: int, chunk: int, start: datetime) -> float:
    """Store ``count`` schedules not due (start ``start``, one second apart) in chunks; seconds taken."""
    t0 = time.perf_counter()
    for s in range(0, count, chunk):
        dt.job.schedule_many(
            {**REQUEST, "input": {"i": j}, "start_at": start + timedelta(seconds=j), "repeat": EVERY}
            for j in range(s, min(count, s + chunk))
        )
    return time.perf_counter() - t0


def worker_tick(store: Store, dt: Ductape, due: int) -> tuple[int, datetime]:
    """A real worker finds ``due`` schedules falling due among all and runs them: (its peak RSS, the due time)."""
    workers = Workers(store, 1, [], sample=0.01, name="w3")
    try:
        dt.job.schedule({**REQUEST, "input": {"i": -1}, "start_at": 0})
        ready = workers.wait_ready()
        if ready is None:
            raise SystemExit(f"the worker did not run a probe in 60 s; see {workers.log.name}")
        time.sleep(0.5)
        idle = workers.rss
        at = due_ms(time.time() + 2.0)
        dt.job.schedule_many(
            {**REQUEST, "input": {"i": i, "due": at / 1000}, "start_at": at, "repeat": EVERY} for i in range(due)
        )
        stored_by = time.time()
        _, timed_out = workers.wait_for(due, 120)
        time.sleep(0.5)
        workers.records.scan()
        hwm = workers.hwm()
    finally:
        workers.stop()
    rec = workers.records
    print(
        f"  worker: spawn -> ready {ready - workers.t_spawn:.2f} s; due runs stored {at / 1000 - stored_by:.2f} s early"
    )
    if rec.first is not None and rec.last is not None:
        print(
            f"  worker: the {due:,} due ran {(rec.first - at / 1000) * 1000:.0f} ms (first) to "
            f"{(rec.last - at / 1000) * 1000:.0f} ms (last) after their due time"
        )
    print(
        f"  worker RSS: idle {idle / 2**20:.0f} MiB, peak sampled {workers.peak_rss / 2**20:.0f} MiB, "
        f"peak (VmHWM) {hwm / 2**20:.0f} MiB"
    )
    print(check(rec, due, timed_out))
    return max(workers.peak_rss, hwm), datetime.fromtimestamp(at / 1000, UTC)


def timed_ticks(dt: Ductape, first_due: datetime, due: int, ticks: int) -> list[float]:
    """Milliseconds of ``ticks`` scheduler ticks, each at the next occurrence of the due schedules; then an idle one."""
    times: list[float] = []
    for t in range(1, ticks + 1):
        at = first_due + t * DAY
        t0 = time.perf_counter()
        created = dt.scheduler.tick(at)
        times.append((time.perf_counter() - t0) * 1000)
        if len(created) != due:
            print(f"  tick at +{t} d made {len(created):,} runs, not {due:,}")
    t0 = time.perf_counter()
    again = dt.scheduler.tick(first_due + ticks * DAY)
    idle = (time.perf_counter() - t0) * 1000
    shown = ", ".join(f"{x:.1f}" for x in times)
    print(f"  tick making {due:,} runs: median {statistics.median(times):.1f} ms ({shown}); idle tick {idle:.2f} ms")
    if again:
        print(f"  the idle tick made {len(again)} runs")
    return times


def measure(store: Store, stored: int, due: int, chunk: int, ticks: int) -> tuple[float, int]:
    """One round on a fresh store with ``stored`` schedules, ``due`` of them due: (median tick ms, worker peak RSS)."""
    print(f"\n[W3] {stored:,} stored, {due:,} due")
    dt = store.fresh()
    try:
        far = datetime.now(UTC) + timedelta(days=3650)
        if stored > due:
            took = store_schedules(dt, stored - due, chunk, far)
            rate = (stored - due) / took
            print(f"  stored {stored - due:,} (schedule_many, chunks of {chunk:,}) in {took:.1f} s: {rate:,.0f}/s")
        rss, first_due = worker_tick(store, dt, due)
        times = timed_ticks(dt, first_due, due, ticks)
    finally:
        dt.close()
    return statistics.median(times), rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    ap.add_argument("-k", type=int, default=1_000_000, help="schedules stored")
    ap.add_argument("--due", type=int, default=1_000, help="schedules due at each measured tick")
    ap.add_argument("--ticks", type=int, default=5, help="ticks timed")
    ap.add_argument("--chunk", type=int, default=1000, help="schedule_many chunk")
    args = ap.parse_args()
    store = Store(args.store)
    print(machine())
    print(f"store: {store.label}")
    try:
        small_ms, small_rss = measure(store, args.due, args.due, args.chunk, args.ticks)
        large_ms, large_rss = measure(store, args.k, args.due, args.chunk, args.ticks)
    finally:
        store.reset()
        store.close()
    print(f"\n[W3] summary, {args.due:,} due:")
    print(
        f"  tick: {large_ms:.1f} ms with {args.k:,} stored vs {small_ms:.1f} ms with {args.due:,} stored = "
        f"{large_ms / small_ms:.2f}x (target <= 2x)"
    )
    print(
        f"  worker peak RSS: {large_rss / 2**20:.0f} MiB with {args.k:,} stored, "
        f"{small_rss / 2**20:.0f} MiB with {args.due:,} (target < 100 MB = {100e6 / 2**20:.0f} MiB)"
    )
    print(f"  this driver's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
