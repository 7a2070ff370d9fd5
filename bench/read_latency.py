"""One read of the store on PostgreSQL, as the engine makes it, beside the same statement in a transaction block.
A plain script: it prints figures only.

    python bench/read_latency.py [--store URL] [-n 3000] [--rounds 3]

``--store`` defaults to ``postgresql://postgres@127.0.0.1:5432/test?schema=bench_read`` (its schema is dropped and
made again, and dropped at the end). The store holds one job, 1,000 schedules and their runs. Timed, ``n`` times
each, alternating in every round: a read of one statement as the store makes it now (``next_wakeup``, which a
worker reads at its passes; ``get_schedule`` and ``list_runs`` of 50, as a GET of the API reads them), on its own,
and the same read in a transaction block (BEGIN, the statement, COMMIT: three round trips), as the store made
every read before. Printed: the mean of each, in ms.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from _common import Store, machine
from _job import REQUEST


def timed(call: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/test?schema=bench_read")
    ap.add_argument("-n", type=int, default=3_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    store = Store(args.store)
    if not store.is_pg:
        raise SystemExit("a PostgreSQL store: SQLite's reads make no round trip")
    print(machine())
    try:
        with store.fresh() as dt:
            made = dt.job.schedule_many([{**REQUEST, "input": {"i": i}, "start_at": 0} for i in range(1_000)])
            inner: Any = dt.store  # its two ways to read, the statement and its decoding the same
            sid = made[0].job_id
            runs: dict[str, Any] = {
                "schedule_id": None,
                "job_tag": None,
                "product_tag": None,
                "env": None,
                "phase": None,
            }
            runs |= {"since": None, "until": None, "limit": 50, "offset": 0}
            reads: list[tuple[str, dict[str, Any] | None]] = [
                ("next_wakeup", None),
                ("get_schedule", {"id": sid}),
                ("list_runs", runs),
            ]
            print(f"store: PostgreSQL; n={args.n:,} each; ms a read, on its own / in BEGIN ... COMMIT")
            for r in range(args.rounds):
                figures = []
                for name, params in reads:

                    def alone(name: str = name, params: Any = params) -> object:
                        return inner._read_all(name, params)

                    def in_block(name: str = name, params: Any = params) -> object:
                        return inner._read(lambda tx: tx.all(name, params))

                    if r % 2:  # neither always first
                        b, a = timed(in_block, args.n), timed(alone, args.n)
                    else:
                        a, b = timed(alone, args.n), timed(in_block, args.n)
                    figures.append(f"{name} {a:.3f} / {b:.3f}")
                print(f"  round {r + 1}: " + "; ".join(figures), flush=True)
    finally:
        import psycopg
        from psycopg import sql

        with psycopg.connect(store.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(store.schema)))
        store.close()


if __name__ == "__main__":
    main()
