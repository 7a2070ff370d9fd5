"""Spawn to first job, and the RSS then, of one ``ductape worker`` process, for one or more source trees in turn. A
plain script: it prints figures and asserts nothing.

    python bench/spawn.py [--store URL] [--rounds 12] [--python PY ...] [TREE ...]

Each round, for each tree (in turn, the order reversed every other round so that neither is always first): a fresh
store holding one due run (made by this process), then ``python -m ductape_jobs.cli.main worker --app _job:app``
with ``PYTHONPATH`` at that tree's ``src`` (none given: the installed package), until its first job has started
(``_job``'s record, read every 2 ms); then its RSS (``VmRSS``) and a SIGTERM. Printed per tree: the median and the
least of the spawn times, and the median RSS. A tree of a commit is made by ``git archive <commit> src | tar -x -C
<dir>`` (give ``<dir>``). As peerbench's editable install, the package is compiled from source at each start when
``PYTHONDONTWRITEBYTECODE=1`` is set and no ``__pycache__`` is in the tree (``find <dir> -name __pycache__ -prune
-exec rm -rf {} +``).

``--python`` gives, in the order of the trees, the interpreter each runs with (default: this one): a venv of its
own, for a tree measured with other dependencies (the typer that loads pydantic: ``python -m venv /tmp/v &&
/tmp/v/bin/pip install -e '.[postgres]' && /tmp/v/bin/pip install --no-deps typer==0.29.2``). ``--store``
defaults to a temporary SQLite file; ``postgresql://...?schema=bench`` (that schema is dropped and made again each
round) measures PostgreSQL's start, its driver's import included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import BENCH, Records, Store, machine
from _job import JOB, RECORDS_ENV, REQUEST, STORE_ENV
from ductape_jobs import Ductape


def one_start(store: Store, tree: Path | None, python: str) -> tuple[float, float]:
    """One worker started on ``store`` (one due run) from ``tree`` by ``python``: seconds to its first job, and its
    RSS (MiB) then."""
    store.reset()
    with Ductape(store.url) as dt:
        dt.job.create(JOB)
        dt.job.schedule({**REQUEST, "input": {"i": 0}, "start_at": 0})
    records = Records(Path(store.tmp.name) / f"rec-{time.monotonic_ns()}")
    records.path.mkdir()
    env = {**os.environ, STORE_ENV: store.url, RECORDS_ENV: str(records.path)}
    if tree is not None:
        env["PYTHONPATH"] = f"{tree / 'src'}{os.pathsep}{BENCH}"
    cmd = [python, "-m", "ductape_jobs.cli.main", "worker", "--app", "_job:app", "-q"]
    spawned = time.time()
    proc = subprocess.Popen(cmd, cwd=BENCH, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while records.first is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker from {tree or 'the installed package'} ran no job (exit {proc.poll()})")
            time.sleep(0.002)
            records.scan()
        status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return records.first - spawned, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=None, help="a PostgreSQL URL with ?schema=...; default: a SQLite file")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--python", action="append", default=[], help="the interpreter of each tree, in order")
    parser.add_argument("trees", nargs="*", type=Path, help="directories holding a src/ductape_jobs")
    args = parser.parse_args()
    trees: list[Path | None] = [t.resolve() for t in args.trees] or [None]
    if len(args.python) > len(trees):
        raise SystemExit("more --python than trees")
    pythons = dict(zip(trees, [*args.python, *[sys.executable] * (len(trees) - len(args.python))], strict=True))
    store = Store(args.store)
    print(machine())
    print(
        f"store: {store.label}; {args.rounds} rounds; "
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')}"
    )
    times: dict[Path | None, list[float]] = {t: [] for t in trees}
    rss: dict[Path | None, list[float]] = {t: [] for t in trees}
    for r in range(args.rounds):
        for tree in trees if r % 2 == 0 else trees[::-1]:
            took, held = one_start(store, tree, pythons[tree])
            times[tree].append(took)
            rss[tree].append(held)
    for tree in trees:
        print(
            f"  {tree or 'installed'} ({pythons[tree]}): spawn -> first job median "
            f"{statistics.median(times[tree]):.3f} s "
            f"(least {min(times[tree]):.3f}); RSS then median {statistics.median(rss[tree]):.1f} MiB"
        )


if __name__ == "__main__":
    main()
