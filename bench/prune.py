"""Retention: how fast the pruner deletes old history. A plain script: it prints figures only.

    python bench/prune.py [--store URL] [-n 200000] [--batch 1000] [--failed-days 31]
                          [--beside 5000 [--rounds 3] [--share 0.1]]

A fresh store gets N finished runs, each with one attempt and due a minute before it ended, written straight into
the tables (untimed): 90% completed 8 to 9 days ago and 10% failed 31 to 32 days ago (all past the default keeps;
``--failed-days 10``: within theirs), plus 1,000 queued runs that must stay. Then the pruner deletes them as a
worker does, one batch of ``--batch`` rows per kind and statement after another (``Store.prune``) until a batch
is not full, without resting (as ``ductape prune`` does). Printed: rows/s (runs and attempts), runs/s, the prune
call's time p50/p99/max (each batch is a short transaction: how long it holds its locks), the time of a prune
that finds nothing (what a worker pays every minute once caught up), and a check that only the runs to keep are
left.

``--beside H``: the hot path beside the pruner. H one-off runs of the no-op job due now are run by ``drain()``
(the scheduler's pass, claims, the job, the outcomes: a worker's work in one process), after a warm-up,
``--rounds`` times without and beside a pruner, alternating (the pruner: its own client, as another worker's,
resting ``--share`` of the time as a worker's does, paused during the rounds without). Printed: runs/s of each
and the ratio of their medians; the timed prune then deletes what is left.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from datetime import datetime

import _job
from _common import Store, machine, pct
from ductape_jobs import Ductape
from ductape_jobs.retention import PruneCounts, Retention
from ductape_jobs.store.codec import ms

DAY_MS = 86_400_000
KEEP = 1_000  # queued runs, never pruned


def fill(store: Store, dt: Ductape, n: int, now_ms: int, failed_days: int) -> None:
    """N finished runs with an attempt each, and KEEP queued runs, in a few statements (untimed)."""
    s = dt.job.schedule({"env": "bench", "product_tag": "bench", "event": "noop", "start_at": now_ms + 10 * DAY_MS})
    sid = s.job_id
    old, older = now_ms - 8 * DAY_MS, now_ms - failed_days * DAY_MS
    completed_at = f"CASE WHEN i % 10 = 0 THEN {older} - (i % {DAY_MS}) ELSE {old} - (i % {DAY_MS}) END"
    phase = "CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END"
    runs = (
        "INSERT INTO runs (id, schedule_id, scheduled_at, job_tag, product_tag, env, event_type, event_tag, input, "
        "phase, available_at, triggered_by, max_retries, attempt, started_at, completed_at, created_at, updated_at) "
        f"SELECT 'brun_' || i, '{sid}', {completed_at} - 60000, 'noop', 'bench', 'bench', 'FUNCTION', 'noop', "
        f"'{{}}', {phase}, {completed_at} - 60000, 'schedule', 0, 1, {completed_at} - 5, {completed_at}, "
        f"{now_ms - 40 * DAY_MS}, {now_ms - 40 * DAY_MS} FROM series"
    )
    attempts = (
        "INSERT INTO attempts (run_id, attempt, worker_id, started_at, finished_at, outcome) "
        f"SELECT 'brun_' || i, 1, 'bench', {completed_at} - 5, {completed_at}, "
        "CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END FROM series"
    )
    queued = (
        "INSERT INTO runs (id, schedule_id, scheduled_at, job_tag, product_tag, env, event_type, event_tag, input, "
        "phase, available_at, triggered_by, max_retries, created_at, updated_at) "
        f"SELECT 'bq_' || i, '{sid}', {now_ms + DAY_MS} + i, 'noop', 'bench', 'bench', 'FUNCTION', 'noop', '{{}}', "
        f"'queued', {now_ms + DAY_MS} + i, 'schedule', 0, {now_ms}, {now_ms} FROM series"
    )
    if store.is_pg:
        import psycopg

        with psycopg.connect(store.conninfo, autocommit=True, options=f"-c search_path={store.schema}") as conn:
            for sql, count in ((runs, n), (attempts, n), (queued, KEEP)):
                series = f"(SELECT generate_series(0, {count - 1}) AS i) series"
                conn.execute(sql.replace("FROM series", f"FROM {series}").encode())
            conn.execute(b"VACUUM ANALYZE runs")
            conn.execute(b"VACUUM ANALYZE attempts")
    else:
        import sqlite3

        db = sqlite3.connect(store.url.removeprefix("sqlite:///"))
        try:
            for sql, count in ((runs, n), (attempts, n), (queued, KEEP)):
                series = f"series(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM series WHERE i < {count - 1})"
                db.execute(f"WITH RECURSIVE {series} {sql}")
            db.commit()
            db.execute("ANALYZE")
        finally:
            db.close()


def due_now(dt: Ductape, hot: int) -> None:
    """``hot`` no-op runs due now (untimed, in batches)."""
    for start in range(0, hot, 500):
        dt.job.schedule_many([{**_job.REQUEST, "input": {"i": i}} for i in range(start, min(hot, start + 500))])


def hot_path(dt: Ductape, hot: int) -> float:
    """Runs/s of ``drain()`` over the ``hot`` runs ``due_now`` gave."""
    started = time.perf_counter()
    summary = dt.drain()
    took = time.perf_counter() - started
    assert summary.completed >= hot, summary
    return hot / took


def prune_all(
    dt: Ductape,
    now: datetime,
    retention: Retention,
    go: threading.Event | None = None,
    stop: threading.Event | None = None,
) -> tuple[PruneCounts, list[float], float]:
    """Prune batch after batch until a batch is not full (or ``stop``), resting between them ``retention.share`` of
    the time as a worker does (1: no rest), and with ``go`` only while it is set: the counts, each call's seconds,
    the total seconds."""
    batches: list[float] = []
    total = PruneCounts()
    started = time.perf_counter()
    while stop is None or not stop.is_set():
        if go is not None and not go.wait(0.05):
            continue
        t = time.perf_counter()
        counts = dt.store.prune(now, retention, retention.batch)
        batches.append(time.perf_counter() - t)
        total += counts
        if max(counts.as_dict().values()) < retention.batch:
            break
        time.sleep(retention.rest_after(batches[-1]))
    return total, batches, time.perf_counter() - started


def beside(store: Store, dt: Ductape, hot: int, rounds: int, now: datetime, retention: Retention) -> PruneCounts:
    """The hot path's rate without and beside a pruner resting as a worker's does (its own client, in a thread),
    ``rounds`` times each, alternating (the machine's noise falls on both alike); what that pruner deleted."""
    due_now(dt, hot)
    hot_path(dt, hot)  # warm-up
    pruner, go, stop = _job.make_app(store.url), threading.Event(), threading.Event()
    result: list[PruneCounts] = []
    thread = threading.Thread(target=lambda: result.append(prune_all(pruner, now, retention, go, stop)[0]))
    thread.start()
    without: list[float] = []
    during: list[float] = []
    for _ in range(rounds):
        for rates, pruning in ((without, False), (during, True)):
            due_now(dt, hot)
            if pruning:
                go.set()
                time.sleep(0.2)  # the pruner has begun
            rates.append(hot_path(dt, hot))
            go.clear()
    stop.set()
    thread.join()
    pruner.close()
    print(f"hot path (drain of {hot:,} no-op runs due now), {rounds} rounds alternating: without a pruner "
          f"{', '.join(f'{r:,.0f}' for r in without)} runs/s; beside a pruner at share {retention.share} "
          f"{', '.join(f'{r:,.0f}' for r in during)} (it deleted {result[0].runs:,} runs meanwhile); "
          f"median beside / median without: {statistics.median(during) / statistics.median(without):.2f}")  # fmt: skip
    return result[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    ap.add_argument("-n", type=int, default=200_000, help="finished runs to prune (up to 5,000,000)")
    ap.add_argument("--batch", type=int, default=1_000, help="rows per batch (the worker's default: 1000)")
    ap.add_argument(
        "--failed-days",
        type=int,
        default=31,
        help="the failed runs ended this many days ago (default 31: past their keep; 10: kept, and older than the "
        "completed runs, so every batch of completed runs scans past them)",
    )
    ap.add_argument(
        "--share",
        type=float,
        default=Retention().share,
        help="--beside's pruner: its share of the time while it catches up, as a worker's (default 0.1; 1: no rest)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="--beside: rounds without and beside a pruner (default 3)")
    ap.add_argument("--beside", type=int, default=0, help="H: the hot path's rate beside the pruner (0: not measured)")
    args = ap.parse_args()
    print(machine())
    os.environ.setdefault(_job.RECORDS_ENV, tempfile.mkdtemp(prefix="prune-bench-"))
    store = Store(args.store)
    try:
        dt = store.fresh()
        try:
            now = dt.clock.now()
            started = time.perf_counter()
            fill(store, dt, args.n, ms(now), args.failed_days)
            print(f"{store.label}: {args.n:,} finished runs + {args.n:,} attempts + {KEEP:,} queued runs written "
                  f"in {time.perf_counter() - started:.1f}s (untimed)")  # fmt: skip
            early = PruneCounts()
            if args.beside:
                retention = Retention(batch=args.batch, share=args.share)
                early = beside(store, dt, args.beside, args.rounds, now, retention)
            retention = Retention(batch=args.batch, share=1)  # no rest, as `ductape prune`
            total, batches, took = prune_all(dt, now, retention)
            total += early
            rows = total.runs + total.attempts
            ms_ = sorted(b * 1000 for b in batches)
            print(f"pruned {total.runs:,} runs + {total.attempts:,} attempts in {took:.1f}s: {rows / took:,.0f} rows/s "
                  f"({total.runs / took:,.0f} runs/s), {len(batches)} prune calls of batch {args.batch}")  # fmt: skip
            print(f"prune call (one batch per kind, each its own transaction): p50 {statistics.median(ms_):.1f} ms, "
                  f"p99 {pct(ms_, 99):.1f} ms, max {ms_[-1]:.1f} ms")  # fmt: skip
            idle = []
            for _ in range(20):
                t = time.perf_counter()
                dt.store.prune(now, retention, retention.batch)
                idle.append((time.perf_counter() - t) * 1000)
            print(f"a prune that finds nothing (a worker's minute, caught up): p50 {statistics.median(idle):.2f} ms")
            left = {k: v for k, v in dt.store.count_runs().items() if str(k) != "completed" or not args.beside}
            kept = 0 if args.failed_days > 30 else len(range(0, args.n, 10))  # the failed runs, if within their keep
            expected = {"queued": KEEP, **({"failed": kept} if kept else {})}
            ok = {str(k): v for k, v in left.items()} == expected and total.runs == args.n - kept
            print(f"left: {dict((str(k), v) for k, v in left.items())} -> {'ok' if ok else 'WRONG'}")
        finally:
            dt.close()
    finally:
        store.close()


if __name__ == "__main__":
    main()
