"""Instructions a call, counted by Valgrind: the one figure of the hot path that does not move with the machine's
load. A plain script: it prints figures only.

    python bench/instructions.py [-n 1000] [--only one|many|worker]

Needs ``valgrind`` on the PATH (Debian: ``apt-get install valgrind``). Each workload runs twice in this script under
``valgrind --tool=cachegrind`` (the instructions every process of the run executed, counted exactly), once with
``n`` calls and once with none, on a fresh SQLite store in a temporary directory; the difference over ``n`` is what
one more call costs, its start, imports and store set-up cancelled out:

- ``one``: a ``job.schedule()`` of a one-off due at once (a schedule and its first run, one transaction);
- ``many``: a job of ``job.schedule_many`` in calls of 500;
- ``worker``: a run made by ``schedule_many`` and run by one worker in this process (``Ductape.run_worker``, an
  async FUNCTION that returns at once), from its claim to its outcome recorded: the ``many`` figure is taken off.

Counts repeat to within a fraction of a percent, where timings on a shared 2-core machine swing by a third, so a
change to the hot path is measured by running this before and after it. What they leave out: system calls count as
one instruction (a commit's writes to the WAL are about 37 ``pwrite`` calls a ``schedule()``), and a cache miss
costs what a hit does. Valgrind counts an instruction repeated by ``rep`` once per repeat, so a ``memset`` of a
page weighs thousands here and takes a tenth of a microsecond: its share is printed apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile

from _common import machine
from ductape_jobs import Ductape

REQUEST = {"env": "bench", "product_tag": "bench", "event": "noop"}
JOB = {"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"}
WARM = 300  # calls before the counted ones, in both runs: the statement cache and the job's definition warm


def inner(workload: str, n: int, directory: str) -> None:
    """The workload itself (run under Valgrind by ``count``)."""
    dt = Ductape(f"sqlite:///{os.path.join(directory, 'store.db')}")
    done = 0
    stop = asyncio.Event()

    async def noop(input: dict[str, object], ctx: object) -> None:
        nonlocal done
        done += 1
        if done == WARM + n:
            stop.set()

    dt.function("noop")(noop)
    with dt:
        dt.job.create(JOB)
        schedule = dt.job.schedule
        if workload == "one":
            for i in range(WARM + n):
                schedule({**REQUEST, "input": {"i": i}, "start_at": 0})
            return
        for start in range(0, WARM + n, 500):
            rows = range(start, min(WARM + n, start + 500))
            dt.job.schedule_many([{**REQUEST, "input": {"i": i}, "start_at": 0} for i in rows])
        if workload == "worker":
            asyncio.run(dt.run_worker(stop))


def count(workload: str, n: int) -> tuple[int, int]:
    """Instructions of a run of ``workload`` with ``n`` counted calls, under Valgrind: all of them, and those of
    ``memset`` (Valgrind counts each repeat of ``rep stosb``, one a byte: a zeroed 4 KB page weighs 4,096 here)."""
    with tempfile.TemporaryDirectory(prefix="ductape-ir-") as directory:
        out = os.path.join(directory, "cachegrind.out")
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}"]
        command += [sys.executable, __file__, "--inner", workload, "-n", str(n), "--dir", directory]
        subprocess.run(command, capture_output=True, text=True, check=True)
        total = memset = 0
        in_memset = False
        with open(out, encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("fn="):
                    in_memset = "memset" in line
                elif line[:1].isdigit():
                    cost = int(line.split()[1])
                    total += cost
                    memset += cost if in_memset else 0
    return total, memset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="calls counted (default 1000)")
    parser.add_argument("--only", choices=("one", "many", "worker"), help="one workload only")
    parser.add_argument("--inner", choices=("one", "many", "worker"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.inner, args.n, args.dir)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on the PATH (Debian: apt-get install valgrind)")
    print(machine())
    label = {"one": "a schedule()", "many": "a job of schedule_many", "worker": "a run, claim to outcome"}
    per: dict[str, tuple[int, int]] = {}

    def one_more(workload: str) -> tuple[int, int]:
        if workload not in per:
            (total, memset), (total0, memset0) = count(workload, args.n), count(workload, 0)
            per[workload] = ((total - total0) // args.n, (memset - memset0) // args.n)
        return per[workload]

    for workload in (args.only,) if args.only else ("one", "many", "worker"):
        total, memset = one_more(workload)
        if workload == "worker":  # its runs were made by schedule_many
            total, memset = total - one_more("many")[0], memset - one_more("many")[1]
        counted = f"({args.n:,} counted, SQLite)"
        print(f"{label[workload]:>26}: {total:,} instructions, {memset:,} of them memset's {counted}")


if __name__ == "__main__":
    main()
