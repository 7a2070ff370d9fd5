"""One ``schedule()`` beside the floor under it: a bare one-row INSERT + COMMIT on the same database. A plain
script: it prints figures only.

    python bench/enqueue_floor.py [--store URL] [-n 2000]

``--store`` defaults to ``postgresql://postgres@127.0.0.1:5432/test``; a schema of its own is made and dropped.
``sqlite:///path.db`` measures SQLite the same way (the file is removed afterwards). The calls' p50, p99, p99.9
and max follow the mean; on PostgreSQL, this process's CPU time a call for each (the engine's Python and the
driver's). There a ``schedule()`` is one statement, its own transaction: one round trip, where the bare write makes
three (psycopg's BEGIN, the INSERT, the COMMIT). The bare loop uses the driver directly (psycopg
or sqlite3) with the store's own settings (SQLite: its page size, WAL, synchronous=NORMAL). On SQLite it also prints
the WAL pages one commit writes, for each: a page is written whole for every b-tree page a commit changed, so it
counts what the schema costs a call; and a ``schedule()``'s pages by b-tree (an index's leaf, and about every other
call more: an index's page that fills is balanced with its siblings, which are written too).
On SQLite it also prints what those writes alone cost: the statements one ``schedule()`` sends, captured and replayed
by the driver (BEGIN IMMEDIATE, the statements, COMMIT) with fresh ids. Between them only the fresh ids and each
statement's binding run in Python (about 11 us a call here, a tenth of the figure): no engine can schedule much
faster than that on this machine with this schema.

On PostgreSQL it prints the same: the one statement a ``schedule()`` sends (``ductape_add_schedules``: the check of
its job, the schedule, its first run and the NOTIFY, in autocommit), caught and replayed by psycopg alone with fresh
ids, and that statement's ratio to the bare INSERT + COMMIT. That ratio is the floor of the single call's: what the
schema's two rows and their indexes cost the server, before any of the engine's Python.

On SQLite it then times ``--bulk`` jobs (20,000) by ``schedule_many`` in calls of 1,000, and the share of its
transactions (BEGIN IMMEDIATE, the statements, COMMIT) in that: the rest is the engine's Python.

``--drop-index NAME`` (SQLite, repeatable) drops that index of the store's schema after the job is made and before
anything is timed: what one index costs a call. A scratch measure only (the queries that read it scan instead).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import struct
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ductape_jobs import Ductape
from ductape_jobs.store.sqlite.dialect import PAGE_SIZE


def bare_postgres(url: str, schema: str, n: int) -> tuple[float, float]:
    """The mean time of one INSERT + COMMIT, and this process's CPU time for one. A logged table, as the store's
    are: a TEMP or UNLOGGED table's commit writes no WAL and so waits for no flush (0.25 against 0.42 ms a commit
    here), which would set the floor below what a durable write costs."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(f"CREATE TABLE {schema}.floor (id text PRIMARY KEY, v text)")
        conn.commit()
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            conn.execute(f"INSERT INTO {schema}.floor VALUES (%s, %s)", (f"k{i}", "x"))
            conn.commit()
        return (time.perf_counter() - started) / n, (time.process_time() - cpu) / n


def bare_sqlite(path: str, n: int) -> tuple[float, float]:
    """The mean time of one INSERT + COMMIT, and the WAL pages one writes (``wal_pages``)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # the store's: a commit writes whole pages
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE floor (id TEXT PRIMARY KEY, v TEXT)")

    def insert(i: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO floor VALUES (?, ?)", (f"k{i}", "x"))
        db.execute("COMMIT")

    started = time.perf_counter()
    for i in range(n):
        insert(i)
    took = (time.perf_counter() - started) / n
    pages = wal_pages(path, lambda i: insert(n + i))
    db.close()
    return took, pages


def wal_pages(path: str, write: Callable[[int], object], k: int = 200) -> float:
    """The pages one ``write`` appends to the WAL of the SQLite file at ``path``, over ``k`` of them: each commit
    writes every page it changed whole (a frame: a 24-byte header and the page), so this is what a commit costs
    in writes. The WAL is checkpointed and emptied first (no other connection may be reading it)."""
    return sum(wal_trees(path, write, k).values())


def wal_trees(path: str, write: Callable[[int], object], k: int = 200) -> dict[str, float]:
    """``wal_pages`` by the b-tree (table or index) each page belongs to, read from the WAL's frame headers and
    SQLite's ``dbstat`` table (``?`` where this SQLite has no ``dbstat`` or the page is new)."""
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
    for i in range(k):
        write(i)
    with open(f"{path}-wal", "rb") as wal:
        wal.seek(32)  # the WAL's header
        frames = []
        while len(header := wal.read(24)) == 24:
            frames.append(struct.unpack(">I", header[:4])[0])  # the frame's page number
            wal.seek(page, os.SEEK_CUR)
    owners: dict[int, str] = {}
    with sqlite3.connect(path) as db, contextlib.suppress(sqlite3.OperationalError):  # no dbstat: every page "?"
        owners = dict(db.execute("SELECT pageno, name FROM dbstat"))
    by_tree: dict[str, float] = {}
    for number in frames:
        name = owners.get(number, "?")
        by_tree[name] = by_tree.get(name, 0.0) + 1 / k
    return by_tree


def one_call(
    store: str, n: int, drop: Sequence[str] = ()
) -> tuple[float, list[float], float | None, float | None, dict[str, float], float]:
    """The mean time of one ``schedule()``, each call's time, sorted, on SQLite the WAL pages one writes and the
    time its writes alone take (``replayed``), and this process's CPU time for one. ``drop``: SQLite indexes dropped
    first."""
    with Ductape(store) as dt:
        dt.job.create({"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
        if drop:
            with sqlite3.connect(store.removeprefix("sqlite:///"), isolation_level=None) as db:
                names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
                if unknown := [name for name in drop if name not in names]:
                    raise SystemExit(f"--drop-index: no index {unknown[0]!r} (there are {sorted(names)})")
                for name in drop:
                    db.execute(f'DROP INDEX "{name}"')
        for i in range(200):  # warm up: the job definition is cached, the pool filled
            dt.job.schedule({"env": "prd", "product_tag": "bench", "event": "noop", "input": {"i": i}})
        calls = []
        clock = time.perf_counter
        started, cpu = clock(), time.process_time()
        for i in range(n):
            before = clock()
            dt.job.schedule({"env": "prd", "product_tag": "bench", "event": "noop", "input": {"i": i}})
            calls.append(clock() - before)
        took, cpu = (clock() - started) / n, (time.process_time() - cpu) / n
        pages = writes = None
        trees: dict[str, float] = {}
        if store.startswith("postgresql"):
            request = {"env": "prd", "product_tag": "bench", "event": "noop"}
            writes = replayed_postgres(store, lambda: dt.job.schedule({**request, "input": {}}), n)
        if store.startswith("sqlite"):
            request = {"env": "prd", "product_tag": "bench", "event": "noop"}
            writes = replayed(store.removeprefix("sqlite:///"), lambda: dt.job.schedule({**request, "input": {}}), n)
            trees = wal_trees(
                store.removeprefix("sqlite:///"), lambda i: dt.job.schedule({**request, "input": {"i": i}})
            )
            pages = sum(trees.values())
        return took, sorted(calls), pages, writes, trees, cpu


def bulk(store: str, n: int) -> tuple[float, float]:
    """SQLite: ``n`` jobs by ``schedule_many`` in calls of 1,000 (as peerbench's bulk phase), in jobs a second, and
    the share of its transactions alone: SQLite's write of each call (BEGIN IMMEDIATE, the statements, COMMIT),
    timed around ``SQLiteDialect.transact``. A call's parts are planned and made before that (``transact_together``),
    so what is left is the engine's Python: parsing, planning and making the rows."""
    from ductape_jobs.store.sqlite import dialect

    spent = [0.0]
    transact = dialect.SQLiteDialect.transact

    def timed(self: dialect.SQLiteDialect, op: Any, **kw: Any) -> Any:
        before = time.perf_counter()
        try:
            return transact(self, op, **kw)
        finally:
            spent[0] += time.perf_counter() - before

    request = {"env": "prd", "product_tag": "bench", "event": "noop"}
    with Ductape(store) as dt:
        dt.job.create({"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
        dt.job.schedule_many([{**request, "input": {"i": i}} for i in range(1_000)])  # warm up
        dialect.SQLiteDialect.transact = timed  # type: ignore[method-assign]
        try:
            started = time.perf_counter()
            for first in range(0, n, 1_000):
                dt.job.schedule_many([{**request, "input": {"i": i}} for i in range(first, min(n, first + 1_000))])
            took = time.perf_counter() - started
        finally:
            dialect.SQLiteDialect.transact = transact  # type: ignore[method-assign]
    return n / took, n / spent[0]


def replayed(path: str, schedule: Callable[[], object], n: int) -> float:
    """The mean time of the statements one ``schedule()`` sends (caught on ``SQLiteTx``) run again by sqlite3 alone,
    in a transaction of their own, ``n`` times with fresh ids: SQLite's share of a call."""
    from ductape_jobs.ids import new_id
    from ductape_jobs.store.sqlite import dialect

    sent: list[tuple[str, list[dict[str, Any]]]] = []
    many, check = dialect.SQLiteTx.many, dialect.SQLiteTx.check_jobs

    def caught_many(tx: dialect.SQLiteTx, name: str, params: Sequence[Any]) -> None:
        sent.append((name, [dict(p) for p in params]))
        many(tx, name, params)

    def caught_check(tx: dialect.SQLiteTx, checks: Sequence[Mapping[str, Any]]) -> None:
        sent.append(("check_jobs", [dict(c) for c in checks]))
        check(tx, checks)

    dialect.SQLiteTx.many, dialect.SQLiteTx.check_jobs = caught_many, caught_check  # type: ignore[assignment]
    try:
        schedule()
    finally:
        dialect.SQLiteTx.many, dialect.SQLiteTx.check_jobs = many, check  # type: ignore[method-assign]
    ids = {str(p["id"]): str(p["id"]).split("_")[0] for name, ps in sent if name.startswith("insert") for p in ps}
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(f"PRAGMA wal_autocheckpoint = {dialect.WAL_PAGES}")

    def write() -> None:
        fresh = {old: new_id(prefix) for old, prefix in ids.items()}
        db.execute("BEGIN IMMEDIATE")
        for name, params in sent:
            bound = dialect.B[name]
            for p in params:
                db.execute(bound.sql, bound.args({k: fresh.get(v, v) for k, v in p.items()})).fetchall()
        db.execute("COMMIT")

    for _ in range(200):
        write()
    started = time.perf_counter()
    for _ in range(n):
        write()
    took = (time.perf_counter() - started) / n
    db.close()
    return took


def replayed_postgres(store: str, schedule: Callable[[], object], n: int) -> float:
    """The mean time of the one statement a ``schedule()`` sends (caught on ``PostgresSendTx``) run again by psycopg
    alone on a connection of its own (autocommit, as the store sends it: its own transaction), ``n`` times with fresh
    ids: the server's share of a call and the round trip, with none of the engine's Python."""
    import psycopg
    from psycopg import sql

    from ductape_jobs.ids import new_id
    from ductape_jobs.store.postgres import dialect
    from ductape_jobs.store.postgres.connection import split_url

    sent: list[tuple[str, dict[str, Any]]] = []
    add = dialect.PostgresSendTx.add_schedules

    def caught(tx: dialect.PostgresSendTx, *args: Any) -> None:
        add(tx, *args)
        query, params, _ = tx.sent[-1]
        sent.append((str(query), dict(params)))

    dialect.PostgresSendTx.add_schedules = caught  # type: ignore[method-assign,assignment]
    try:
        schedule()
    finally:
        dialect.PostgresSendTx.add_schedules = add  # type: ignore[method-assign]
    ((query, params),) = sent
    ids = {str(r["id"]): str(r["id"]).split("_")[0] for key in ("schedules", "firsts") for r in json.loads(params[key])}
    url, options = split_url(store)

    def fresh() -> dict[str, Any]:
        new = {old: new_id(prefix) for old, prefix in ids.items()}
        out = dict(params)
        for key in ("schedules", "firsts"):
            for old, made in new.items():
                out[key] = out[key].replace(old, made)
        return out

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(options["schema"])))
        for _ in range(200):
            conn.execute(query, fresh())
        made = [fresh() for _ in range(n)]  # before the clock starts: no Python of ours is timed
        started = time.perf_counter()
        for one in made:
            conn.execute(query, one)
        return (time.perf_counter() - started) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("-n", type=int, default=2_000, help="calls timed (after 200 to warm up)")
    ap.add_argument("--drop-index", action="append", default=[], help="SQLite: drop this index first (repeatable)")
    ap.add_argument("--bulk", type=int, default=20_000, help="SQLite: jobs by schedule_many (0: none)")
    args = ap.parse_args()
    if args.drop_index and not args.store.startswith("sqlite"):
        raise SystemExit("--drop-index is for a sqlite:/// store")
    tag = "floor_" + uuid.uuid4().hex[:8]
    if args.store.startswith("sqlite"):
        path = args.store.removeprefix("sqlite:///")
        floor_path = f"{path}.{tag}"
        bulk_path = f"{path}.bulk_{tag}"
        try:
            (call, calls, pages, writes, trees, cpu), (bare, bare_pages) = (
                one_call(args.store, args.n, args.drop_index),
                bare_sqlite(floor_path, args.n),
            )
            many = bulk(f"sqlite:///{bulk_path}", args.bulk) if args.bulk else None
        finally:
            for suffix in ("", "-wal", "-shm"):
                for p in (path + suffix, floor_path + suffix, bulk_path + suffix):
                    if os.path.exists(p):
                        os.remove(p)
    else:
        import psycopg

        many = None
        sep = "&" if "?" in args.store else "?"
        try:
            call, calls, pages, writes, trees, cpu = one_call(f"{args.store}{sep}schema={tag}", args.n)
            (bare, bare_cpu), bare_pages = bare_postgres(args.store, tag, args.n), None
        finally:
            with psycopg.connect(args.store, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {tag} CASCADE")
    dropped = f"; without {', '.join(args.drop_index)}" if args.drop_index else ""
    print(f"store: {args.store.split('?')[0]}; n={args.n:,}{dropped}")
    print(f"  one schedule():         {call * 1e3:.2f} ms ({1 / call:,.0f}/s)")
    tail = " / ".join(f"{calls[min(int(len(calls) * q), len(calls) - 1)] * 1e3:.2f}" for q in (0.5, 0.99, 0.999, 1.0))
    why = " (the call past the WAL's bound checkpoints it)" if args.store.startswith("sqlite") else ""
    print(f"    p50 / p99 / p99.9 / max: {tail} ms{why}")
    print(f"  bare INSERT + COMMIT:   {bare * 1e3:.2f} ms ({1 / bare:,.0f}/s)")
    print(f"  ratio:                  {call / bare:.1f}x (the issue's target for PostgreSQL: <= 1.5x)")
    if not args.store.startswith("sqlite"):  # SQLite's writes are this process's CPU too: the replay below parts them
        print(f"  this process's CPU:     {cpu * 1e3:.2f} ms a schedule(), {bare_cpu * 1e3:.2f} ms a bare one")
    if writes is not None and args.store.startswith("sqlite"):
        print(
            f"  its writes alone:       {writes * 1e3:.2f} ms ({1 / writes:,.0f}/s; sqlite3 replaying its statements)"
        )
    elif writes is not None:
        print(
            f"  its statement alone:    {writes * 1e3:.2f} ms ({1 / writes:,.0f}/s; psycopg replaying it), "
            f"{writes / bare:.1f}x the bare INSERT + COMMIT: the floor of the ratio above"
        )
    if pages is not None and bare_pages is not None:
        print(
            f"  WAL pages a commit:     {pages:.1f} a schedule(), {bare_pages:.1f} a bare INSERT (a COMMIT writes them)"
        )
        shares = ", ".join(f"{name} {count:.2f}" for name, count in sorted(trees.items(), key=lambda t: -t[1]))
        print(f"    by b-tree:            {shares}")
    if many is not None:
        print(
            f"  schedule_many:          {many[0]:,.0f} jobs/s in calls of 1,000; its transactions alone {many[1]:,.0f}"
            f" jobs/s ({1e6 / many[0]:.1f} us a job, {1e6 / many[1]:.1f} of them SQLite's write)"
        )


if __name__ == "__main__":
    main()
