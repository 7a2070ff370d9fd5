"""What tracing costs: ``schedule_many`` then ``drain()`` of N no-op async FUNCTION runs in one process, on a
fresh SQLite file, with tracing off, on without an SDK (the API's no-op spans), and on with the SDK exporting to
memory. A plain script: it prints figures only.

    python bench/tracing_overhead.py [-n 5000] [--repeat 5] [--modes off,noop,sdk]

Each mode runs ``--repeat`` times (off and noop alternating, then sdk: a provider once set stays), and the
median rate is printed, with the median CPU time per run (all threads of the process: less swayed than the rate
by other processes on a shared machine). To set "off"
beside the code before tracing existed, run the same script with ``PYTHONPATH`` pointing at that checkout's
``src`` and ``--modes off`` (an older ``Ductape`` has no ``tracing`` argument: off passes none).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ductape_jobs import Ductape


def one(mode: str, n: int) -> tuple[float, float]:
    """(runs per second, CPU microseconds per run: every thread of the process) of one drain of ``n`` runs."""
    kwargs: dict[str, Any] = {} if mode == "off" else {"tracing": True}
    with tempfile.TemporaryDirectory() as tmp:
        d = Ductape(f"sqlite:///{Path(tmp) / 'jobs.db'}", **kwargs)
        try:

            async def noop(input: Any, ctx: Any) -> None:
                await asyncio.sleep(0)

            d.function("noop")(noop)
            d.job.create({"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
            for start in range(0, n, 1000):
                d.job.schedule_many(
                    [{"env": "dev", "product_tag": "bench", "event": "noop"} for _ in range(min(1000, n - start))]
                )
            started, cpu = time.perf_counter(), time.process_time()
            summary = d.drain()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            assert summary.completed == n, summary
            return n / elapsed, cpu / n * 1e6
        finally:
            d.close()


def sdk() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--modes", default="off,noop,sdk")
    args = parser.parse_args()
    modes = args.modes.split(",")
    rates: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    one(modes[0], min(args.n, 500))  # warm-up: imports, first connections
    for _ in range(args.repeat):  # before any SDK: a TracerProvider, once set, cannot be unset
        for mode in (m for m in modes if m != "sdk"):
            rates[mode].append(one(mode, args.n))
    if "sdk" in modes:
        exporter = sdk()
        for _ in range(args.repeat):
            exporter.clear()
            rates["sdk"].append(one("sdk", args.n))
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
    print(f"runs: {args.n}, repeats: {args.repeat}, opentelemetry modules loaded at the end: {len(loaded)}")
    for mode in modes:
        if rates[mode]:
            rate = statistics.median(r for r, _ in rates[mode])
            cpu = statistics.median(c for _, c in rates[mode])
            each = ", ".join(f"{c:,.0f}" for _, c in rates[mode])
            print(f"{mode:>5}: median {rate:,.0f} runs/s, {cpu:,.0f} CPU us/run  ({each})")


if __name__ == "__main__":
    main()
