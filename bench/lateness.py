"""W2, scheduling lateness, as ``../shared/peerbench`` measures it. A plain script: it prints figures only.

    python bench/lateness.py [--store URL] [-m 2000] [--spread 10] [--workers 2] [--concurrency C] [--poll S]

Spawn ``--workers`` real ``ductape worker`` processes on a fresh store and wait until a probe job has run (so boot is
not counted: "spawn -> ready" is printed). Then schedule M jobs with one ``job.schedule()`` each, due at
``base + i * spread / M`` (whole Unix milliseconds, what the store keeps), ``base`` far enough ahead that all are
stored before the first is due. Lateness = job start (``time.time()`` in the job) - due time: p50/p95/p99/max in ms.
lost and doubled are counted from the jobs' own records, 1 s after the last start; peak RSS as in throughput.py.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import Store, Workers, check, describe_workers, due_ms, machine, pct, worker_args
from _job import REQUEST


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    ap.add_argument("-m", type=int, default=2_000, help="delayed jobs (peerbench: 2000)")
    ap.add_argument("--spread", type=float, default=10.0, help="seconds the due times span (peerbench: 10)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (peerbench: 2)")
    ap.add_argument("--concurrency", type=int, default=None, help="per worker (default: the project's)")
    ap.add_argument("--poll", type=float, default=None, help="seconds (default: the project's)")
    args = ap.parse_args()
    store = Store(args.store)
    m, spread = args.m, args.spread
    print(machine())
    print(
        f"store: {store.label}; M={m:,} due over {spread:g} s; "
        f"{describe_workers(args.workers, args.concurrency, args.poll)}"
    )

    dt = store.fresh()
    workers = Workers(store, args.workers, worker_args(args.concurrency, args.poll), name="w2")
    dt.job.schedule({**REQUEST, "input": {"i": -1}, "start_at": 0})  # the first call warms the connection up
    probes = 20  # timed, to size the lead (peerbench uses W1's enqueue rate)
    t0 = time.perf_counter()
    for _ in range(probes):
        dt.job.schedule({**REQUEST, "input": {"i": -1}, "start_at": 0})
    rate = probes / (time.perf_counter() - t0)
    ready = workers.wait_ready()
    if ready is None:
        workers.stop()
        raise SystemExit(f"workers not ready after 60 s; see {workers.log.name}")
    lead = max(3.0, 1.5 * m / rate + 1.0)
    base = time.time() + lead
    t1 = time.time()
    for i in range(m):
        due = due_ms(base + i * spread / m)
        dt.job.schedule({**REQUEST, "input": {"i": i, "due": due / 1000}, "start_at": due})
    t_enq = time.time()
    _, timed_out = workers.wait_for(m, base + spread + 30 - time.time())
    time.sleep(1.0)
    workers.records.scan()
    workers.stop()
    dt.close()
    rec = workers.records
    late = sorted(rec.lateness_ms)
    print(f"\n[W2] spawn -> ready (probe ran): {ready - workers.t_spawn:.2f} s")
    print(
        f"  enqueued {m:,} in {t_enq - t1:.2f} s ({m / (t_enq - t1):,.0f}/s); lead {lead:.1f} s; "
        f"all stored before the first was due: {'yes' if t_enq <= base else 'NO'}"
    )
    if late:
        print(
            f"  lateness ms: p50 {pct(late, 50):.1f}  p95 {pct(late, 95):.1f}  p99 {pct(late, 99):.1f}  "
            f"max {late[-1]:.1f}  (min {late[0]:.1f}, mean {statistics.fmean(late):.1f})"
        )
    print(f"  peak worker RSS (sum of {args.workers}): {workers.peak_rss / 2**20:.0f} MiB")
    print(check(rec, m, timed_out))
    store.reset()
    store.close()


if __name__ == "__main__":
    main()
