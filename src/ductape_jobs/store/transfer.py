"""The store core's part for copying a store into another, new one (``Store.copy_to``): a project that outgrows one
machine moves its SQLite store to PostgreSQL (``ductape copy --to postgresql://...``), or a PostgreSQL one to a
SQLite file (a test bed, a smaller deploy).

Everything the source holds is read as one transaction sees it (PostgreSQL: a repeatable-read snapshot) and written
in one transaction of the target: all of it or nothing. The store's tables are ``STORE_TABLES`` (a test checks them
against what the migrations make: other tables in a PostgreSQL schema, the application's own, are left alone);
their columns are read from the schemas themselves, which must be the same (both stores migrated by this release:
a column a migration adds is copied with no change here), and the target must hold nothing yet. A run that a
worker holds under a live lease, or a feature run a driver holds, refuses the copy: it would run again in the new
store once its lease lapsed there.

Rows are copied as they are, their ids and times too, except the outbox's (``store/outbox.py``), which each dialect
orders its own way (SQLite by ``seq``, PostgreSQL by ``(txid, seq)``): its events are written in their order with
``txid`` 0 and ``seq`` numbered from 1 (PostgreSQL's next ones come after them: their ``txid`` is larger, and the
identity goes on from the last ``seq``), the cursors into it (each webhook sender's, the pruned mark) are moved onto
that numbering, and live streams (``ductape serve``'s readers, leased) are not copied: the target's stream epoch is
a new one, so a reader that reconnects to it starts afresh, told of the gap."""

from __future__ import annotations

from bisect import bisect_right
from contextlib import closing
from datetime import datetime

from ductape_jobs.errors import ConflictError, StoreError, ValidationError
from ductape_jobs.logs import logger
from ductape_jobs.store.base import Store
from ductape_jobs.store.codec import ms
from ductape_jobs.store.dialect import Tx, UsesDialect

#: The store's tables (what its migrations make), in the order they are copied: a migration that adds one adds it here
#: (``tests/store/test_transfer.py`` compares them with a new store's).
STORE_TABLES = (
    "jobs", "schedules", "runs", "attempts", "run_minutes", "cache_entries", "feature_runs", "feature_events",
    "resources", "resource_starts", "limit_holds", "api_keys", "login_sessions", "webhooks", "webhook_deliveries",
    "outbox", "outbox_consumers", "outbox_marks", "schema_migrations",
)  # fmt: skip
#: The target's own table: its migrations, applied when it was made.
OWN_TABLES = frozenset({"schema_migrations"})
#: The outbox's tables, copied by ``_copy_outbox`` (renumbered), not as they are.
OUTBOX_TABLES = frozenset({"outbox", "outbox_consumers", "outbox_marks"})
#: A table every new store holds a row of (migration 17): its values are set, not inserted.
SET_TABLES = frozenset({"outbox_marks"})

log = logger("ductape_jobs.store")


class TransferCore(UsesDialect):
    """A store's contents copied into another, new store (see ``Store.copy_to``)."""

    def check_copy(self, now: datetime) -> None:
        self._read(lambda source: _refuse_uncopyable(source, now, _schema(source)))

    def copy_to(self, target: Store, now: datetime, *, batch: int = 1_000) -> dict[str, int]:
        if not isinstance(target, TransferCore):
            raise ValidationError("to", f"must be a SQL store (SQLite or PostgreSQL), not {type(target).__name__}")
        if target is self:
            raise ValidationError("to", "is the store copied from; name a new, empty store")
        copied: dict[str, int] = {}
        landed = False  # the target committed: a retry of the source's read (a lost connection) copies nothing again

        def read(source: Tx) -> None:
            nonlocal landed
            if landed:
                return
            source.run("copy_snapshot")  # before any other statement: the snapshot every table is read in
            source.run("copy_unhurried")  # it waits for the target's writes
            columns = _schema(source)
            _refuse_uncopyable(source, now, columns)  # again, in the snapshot copied: check_copy's may be stale
            try:
                copied.update(target._write(lambda into: _copy_into(source, into, columns, batch)))
            except ConflictError:  # a row already there: written since _copy_into found the target empty
                raise ValidationError(  # not the driver's message: it quotes the row's key, which may be a secret's
                    "to", "holds a row the copy writes: copy into a new, empty store, with nothing else using it"
                ) from None
            landed = True

        try:
            self._read(read)
        except StoreError:
            if not landed:  # else only the end of the source's read-only transaction failed: the copy is whole
                raise
        try:  # the copy is whole: a failure here only leaves the statistics to autovacuum
            target._write(lambda into: into.run("copy_statistics"))
        except StoreError as exc:
            log.warning("the copy is whole; gathering its tables' statistics failed (autovacuum will): %s", exc)
        return copied


def _refuse_uncopyable(source: Tx, now: datetime, columns: dict[str, list[str]]) -> None:
    """``ValidationError`` (``store``) when ``source`` holds a run under a live lease, or holds nothing to copy."""
    _refuse_held(source, now)
    if _first_with_data(source, columns) is None:
        raise ValidationError(
            "store",
            "holds nothing to copy (no job, schedule, run, key or webhook): is it the store you meant? Check --store "
            "(or the store the --app's Ductape() opens) and the folder you run in",
        )


def _refuse_held(source: Tx, now: datetime) -> None:
    held = source.one("live_leases", {"now": ms(now)}) or {"runs": 0, "features": 0}
    if held["runs"] or held["features"]:
        count, kind = (held["runs"], "run") if held["runs"] else (held["features"], "feature run")
        what = f"1 {kind} is" if count == 1 else f"{count} {kind}s are"
        raise ValidationError(
            "store",
            f"{what} running under a worker's lease: stop every worker (and `ductape serve`, which runs one; "
            "and feature.run calls) first, so that none goes on here while it runs again in the copy",
        )


def _copy_into(source: Tx, into: Tx, columns: dict[str, list[str]], batch: int) -> dict[str, int]:
    """Every table of ``columns`` from ``source`` into ``into``, which must hold nothing yet; the rows by table."""
    into.run("copy_unhurried")  # it waits for the source's reads
    into.run("copy_target_lock")  # PostgreSQL: a second copy into it waits, then finds it holds data
    if _schema(into) != columns or not all(columns.values()):
        raise StoreError(
            "the two stores' schemas differ (tables or columns): open both with this release of ductape-jobs, which "
            "migrates them, and copy again"
        )
    held = _first_with_data(into, columns)
    if held is not None:
        raise ValidationError("to", f"holds data already (its {held}): copy into a new, empty store")
    copied = {
        table: _copy_table(source, into, table, names, batch)
        for table, names in columns.items()
        if table not in OWN_TABLES | OUTBOX_TABLES
    }
    copied.update(_copy_outbox(source, into, columns, batch))
    into.sync_outbox_triggers()  # they exist while some webhook or live stream wants them
    return copied


def _schema(tx: Tx) -> dict[str, list[str]]:
    """Each of the store's tables with its columns, in order (none: the table is not there)."""
    return {table: [row["name"] for row in tx.all("table_columns", {"table": table})] for table in STORE_TABLES}


def _first_with_data(tx: Tx, columns: dict[str, list[str]]) -> str | None:
    """The first table of ``columns`` holding a row of data (not the migrations' own rows), ``None`` if none does."""
    data = (t for t, names in columns.items() if names and t not in OWN_TABLES | SET_TABLES)
    return next((t for t in data if _holds_rows(tx, t, columns[t])), None)


def _holds_rows(tx: Tx, table: str, columns: list[str]) -> bool:
    with closing(tx.rows_of(table, columns, (), 1)) as rows:  # closed at once: PostgreSQL's cursor is named
        return next(rows, None) is not None


def _copy_table(source: Tx, into: Tx, table: str, columns: list[str], batch: int) -> int:
    count = 0
    for rows in source.rows_of(table, columns, (), batch):
        into.put_rows(table, columns, rows)
        count += len(rows)
    return count


def _copy_outbox(source: Tx, into: Tx, columns: dict[str, list[str]], batch: int) -> dict[str, int]:
    """The outbox's events in their order, renumbered (module doc), and the cursors into them moved."""
    order: list[tuple[int, int]] = []  # each event's (txid, seq) in the source, by its new seq - 1
    for rows in source.rows_of("outbox", columns["outbox"], ("txid", "seq"), batch):
        renumbered = []
        for row in rows:
            order.append((row["txid"], row["seq"]))
            renumbered.append({**row, "txid": 0, "seq": len(order)})
        into.put_rows("outbox", columns["outbox"], renumbered)
    into.run("copied_outbox")

    def moved(txid: int, seq: int) -> int:
        """The new seq of the last event at or before the cursor ``(txid, seq)`` (0: none)."""
        return bisect_right(order, (txid, seq))

    senders = [
        {**row, "txid": 0, "seq": moved(row["txid"], row["seq"])}
        for rows in source.rows_of("outbox_consumers", columns["outbox_consumers"], ("name",), batch)
        for row in rows
        if row["lease_until"] is None  # a live stream's reader is not copied (module doc)
    ]
    into.put_rows("outbox_consumers", columns["outbox_consumers"], senders)
    for rows in source.rows_of("outbox_marks", columns["outbox_marks"], (), 1):
        for marks in rows:
            pruned = moved(marks["pruned_txid"], marks["pruned_seq"])
            into.run("put_outbox_marks", {"streams_epoch": marks["streams_epoch"] + 1, "pruned_seq": pruned})
    return {"outbox": len(order), "outbox_consumers": len(senders)}
