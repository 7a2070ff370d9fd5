"""What recording a run's outcome costs by the size of its output, on a fresh store. A plain script: it prints
figures only.

    python bench/outcome_sizes.py [--store URL] [-n 2000] [--rounds 3] [--sizes 100,2000,4000,16000]

For each size, ``n`` runs are scheduled and claimed 50 at a time (a worker's default batch), then each batch's
outcomes, every one with an output of that many characters (``{"data": "xxx..."}``), are recorded with
``Store.finish_runs``: one transaction a batch, as a worker's flush records them. It prints the median wall time a
run over the rounds (the claim is not timed). On SQLite, outputs up to 1 KB go with the rest of their batch as one
JSON list; longer ones by a bound statement each (``LARGE_TEXT`` in ``store/sqlite/dialect.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from _common import Store, machine
from ductape_jobs import Ductape
from ductape_jobs.store import Outcome

JOB = {"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"}
REQUEST = {"env": "prd", "product_tag": "bench", "event": "noop", "start_at": 0}
BATCH = 50
LEASE = timedelta(seconds=30)


def record(store: Store, n: int, size: int) -> float:
    """Seconds a run spent in ``finish_runs``, over ``n`` runs whose outputs hold ``size`` characters."""
    store.reset()
    output = {"data": "x" * size}
    spent = 0.0
    with Ductape(store.url) as dt:
        dt.job.create(JOB)
        for s in range(0, n, 1000):
            dt.job.schedule_many([{**REQUEST, "input": {"i": i}} for i in range(s, min(n, s + 1000))])
        now = datetime.now(UTC)
        while runs := dt.store.acquire_runs("bench", BATCH, LEASE, now):
            outcomes = [Outcome(r.id, r.attempt, "bench", True, now, 1, output=output) for r in runs]
            started = time.perf_counter()
            dt.store.finish_runs(outcomes, now)
            spent += time.perf_counter() - started
    return spent / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="100,2000,4000,16000", help="output sizes in characters, comma-separated")
    args = parser.parse_args()
    print(machine())
    store = Store(args.store)
    print(f"store: {store.label}; {args.n} runs a round, outcomes recorded {BATCH} a transaction")
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            per_run = [record(store, args.n, size) for _ in range(args.rounds)]
            rounds = ", ".join(f"{t * 1e6:.1f}" for t in per_run)
            print(f"output of {size:>6,} characters: {statistics.median(per_run) * 1e6:7.1f} us a run  ({rounds})")
    finally:
        store.close()


if __name__ == "__main__":
    main()
