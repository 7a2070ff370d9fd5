"""What the outbox costs when every run's events are written: ``schedule_many`` then ``drain()`` of N no-op runs in
one process on a fresh SQLite file, without a webhook (the outbox triggers write nothing) and with one webhook that
takes ``run.queued``, ``job.started`` and ``job.completed`` (three outbox rows per run, written in the transactions
of the changes). A plain script: it prints figures only.

    python bench/outbox_cost.py [-n 5000] [--rounds 4]

The two alternate, ``--rounds`` times each; it prints the CPU time per run (every thread of the process: less
swayed than a rate by other processes) of ``schedule_many`` alone and with the drain, each round's, the medians
and their ratio. Run at two commits (``PYTHONPATH=<checkout>/src``), its "without a webhook" lines compare them.
The webhook's URL is a closed
port on this machine; ``drain()`` relays nothing, so the figure is the writing of the events alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ductape_jobs import Ductape

EVENTS = ["run.queued", "job.started", "job.completed"]


def one(folder: Path, with_webhook: bool, n: int) -> tuple[float, float]:
    """CPU microseconds per run of scheduling ``n`` runs, and of scheduling and draining them, on a fresh store."""
    path = folder / f"outbox-{time.monotonic_ns()}.db"
    with Ductape(f"sqlite:///{path}", webhook_allow=["127.0.0.0/8"]) as dt:
        dt.function("noop")(lambda input, ctx: None)
        dt.job.create({"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
        if with_webhook:
            dt.webhooks.create({"product_tag": "p", "url": "http://127.0.0.1:9/hook", "events": EVENTS})
        start = time.process_time()
        for i in range(0, n, 1000):
            dt.job.schedule_many([{"env": "e", "product_tag": "p", "event": "noop"}] * min(1000, n - i))
        scheduled = time.process_time() - start
        done = dt.drain().completed
        cpu = time.process_time() - start
    if done != n:
        raise SystemExit(f"drained {done} of {n} runs")
    return scheduled / n * 1e6, cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    without: list[tuple[float, float]] = []
    with_hook: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="ductape-outbox-") as tmp:
        for _ in range(args.rounds):
            without.append(one(Path(tmp), False, args.n))
            with_hook.append(one(Path(tmp), True, args.n))
    print(f"n={args.n:,}, {args.rounds} alternating rounds, CPU per run (us)")
    for part, title in ((0, "schedule_many"), (1, "schedule_many + drain")):
        a, b = [x[part] for x in without], [x[part] for x in with_hook]
        print(f"  {title}")
        for name, cpu in (("without a webhook:      ", a), ("with every run's events:", b)):
            print(f"    {name}", " / ".join(f"{x:.0f}" for x in cpu), f"median {statistics.median(cpu):.0f}")
        print(f"    ratio (medians): {statistics.median(b) / statistics.median(a):.2f}")


if __name__ == "__main__":
    main()
