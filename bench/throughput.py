"""W1, throughput, as ``../shared/peerbench`` measures it. A plain script: it prints figures and asserts nothing.

    python bench/throughput.py [--store URL] [-n 20000] [--workers 2] [--concurrency C] [--poll S]

1. Enqueue N no-op FUNCTION jobs with one ``job.schedule()`` call each, in one process, no worker running; the
   loop alone is timed.
2. Spawn ``--workers`` real ``ductape worker`` processes (project defaults unless --concurrency/--poll) and wait
   until every job has started. Each job appends its start to a file of its worker (``_job.py``):
   - spawn -> first job: the worker's boot (interpreter, imports, store) until the first job runs;
   - processing from spawn: N / (spawn -> last job started);
   - steady: (N - 1) / (first job start -> last job start), boot excluded;
   - end to end: N / (enqueue time + processing from spawn);
   - peak worker RSS: the largest sum of RSS over the worker process trees, sampled every 0.2 s (psutil);
   - lost = N - distinct jobs started, doubled = starts - distinct, read 1 s after the last one.
3. Bulk enqueue: a fresh store, N jobs with ``job.schedule_many`` in chunks of 1000, timed; those jobs are not run.

The store is fresh for each phase: a temporary SQLite file by default, or
``--store 'postgresql://postgres@127.0.0.1:5432/test?schema=bench'`` (that schema is dropped and created first).
"""

from __future__ import annotations

import argparse
import time

from _common import Store, Workers, check, describe_workers, machine, worker_args
from _job import REQUEST
from ductape_jobs import Ductape

HOOK_EVENTS = ["job.scheduled", "job.started", "job.completed", "job.failed"]


def add_webhook(dt: Ductape) -> None:
    """``--webhook``: a webhook of the bench product takes the job-level events; its address refuses (port 9),
    so every delivery fails fast and is retried: the cost of lifecycle events, their relay and sending."""
    dt.webhooks.allow = ["127.0.0.0/8"]
    dt.webhooks.create({"product_tag": REQUEST["product_tag"], "url": "http://127.0.0.1:9/hook", "events": HOOK_EVENTS})


def single_enqueue(store: Store, n: int, webhook: bool = False) -> tuple[float, float]:
    """Seconds for N ``schedule()`` calls (one job each, due now), and this process's CPU seconds for them."""
    with store.fresh() as dt:
        if webhook:
            add_webhook(dt)
        schedule = dt.job.schedule
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            schedule({**REQUEST, "input": {"i": i}, "start_at": 0})
        return time.perf_counter() - t0, time.process_time() - c0


def bulk_enqueue(store: Store, n: int, chunk: int, webhook: bool = False) -> tuple[float, float]:
    """Seconds for N jobs through ``schedule_many`` in chunks (not run), and this process's CPU seconds."""
    with store.fresh() as dt:
        if webhook:
            add_webhook(dt)
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(0, n, chunk):
            dt.job.schedule_many([{**REQUEST, "input": {"i": i}, "start_at": 0} for i in range(s, min(n, s + chunk))])
        return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    ap.add_argument("-n", type=int, default=20_000, help="jobs (peerbench: 20000)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (peerbench: 2)")
    ap.add_argument("--concurrency", type=int, default=None, help="per worker (default: the project's)")
    ap.add_argument("--poll", type=float, default=None, help="seconds (default: the project's)")
    ap.add_argument("--chunk", type=int, default=1000, help="schedule_many chunk (peerbench: 1000)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for the workers")
    ap.add_argument("--webhook", action="store_true", help="a webhook takes the job.* events (add_webhook)")
    args = ap.parse_args()
    store = Store(args.store)
    n = args.n
    print(machine())
    print(f"store: {store.label}; N={n:,}; {describe_workers(args.workers, args.concurrency, args.poll)}")
    if args.webhook:
        print(f"a webhook takes {', '.join(HOOK_EVENTS)} (its deliveries fail)")

    enq_s, enq_cpu = single_enqueue(store, n, args.webhook)
    print(
        f"\n[W1] enqueue, one schedule() per job: {n / enq_s:,.0f} jobs/s"
        f" ({enq_s:.2f} s; {enq_s / n * 1000:.2f} ms a call; {enq_cpu / n * 1e6:,.0f} us CPU a call in this process)"
    )
    workers = Workers(store, args.workers, worker_args(args.concurrency, args.poll), name="w1")
    t_done, timed_out = workers.wait_for(n, args.timeout)
    time.sleep(1.0)  # grace: a late second start still counts as doubled
    workers.records.scan()
    cpu = workers.cpu_between(workers.records.first or 0.0, t_done + 0.5)
    workers.stop()
    rec = workers.records
    proc_s = t_done - workers.t_spawn
    print(f"  spawn -> first job:       {rec.first - workers.t_spawn:.2f} s" if rec.first else "  no job ran")
    print(f"  processing from spawn:    {rec.distinct / proc_s:,.0f} jobs/s ({proc_s:.2f} s)")
    if rec.first and rec.last and rec.last > rec.first:
        steady = (rec.distinct - 1) / (rec.last - rec.first)
        print(f"  steady (first -> last job start): {steady:,.0f} jobs/s ({rec.last - rec.first:.2f} s)")
    print(
        f"  end to end (enqueue + processing): {rec.distinct / (enq_s + proc_s):,.0f} jobs/s ({enq_s + proc_s:.2f} s)"
    )
    if cpu is not None and rec.distinct:  # from about the first job's start to the last one's: boot excluded
        print(f"  worker CPU per job (steady, sum of {args.workers}): {cpu / rec.distinct * 1e6:,.0f} us")
    print(f"  peak worker RSS (sum of {args.workers}): {workers.peak_rss / 2**20:.0f} MiB")
    print(check(rec, n, timed_out))

    bulk_s, bulk_cpu = bulk_enqueue(store, n, args.chunk, args.webhook)
    print(
        f"\n[W1 bulk] enqueue, schedule_many in chunks of {args.chunk}: {n / bulk_s:,.0f} jobs/s ({bulk_s:.2f} s;"
        f" {bulk_cpu / n * 1e6:,.1f} us CPU a job in this process)"
    )
    store.reset()
    store.close()


if __name__ == "__main__":
    main()
