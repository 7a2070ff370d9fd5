"""Throughput with and without limits (issue 14). A plain script: it prints figures and asserts nothing.

    python bench/resource_limits.py [--store URL] [-n 2000] [--workers 2] [--rate 200] [--concurrency 4] [--sleep-ms 20]

Three runs of N jobs each, on a fresh store, by ``--workers`` worker processes started once the jobs are
queued; each figure is N / (first start -> last start), from the runs' own ``started_at``:

1. no limit: no-op jobs (the claim's fast path: the resource tables are never read);
2. a rate: the same jobs under a resource of ``--rate`` per second (ideal: the rate);
3. a concurrency: jobs sleeping ``--sleep-ms`` under a resource of ``--concurrency`` (ideal: concurrency /
   sleep), and the most runs seen executing at once (from the functions' own start and end times).

The store defaults to ``postgresql://postgres@127.0.0.1:5432/test?schema=bench_limits`` (the schema is dropped
and created first); ``--store sqlite:///path`` runs on a SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from ductape_jobs import Ductape, RunPhase
from ductape_jobs.products import Products

APP = textwrap.dedent(
    """
    import json, os, pathlib, time
    from ductape_jobs import Ductape, RunPhase
    from ductape_jobs.products import Products

    ductape = Ductape(os.environ["STORE"], products=Products([json.loads(os.environ["PRODUCT"])]))
    LOG = pathlib.Path(os.environ["MARKS"]) / f"spans.{os.getpid()}"

    @ductape.function("noop")
    async def noop(input, ctx):
        return None

    @ductape.function("nap")
    def nap(input, ctx):
        start = time.time()
        time.sleep(input["ms"] / 1000)
        with open(LOG, "a") as f:
            f.write(f"{start} {time.time()}\\n")

    if __name__ == "__main__":
        ductape.worker()
    """
)


def reset(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        return
    import psycopg

    schema = url.split("schema=")[1].split("&")[0]
    base = url.split("?")[0]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")


def scenario(url: str, product: dict[str, Any], job: dict[str, Any], n: int, workers: int, inp: dict[str, Any]) -> str:
    reset(url)
    folder = Path(tempfile.mkdtemp(prefix="ductape-limits-"))
    (folder / "app.py").write_text(APP)
    dt = Ductape(url, products=Products([product]))  # type: ignore[list-item]
    dt.product("bench").jobs.create(job)
    req = {"env": "bench", "product_tag": "bench", "event": job["tag"], "input": inp}
    for i in range(0, n, 1000):
        dt.job.schedule_many([req] * min(1000, n - i))
    env = {**os.environ, "STORE": url, "PRODUCT": json.dumps(product), "MARKS": str(folder)}
    procs = [subprocess.Popen([sys.executable, "app.py"], cwd=folder, env=env) for _ in range(workers)]
    try:
        deadline = time.monotonic() + 600
        while dt.store.count_runs().get(RunPhase.COMPLETED, 0) < n and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    starts = sorted(r.started_at.timestamp() for r in dt.job.runs(job_tag=job["tag"], limit=n) if r.started_at)
    dt.close()
    rate = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else 0.0
    spans = [tuple(map(float, line.split())) for f in folder.glob("spans.*") for line in f.read_text().splitlines()]
    peak = ""
    if spans:
        events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
        now = top = 0
        for _, step in events:
            now += step
            top = max(top, now)
        peak = f"; at most {top} executing at once"
    return f"{rate:,.0f} runs/s over {len(starts):,} starts{peak}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/test?schema=bench_limits")
    ap.add_argument("-n", type=int, default=2000, help="jobs per run")
    ap.add_argument("--workers", type=int, default=2, help="worker processes")
    ap.add_argument("--rate", type=int, default=200, help="per second, in run 2")
    ap.add_argument("--concurrency", type=int, default=4, help="in run 3")
    ap.add_argument("--sleep-ms", type=int, default=20, help="each job of run 3 sleeps this long")
    args = ap.parse_args()
    resources = {"api": {"rate": f"{args.rate}/s"}, "db": {"concurrency": args.concurrency}}
    product = {"tag": "bench", "envs": ["bench"], "resources": resources}
    noop = {"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"}
    print(f"store: {args.store.split('?')[0]}; N={args.n:,}; {args.workers} worker processes")
    print(f"1. no limit:            {scenario(args.store, product, noop, args.n, args.workers, {})}")
    rated = {**noop, "tag": "rated", "resources": ["api"]}
    print(f"2. rate {args.rate}/s:        {scenario(args.store, product, rated, args.n, args.workers, {})}")
    nap = {"name": "nap", "tag": "nap", "event_type": "FUNCTION", "event_tag": "nap", "resources": ["db"]}
    ideal = args.concurrency * 1000 / args.sleep_ms
    got = scenario(args.store, product, nap, args.n, args.workers, {"ms": args.sleep_ms})
    print(f"3. concurrency {args.concurrency} x {args.sleep_ms} ms (ideal {ideal:,.0f}/s): {got}")


if __name__ == "__main__":
    main()
