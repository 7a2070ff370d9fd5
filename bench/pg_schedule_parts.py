"""Where one PostgreSQL ``schedule()``'s time in the server goes: the statement one call sends (captured), run again
with fresh ids against variants of ``ductape_add_schedules()`` (migration 21) that leave parts out, beside a bare
one-row INSERT (each its own transaction, autocommit, as the store's call is). A plain script: it prints the mean
time of a call (ms) for each, per round; the spread between rounds shows how far to trust a difference.

    python bench/pg_schedule_parts.py [--url postgresql://postgres@127.0.0.1:5432/test] [--rounds 5] [-n 1000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from importlib import resources
from typing import Any

import psycopg

from ductape_jobs import Ductape
from ductape_jobs.store.postgres import dialect

SCHEMA = "bench_parts"


def captured_call(base: str) -> dict[str, Any]:
    """The parameters of ``add_schedules`` that one ``schedule()`` sends, on a fresh store in ``SCHEMA``."""
    seen: list[dict[str, Any]] = []
    made = dialect._add_params

    def keep(*args: Any, **kw: Any) -> Any:
        seen.append(dict(made(*args, **kw)))
        return seen[-1]

    dialect._add_params = keep  # type: ignore[assignment]
    try:
        with Ductape(f"{base}?schema={SCHEMA}") as dt:
            dt.job.create({"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
            dt.job.schedule({"env": "prd", "product_tag": "bench", "event": "noop", "start_at": 0})
    finally:
        dialect._add_params = made  # type: ignore[method-assign]
    return seen[0]


def variants() -> dict[str, str]:
    """The function, and the function with parts left out, each by name."""
    text = (resources.files("ductape_jobs.store.postgres.migrations") / "0021_add_schedules.sql").read_text()
    fn = text[text.index("CREATE FUNCTION") :]
    end = "END\n$$;"
    notify = "    PERFORM pg_notify(channel, payload);\n"
    return {
        "full": fn,
        "no_notify": fn.replace(notify, ""),
        "no_check": fn.replace("    PERFORM ductape_check_jobs(checks::jsonb);\n", ""),
        "no_runs": fn[: fn.index("    INSERT INTO runs")] + end,
        "check_notify_only": fn[: fn.index("    INSERT INTO schedules")]
        + "    PERFORM pg_notify(channel, payload);\n"
        + end,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=1000)
    args = ap.parse_args()
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    params = captured_call(args.url)
    ids = itertools.count()
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {SCHEMA}")
        names = list(variants())
        for name, sql in variants().items():
            conn.execute(sql.replace("CREATE FUNCTION ductape_add_schedules(", f"CREATE FUNCTION v_{name}("))
        conn.execute("CREATE TABLE bare (id text PRIMARY KEY, v text)")

        def call(name: str) -> None:
            n = next(ids)
            if name == "bare":
                conn.execute("INSERT INTO bare VALUES (%s, 'x')", (f"b{n}",))
                return
            schedules, firsts = json.loads(params["schedules"]), json.loads(params["firsts"])
            schedules[0]["id"] = firsts[0]["schedule_id"] = f"s{n}"
            firsts[0]["id"] = f"r{n}"
            sent = (params["checks"], json.dumps(schedules), params["keyed"], json.dumps(firsts))
            conn.execute(
                f"SELECT v_{name}(%s::json, %s::json, %s::json, %s::json, %s, %s)",
                (*sent, params["channel"], params["payload"]),
            )

        took: dict[str, list[float]] = {name: [] for name in [*names, "bare"]}
        for _ in range(args.rounds):
            for name in took:
                started = time.perf_counter()
                for _ in range(args.n):
                    call(name)
                took[name].append((time.perf_counter() - started) / args.n * 1e3)
        for name, times in took.items():
            print(f"{name:18s} " + " ".join(f"{t:.3f}" for t in times) + " ms")
        conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
