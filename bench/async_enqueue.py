"""One ``await ductape.job.schedule(...)`` on ``AsyncDuctape`` beside the sync call, on a fresh SQLite file. A plain
script: it prints figures only.

    python bench/async_enqueue.py [-n 3000] [--rounds 3]

On SQLite the async client makes a ``schedule()`` on the caller's event loop when no other process holds the
write lock (``Store.promptly``), else in a thread (``asyncio.to_thread``), as it makes every call on PostgreSQL.
A third run makes every call in a thread, as the async client did before, to show what the hop costs. Each prints
the median wall time and this process's CPU time a call over the rounds, then each round's wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

from ductape_jobs import AsyncDuctape, Ductape

JOB = {"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"}
REQUEST = {"env": "prd", "product_tag": "bench", "event": "noop"}


def sync_calls(path: str, n: int, rounds: int) -> list[tuple[float, float]]:
    out = []
    with Ductape(f"sqlite:///{path}") as dt:
        dt.job.create(JOB)
        for i in range(300):  # warm up: the job definition cached
            dt.job.schedule({**REQUEST, "input": {"i": i}})
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(n):
                dt.job.schedule({**REQUEST, "input": {"i": i}})
            out.append(((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n))
    return out


async def async_calls(path: str, n: int, rounds: int, thread: bool) -> list[tuple[float, float]]:
    out = []
    async with AsyncDuctape(f"sqlite:///{path}") as dt:
        await dt.job.create(JOB)
        schedule = dt.job.schedule
        if thread:
            sync = dt.sync.job.schedule

            async def schedule(request: dict[str, object]) -> object:  # type: ignore[misc]
                return await asyncio.to_thread(sync, request)

        for i in range(300):
            await schedule({**REQUEST, "input": {"i": i}})
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(n):
                await schedule({**REQUEST, "input": {"i": i}})
            out.append(((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n))
    return out


def show(label: str, rounds: list[tuple[float, float]]) -> None:
    each = ", ".join(f"{w * 1e6:.0f}" for w, _ in rounds)
    wall = statistics.median(w for w, _ in rounds) * 1e6
    cpu = statistics.median(c for _, c in rounds) * 1e6
    print(f"  {label:32s} {wall:6.0f} us a call ({cpu:.0f} CPU us); rounds: {each}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=3000, help="calls a round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"SQLite, {args.n:,} calls a round, {args.rounds} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        for label, run in (
            ("Ductape.job.schedule", lambda p: sync_calls(p, args.n, args.rounds)),
            ("AsyncDuctape.job.schedule", lambda p: asyncio.run(async_calls(p, args.n, args.rounds, False))),
            ("... every call in a thread", lambda p: asyncio.run(async_calls(p, args.n, args.rounds, True))),
        ):
            path = os.path.join(tmp, f"{len(os.listdir(tmp))}.db")
            show(label, run(path))


if __name__ == "__main__":
    main()
