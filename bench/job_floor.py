"""The floor that peerbench's job sets under a worker's processing rate, and the engine's share above it. A plain
script: it prints figures and asserts nothing.

    python bench/job_floor.py [-n 10000] [--store URL] [--rounds 3]

Peerbench's job (``pbjob.py`` in ``../shared/peerbench``) makes one pipelined round trip to Redis: INCR, SADD,
SET NX, SET. ductape-jobs runs it as an async function (``pbjob.arecord``, redis-py's asyncio client); huey,
Dramatiq and APScheduler run it as a sync one (``pbjob.record``). This script runs the same four commands (on Redis
db 13, not peerbench's 15) and measures this process's CPU time (every thread's):

1. the async body alone, 50 at a time (a worker's default concurrency) on one event loop: CPU µs a job;
2. the sync body alone, one call after another: CPU µs a job;
3. one worker in this process (``Ductape.run_worker``, project defaults) running N scheduled runs of the async
   body, from the first claim until the last run ends: CPU µs a run; and again with a body that returns at once
   (the engine alone, without the body's cost to the loop it shares);
4. two processes at once, each running half of N async bodies 50 at a time, refilled one by one as a worker
   does, with no store and no engine: jobs a second from the first to the last. peerbench's steady processing
   runs two worker processes on this machine, so no engine that runs this job as an asyncio coroutine can
   process faster than (4), measured here; its ratio to a peer measured in the same half hour says which targets
   are out of reach;
5. two processes at once, each importing only what the job imports (asyncio and redis-py's asyncio client) and
   running half of N bodies: their RSS summed, once connected and at peak. Peerbench sums its two workers' RSS
   the same way, so no engine running this job in two processes shows less than (5).

(3) minus (1) is what the engine spends on a run: the claim, the task, the outcome and the store's transactions.
On a PostgreSQL server of this machine (loopback), (3) also gives the server's own CPU a run: every ``postgres``
process's CPU time over the same span, which peerbench's workers share the two cores with.
A process that spends (1) on every job runs at most 1e6 / (1) jobs a second, whatever the engine does; two
worker processes on a 2-core machine that also runs Redis and the harness, at most twice that.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import subprocess
import sys
import time
from multiprocessing.synchronize import Barrier
from typing import Any

import psutil
import redis
import redis.asyncio as aredis

from _common import Store, machine
from ductape_jobs import Ductape, RunContext

DB = 13
REQUEST = {"env": "bench", "product_tag": "bench", "event": "noop"}
JOB = {"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"}


def fill(p: Any, i: int, now: float) -> None:
    """Peerbench's four commands (``pbjob._fill``) into a pipeline."""
    p.incr("pb:count")
    p.sadd("pb:seen", i)
    p.set("pb:first", repr(now), nx=True)
    p.set("pb:last", repr(now))


async def async_body(r: aredis.Redis, i: int) -> None:
    p = r.pipeline(transaction=False)
    fill(p, i, time.time())
    await p.execute()


def async_alone(n: int) -> float:
    """CPU µs a job: the async body, 50 at a time on one loop."""

    async def main() -> float:
        r = aredis.Redis(db=DB)
        await async_body(r, -1)  # connected before the clock starts
        started = time.process_time()
        for s in range(0, n, 50):
            await asyncio.gather(*(async_body(r, i) for i in range(s, min(n, s + 50))))
        spent = time.process_time() - started
        await r.aclose()
        return spent

    return asyncio.run(main()) / n * 1e6


def sync_alone(n: int) -> float:
    """CPU µs a job: the sync body, one call after another."""
    r = redis.Redis(db=DB)
    r.ping()
    started = time.process_time()
    for i in range(n):
        p = r.pipeline(transaction=False)
        fill(p, i, time.time())
        p.execute()
    return (time.process_time() - started) / n * 1e6


def _half(start: int, n: int, ready: Barrier, out: multiprocessing.Queue[tuple[float, float, float]]) -> None:
    """One process of ``pair_alone``: bodies ``start`` .. ``start + n``, 50 in flight, a new one as one ends,
    from when both processes are connected."""

    async def main() -> tuple[float, float, float]:
        r = aredis.Redis(db=DB)
        await async_body(r, -1)  # connected before the clock starts
        ready.wait(timeout=60)  # both start together (a blocking wait: nothing else runs on this loop yet)
        slots = asyncio.Semaphore(50)
        going: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            try:
                await async_body(r, i)
            finally:
                slots.release()

        started, cpu = time.time(), time.process_time()
        for i in range(start, start + n):
            await slots.acquire()
            task = asyncio.create_task(one(i))
            going.add(task)
            task.add_done_callback(going.discard)
        await asyncio.gather(*going)
        ended, cpu = time.time(), time.process_time() - cpu
        await r.aclose()
        return started, ended, cpu

    out.put(asyncio.run(main()))


def pair_alone(n: int) -> tuple[float, float]:
    """Jobs a second of two processes running the async body alone at once (first start to last end), and their
    CPU µs a job."""
    out: multiprocessing.Queue[tuple[float, float, float]] = multiprocessing.Queue()
    ready = multiprocessing.Barrier(2)
    halves = [
        multiprocessing.Process(target=_half, args=(k * (n // 2), n // 2, ready, out), daemon=True) for k in range(2)
    ]
    for p in halves:
        p.start()
    try:
        got = [out.get(timeout=600) for _ in halves]  # a process that died: queue.Empty, not a hang
    finally:
        for p in halves:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    wall = max(g[1] for g in got) - min(g[0] for g in got)
    return 2 * (n // 2) / wall, sum(g[2] for g in got) / (2 * (n // 2)) * 1e6


#: A process that imports what peerbench's job imports (``pbjob.arecord``: asyncio and redis-py's asyncio client) and
#: nothing else, runs ``n`` bodies 50 at a time, and prints its RSS once the client is connected and its peak RSS
#: (``VmRSS``, ``VmHWM``, kB). No engine can run this job in a process of less.
BODY_ALONE = """
import asyncio, sys, time
import redis.asyncio as aredis

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))

async def main(n):
    r = aredis.Redis(db=int(sys.argv[2]))
    await r.ping()
    ready = status("VmRSS:")
    for s in range(0, n, 50):
        async def one(i):
            p = r.pipeline(transaction=False)
            now = time.time()
            p.incr("pb:count"); p.sadd("pb:seen", i); p.set("pb:first", repr(now), nx=True); p.set("pb:last", repr(now))
            await p.execute()
        await asyncio.gather(*(one(i) for i in range(s, min(n, s + 50))))
    await r.aclose()
    print(ready, status("VmHWM:"))

asyncio.run(main(int(sys.argv[1])))
"""


def body_rss(n: int) -> tuple[float, float]:
    """MiB summed over two processes running the job body alone at once (``BODY_ALONE``): RSS once connected, and
    each one's peak RSS (their sum is at least the peak of their sum, which peerbench samples). Peerbench sums its
    two worker processes' RSS the same way (every page each process has resident)."""
    procs = [
        subprocess.Popen([sys.executable, "-c", BODY_ALONE, str(n // 2), str(DB)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0].split() for p in procs]
    if any(p.returncode != 0 or len(out) != 2 for p, out in zip(procs, outs, strict=True)):
        raise SystemExit(f"the job body alone failed: {outs}")
    return sum(int(o[0]) for o in outs) / 1024, sum(int(o[1]) for o in outs) / 1024


def server_cpu() -> dict[int, float]:
    """CPU seconds so far of every ``postgres`` process of this machine, by pid."""
    seen: dict[int, float] = {}
    for p in psutil.process_iter(["name", "cpu_times"]):
        if p.info["name"] == "postgres" and p.info["cpu_times"] is not None:
            seen[p.pid] = p.info["cpu_times"].user + p.info["cpu_times"].system
    return seen


def engine(store: Store, n: int, *, body: bool = True) -> tuple[float, float | None]:
    """CPU µs a run: one worker in this process running ``n`` scheduled runs of the async body (``body=False``: of
    a body that returns at once, the engine alone); and on a PostgreSQL store on this machine, the server's CPU µs
    a run over the same span (``None`` otherwise)."""
    store.reset()
    dt = Ductape(store.url)
    done = 0
    stop = asyncio.Event()
    clients: dict[int, aredis.Redis] = {}

    async def noop(input: dict[str, Any], ctx: RunContext) -> None:
        nonlocal done
        loop = id(asyncio.get_running_loop())
        if loop not in clients:
            clients[loop] = aredis.Redis(db=DB)
        if body:
            await async_body(clients[loop], input["i"])
        done += 1
        if done == n:
            stop.set()

    dt.function("noop")(noop)
    local = store.is_pg and any(h in store.url for h in ("@127.0.0.1", "@localhost", "@[::1]"))
    with dt:
        dt.job.create(JOB)
        for s in range(0, n, 1000):
            dt.job.schedule_many([{**REQUEST, "input": {"i": i}, "start_at": 0} for i in range(s, min(n, s + 1000))])

        async def main() -> tuple[float, float | None]:
            before = server_cpu() if local else {}
            started = time.process_time()
            await dt.run_worker(stop)
            spent = time.process_time() - started
            if not local:
                return spent, None
            after = server_cpu()  # the pool's connections are still open: their backends are counted
            return spent, sum(t - before.get(pid, 0.0) for pid, t in after.items())

        spent, server = asyncio.run(main())
    return spent / n * 1e6, None if server is None else server / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    parser.add_argument("-n", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    redis.Redis(db=DB).flushdb()
    store = Store(args.store)
    try:
        print(f"store: {store.label}; {args.n} jobs a round, {args.rounds} rounds (medians)")
        a, s, e, alone, pair, pair_cpu, server = [], [], [], [], [], [], []
        for _ in range(args.rounds):
            a.append(async_alone(args.n))
            s.append(sync_alone(args.n))
            run_cpu, server_share = engine(store, args.n)
            e.append(run_cpu)
            alone.append(engine(store, args.n, body=False)[0])
            if server_share is not None:
                server.append(server_share)
            rate, cpu = pair_alone(args.n)
            pair.append(rate)
            pair_cpu.append(cpu)
        body, run = statistics.median(a), statistics.median(e)
        print(f"async job body alone : {body:6.0f} CPU µs a job  (at most {1e6 / body:,.0f} jobs/s a process)")
        print(f"sync job body alone  : {statistics.median(s):6.0f} CPU µs a job")
        print(f"worker, async body   : {run:6.0f} CPU µs a run   ({1e6 / run:,.0f} runs/s a process, CPU-bound)")
        print(f"worker, no-op body   : {statistics.median(alone):6.0f} CPU µs a run   (the engine alone)")
        print(f"the engine's share   : {run - body:6.0f} CPU µs a run   ({(run - body) / run:.0%} of a run)")
        if server:
            print(f"PostgreSQL's own CPU : {statistics.median(server):6.0f} CPU µs a run   (its processes, same span)")
        print(
            f"two processes, body alone: {statistics.median(pair):,.0f} jobs/s "
            f"({', '.join(f'{x:,.0f}' for x in pair)}; {statistics.median(pair_cpu):.0f} CPU µs a job): the most "
            "two asyncio workers running this job can process here, whatever their engine"
        )
        ready, peak = body_rss(args.n)
        print(
            f"two processes, body alone: {ready:.0f} MiB RSS summed once connected ({peak:.0f} MiB, their peaks "
            "summed): the least two processes running this job can hold, whatever their engine (peerbench's peak "
            "worker RSS)"
        )
    finally:
        store.close()
        redis.Redis(db=DB).flushdb()


if __name__ == "__main__":
    main()
