"""Where the CPU of steady processing goes: the store's server against the workers. A plain script: it prints figures
and asserts nothing.

    python bench/steady_cpu.py [--store URL] [-n 40000] [--rounds 3]

Each round: a fresh store holding N due runs (``schedule_many``, untimed), then 2 real ``ductape worker`` processes
(the project's defaults) until every run has started, timed from the first run's start. Printed per round: the rate,
the CPU seconds per run of the PostgreSQL server's processes (every process of the ``postgres`` user) and of the
whole machine (user, system and interrupts, every process), and the cores busy meanwhile. What is neither the server's
nor the workers' (``_job``'s records, this script's polling) is small. On a SQLite store the server's share is 0.

The figures behind the note on issue 9: where a PostgreSQL worker pass spends, and how much an index fewer or a
statement fewer could save (a trial is measured by running this before and after it, alternating, several rounds).
"""

from __future__ import annotations

import argparse
import time

import psutil

from _common import Store, Workers, machine, worker_args
from _job import REQUEST


def postgres_cpu() -> float:
    """CPU seconds so far of every process of the ``postgres`` user (the server's backends and helpers)."""
    total = 0.0
    for p in psutil.process_iter(["username"]):
        if p.info["username"] == "postgres":
            try:
                times = p.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


def machine_cpu() -> float:
    times = psutil.cpu_times()
    return times.user + times.system + times.irq + times.softirq


def one_round(store: Store, n: int) -> str:
    with store.fresh() as dt:
        for start in range(0, n, 1000):
            chunk = range(start, min(n, start + 1000))
            dt.job.schedule_many([{**REQUEST, "input": {"i": i}, "start_at": 0} for i in chunk])
    workers = Workers(store, 2, worker_args(None, None))
    try:
        workers.wait_for(1, 60)
        t0, server0, all0 = time.perf_counter(), postgres_cpu(), machine_cpu()
        _, timed_out = workers.wait_for(n, 300)
        t1, server1, all1 = time.perf_counter(), postgres_cpu(), machine_cpu()
    finally:
        workers.stop()
    wall = t1 - t0
    flag = " (timed out)" if timed_out else ""
    return (
        f"{n / wall:,.0f} runs/s{flag}; server CPU {(server1 - server0) / n * 1e6:.0f} us a run, all CPU "
        f"{(all1 - all0) / n * 1e6:.0f} us a run; cores busy {(all1 - all0) / wall:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    ap.add_argument("-n", type=int, default=40_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(machine())
    store = Store(args.store)
    print(f"store: {store.label}; N={args.n:,}; 2 x `ductape worker` (defaults)")
    try:
        for r in range(args.rounds):
            print(f"  round {r + 1}: {one_round(store, args.n)}", flush=True)
    finally:
        store.close()


if __name__ == "__main__":
    main()
