"""The SQLite dialect: one connection to one file in WAL mode, shared by the threads of a process behind a lock;
SQLite's single writer (``BEGIN IMMEDIATE``) orders the processes. Its SQL is the ``.sql`` files beside it
(``:name`` parameters, sent numbered: ``binding.py``; a list parameter is read with ``json_each(:name)``)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ductape_jobs.errors import ConflictError, StoreError, ValidationError, WouldWait
from ductape_jobs.store.base import Capabilities, Change
from ductape_jobs.store.dialect import (
    MAKES_ONE,
    Batches,
    Params,
    Row,
    job_check_error,
    link_new,
    plain_file,
    quoted,
    unstorable,
)
from ductape_jobs.store.sql import SchemaState, has_every_migration, load_dialect_queries, load_migrations, schema_state
from ductape_jobs.store.sqlite.binding import bind

T = TypeVar("T")
# WAL pages written before a commit checkpoints them into the file (SQLite's default: 1,000). A checkpoint
# syncs the file; at 10,000 pages (about 10 MB of WAL at PAGE_SIZE) that cost is shared by ten times as many commits,
# which about doubles the rate of small writes such as one schedule() each. It also takes tens of milliseconds
# (over 100 seen here), so a commit that claims runs never checkpoints (``transact(claims=True)``): its runs
# would start that much late. The next commit that claims nothing does it (a worker's outcomes, recorded with
# the claim that refills their slots, are such a commit), or, so that the WAL stays bounded where nothing else
# writes, the CLAIMS_BEFORE_CHECKPOINT-th claim in a row.
WAL_PAGES = 10_000
# The WAL's file is cut back to this size when a checkpoint starts it over (SQLite's default: never): a burst or a
# long read (a backup, a prune's batch) grew it to 935 MB, which it then kept for good. Above the WAL_PAGES a
# checkpoint normally leaves (about 10 MB), so a write never pays for the cut.
WAL_KEPT_BYTES = 64 * 1024 * 1024
# A backup is packed (VACUUM INTO, the live pages only) when more than this share of the file's pages are free (a
# prune freed them): it rebuilds every b-tree, which took 1.6 times as long as copying the pages of a file without any.
PACKED_BACKUP_FREE = 0.1
CLAIMS_BEFORE_CHECKPOINT = 1_000
# A write made promptly (``promptly``: on a worker's event loop) never checkpoints either, nor follows the write
# that checkpointed for it: that one may have emptied the WAL, and the next write starts it again, which syncs the
# file (a checkpoint by another process or thread can leave that sync to a prompt write: a fraction of a ms here).
# After PROMPT_WRITES_BEFORE_CHECKPOINT prompt writes in a row, or once they changed PROMPT_CHANGES_BEFORE_CHECKPOINT
# rows or sent PROMPT_BYTES_BEFORE_CHECKPOINT of rows (outputs, errors, inputs), the next write is refused
# (``WouldWait``), so that it is made where its COMMIT may checkpoint (a worker: in its store thread): the WAL stays
# near its bound. A worker's batch of 50 outcomes and the claim that refills it change about 200 rows and write
# about a hundred pages; a schedule() changes 2 rows and writes about 17. A prompt transaction that would send more
# than PROMPT_BYTES_A_WRITE of rows (large outputs or inputs) is rolled back and refused: it would hold the event
# loop for milliseconds.
PROMPT_WRITES_BEFORE_CHECKPOINT = 200
PROMPT_CHANGES_BEFORE_CHECKPOINT = 4_000
PROMPT_BYTES_BEFORE_CHECKPOINT = 4 * 1024 * 1024
PROMPT_BYTES_A_WRITE = 256 * 1024
# The page size of a new file (SQLite's default: 4,096; a file keeps the size it was made with). A commit writes each
# page it changed to the WAL whole, and a schedule() changes a page of each of about twelve b-trees (two tables and
# their indexes): 48 KB of WAL a call at 4,096 bytes a page, 12 KB at 1,024, and a checkpoint copies and syncs a
# quarter as much. bench/throughput.py, two runs each: one schedule() 8,421 and 8,354 calls/s against 6,298 and 6,452
# at 4,096 (2,048: 7,531 and 7,212); schedule_many 20,618 and 19,778 jobs/s against 21,797 and 21,868 (more, smaller
# b-tree pages to fill); the workers' steady rate the same. The file is about a tenth larger.
PAGE_SIZE = 1_024
PACKAGE = "ductape_jobs.store.sqlite"
Q = load_dialect_queries(
    PACKAGE,
    ("queries.sql", "features.sql", "api_queries.sql", "retention.sql", "outbox.sql", "limits.sql", "transfer.sql"),
)
#: The queries as sent: bound by position (binding.py).
B = {name: bind(query) for name, query in Q.items()}
#: Queries that ``many`` runs once over all its rows, given as one JSON list (``json_each(:rows)``): a worker's
#: per-run writes. executemany costs about 4-5 us a row more (binding, a step and a reset, each step releasing and
#: taking the GIL back from the worker's event loop). The JSON ``->>`` operator ends a string at a NUL character:
#: these rows hold none (ids, the worker's id, JSON text, numbers, and errors made ``storable``).
ROWS_AS_JSON = frozenset({"insert_attempt", "finish_attempt", "complete_run"})
#: A row of those whose text (a run's output, an attempt's error) is longer than LARGE_TEXT characters is written by
#: its own bound statement (``<name>_bound``, by executemany) instead: escaped into the JSON list and read back out
#: of it, such a text costs more than the step saved (a scratch micro-benchmark of complete_run, µs a row, JSON
#: against bound: 24 and 23 at 1 KB, 55 and 42 at 4 KB, 188 and 109 at 16 KB, 708 and 374 at 64 KB).
LARGE_TEXT = {"complete_run": ("output", 1_024), "finish_attempt": ("error", 1_024)}
#: Prepared statements the connection keeps (sqlite3's default, 128, is fewer than the queries a process that
#: runs the engine and the API may use: past it, statements would be prepared again and again).
STATEMENTS_CACHED = 2 * len(B)


#: A planned job's fields ``SQLiteTx.check_jobs`` compares with its stored row (the query ``check_jobs`` reads them).
_PLANNED = ("event_type", "event_tag", "executions", "intervals", "start_at", "updated_at")
#: The migrations that drop the outbox's triggers (15: they exist only on demand; 17: their filter changed; 25: a
#: run's has a new event): migrate() creates them again after applying any, if a webhook or a live stream wants them.
TRIGGERS_RESET = (15, 17, 25)
#: The outbox's triggers (outbox.sql: create_<name>, drop_<name>).
OUTBOX_TRIGGERS = ("outbox_run_created", "outbox_run_changed", "outbox_schedule_created", "outbox_schedule_changed")


class SQLiteTx:
    __slots__ = ("_db", "budget", "sent")

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.budget: int | None = None  # bytes of rows (their texts) this transaction may send (None: no bound)
        self.sent = 0  # bytes of rows it sent

    def one(self, name: str, params: Params | None = None) -> Row | None:
        b = B[name]
        try:
            row: Row | None = self._db.execute(b.sql, b.args(params)).fetchone()
        except UnicodeEncodeError as exc:  # a lone surrogate in a text: nothing was sent
            raise unstorable(exc, params) from exc
        return row

    def all(self, name: str, params: Params | None = None) -> list[Row]:
        b = B[name]
        try:
            return self._db.execute(b.sql, b.args(params)).fetchall()
        except UnicodeEncodeError as exc:
            raise unstorable(exc, params) from exc

    def run(self, name: str, params: Params | None = None) -> int:
        b = B[name]
        try:
            return self._db.execute(b.sql, b.args(params)).rowcount
        except UnicodeEncodeError as exc:
            raise unstorable(exc, params) from exc

    def many(self, name: str, params: Sequence[Params]) -> None:
        if not params:
            return
        if name not in ROWS_AS_JSON:
            self._count_texts(name, params)
            self._db.executemany(B[name].sql, map(B[name].args, params))
            return
        large: list[Params] = []
        if name in LARGE_TEXT:  # one pass over the rows: each text measured once
            field, most = LARGE_TEXT[name]
            small: list[Params] = []
            for p in params:
                (large if len(p[field] or "") > most else small).append(p)
            params = small
        listed = B[name].args({"rows": params}) if params else None
        if listed is not None:  # everything counted before anything is sent (WouldWait: nothing to undo)
            self._send(name, len(listed[0]))
        if large:
            self._count_texts(name, large)
            bound = B[f"{name}_bound"]
            self._db.executemany(bound.sql, map(bound.args, large))
        if listed is not None:
            self._db.execute(B[name].sql, listed)

    def _count_texts(self, name: str, params: Sequence[Params]) -> None:
        """A prompt write's rows sent bound: their texts (inputs, outputs, errors) counted against its budget."""
        if self.budget is not None:
            self._send(name, sum(len(v) for p in params for v in p.values() if isinstance(v, str)))

    def _send(self, name: str, size: int) -> None:
        """Count ``size`` bytes of rows sent; ``WouldWait`` past a prompt write's budget (before they are sent)."""
        self.sent += size
        if self.budget is not None and self.sent > self.budget:
            raise WouldWait(f"{name}: {self.sent} bytes of rows, more than a prompt write sends")

    def each(self, name: str, params: Sequence[Params]) -> list[Row]:
        b, rows = B[name], []
        for p in params:
            rows.extend(self._db.execute(b.sql, b.args(p)).fetchall())
        return rows

    def later(self, name: str, params: Params | None = None) -> Callable[[], list[Row]]:
        rows = self.all(name, params)
        return lambda: rows

    def together(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()  # one process, no network: nothing to gather

    def rows_of(self, table: str, columns: Sequence[str], order: Sequence[str], batch: int) -> Batches:
        listed = ", ".join(map(quoted, columns))
        by = f" ORDER BY {', '.join(map(quoted, order))}" if order else ""
        cursor = self._db.execute(f"SELECT {listed} FROM {quoted(table)}{by}")  # names: the schema's own, quoted
        while rows := cursor.fetchmany(batch):
            yield rows

    def put_rows(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        listed = ", ".join(map(quoted, columns))
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {quoted(table)} ({listed}) VALUES ({marks})"  # names: the schema's own, quoted
        self._db.executemany(sql, ([row[c] for c in columns] for row in rows))

    def claim_runs(self, params: Params) -> tuple[list[Row], bool]:
        rows = self._claim("acquire_runs", params)
        limited = self.one("limited_due", {"now": params["now"]})
        return rows, bool(limited and limited["limited"])

    def claim_picked(self, params: Params) -> list[Row]:
        return self._claim("claim_picked_runs", params)

    def _claim(self, name: str, params: Params) -> list[Row]:
        rows = self.all(name, params)
        if rows:  # an attempt starts when its run does (a run claimed ahead of its due time: then)
            worker_id = params["worker_id"]
            self.many(
                "insert_attempt",
                [
                    {"run_id": r["id"], "attempt": r["attempt"], "worker_id": worker_id, "now": r["started_at"]}
                    for r in rows
                ],
            )
        return rows

    def check_jobs(self, checks: Sequence[Params]) -> None:
        """One primary-key lookup a check (no JSON to build and take apart: most calls check one or two jobs),
        compared here; the first failure in the order ``Tx.add_schedules`` gives is raised."""
        cursor = self._db.cursor()
        cursor.row_factory = None  # tuples, in _PLANNED's order: no dict a row
        b = B["check_jobs"]
        failures: list[tuple[int, str, str, str]] = []
        for c in checks:
            row = cursor.execute(b.sql, b.args(c)).fetchone()  # only product_tag and tag are read
            if c["absent"]:
                if row is not None:
                    failures.append((1, c["product_tag"], c["tag"], "stale"))
            elif row is None:
                failures.append((0, c["product_tag"], c["tag"], "missing"))
            elif c["planned"] and row != tuple(c[field] for field in _PLANNED):
                failures.append((2, c["product_tag"], c["tag"], "stale"))
        if failures:
            _, _, tag, why = min(failures)
            raise job_check_error(why, tag)

    def add_schedules(
        self, checks: Sequence[Params], schedules: Sequence[Params], keyed: Sequence[Params], firsts: Sequence[Params]
    ) -> None:
        self.check_jobs(checks)  # raises before anything is written
        self.many("insert_schedule", schedules)
        self.many("set_feature_key", keyed)  # a JOB event's key is unique (a second schedule: ConflictError)
        self.many("insert_first_run", firsts)

    def notify(self) -> None:
        """Nothing to send: the processes sharing the file poll it (``wait_for_change`` returns ``None``)."""

    def sync_outbox_triggers(self) -> None:
        """Create the outbox's triggers (``IF NOT EXISTS``) while some webhook or live stream exists, else drop them
        (outbox.sql)."""
        verb = "create" if self.one("outbox_wanted") is not None else "drop"
        for trigger in OUTBOX_TRIGGERS:
            self.run(f"{verb}_{trigger}")


class SQLiteDialect:
    capabilities = Capabilities(listen_notify=False, skip_locked=False, multi_process=True, prompt=True)

    def __init__(self, path: str, *, busy_timeout: timedelta = timedelta(seconds=30)) -> None:
        self.path = path
        self._busy = busy_timeout.total_seconds()
        self._lock = threading.RLock()
        self.created = _create_private(path)  # this store made its file (it was not there)
        try:
            self._db = sqlite3.connect(
                path,
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout.total_seconds(),
                cached_statements=STATEMENTS_CACHED,
            )
        except sqlite3.Error as exc:
            raise StoreError(_cannot("open", path, exc)) from exc
        try:
            self._db.row_factory = _dict_row
            self._db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before WAL: a file in WAL mode keeps its size
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()
            # WAL: once BEGIN IMMEDIATE holds the write lock, nothing in the transaction waits on a lock (COMMIT
            # appends to the WAL; its automatic checkpoint is PASSIVE), so busy_timeout matters only to reads.
            self._wal = bool(mode) and str(next(iter(mode.values()))).lower() == "wal"
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit = {WAL_KEPT_BYTES}")
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout.total_seconds() * 1000)}")
            self._waits = True  # busy_timeout is the one given (False: 0, as _begin_immediate left it)
            self._checkpoints = True  # wal_autocheckpoint is WAL_PAGES (False: 0, as a claim left it)
            self._claims_in_a_row = 0  # writes that claimed since the last that could checkpoint
            self._prompt_writes = 0  # writes made promptly since the last that could checkpoint
            self._prompt_changes = 0  # the rows they changed
            self._prompt_bytes = 0  # the rows they sent
            self._restarts = (
                False  # the last write checkpointed for the prompt ones: the next may start the WAL (a sync)
            )
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(_cannot("open", path, exc)) from exc
        self._tx = SQLiteTx(self._db)
        self._prompt = threading.local()  # .on: in promptly() on this thread; .wrote: it wrote already

    def read(self, name: str, params: Params | None = None) -> list[Row]:
        return self.transact(lambda tx: tx.all(name, params), write=False, idempotent=True)

    def transact(
        self, op: Callable[[SQLiteTx], T], *, write: bool = True, idempotent: bool = False, claims: bool = False
    ) -> T:
        prompt = self._prompt
        if getattr(prompt, "on", False) and not prompt.wrote:
            return self._transact_promptly(op, write=write)
        action = "write" if write else "read"
        with self._lock:
            if not write:
                try:
                    self._wait_for_locks()
                    self._db.execute("BEGIN")
                except sqlite3.Error as exc:
                    raise StoreError(_cannot(action, self.path, exc)) from exc
                return self._run(op, action)
            claimed = self._claims_in_a_row + 1 if claims else 0
            owed = self._checkpoint_owed()  # prompt writes left it one: this COMMIT may checkpoint, claim or not
            spare = claims and claimed < CLAIMS_BEFORE_CHECKPOINT and not owed
            try:
                self._checkpoint_on_commit(not spare)
                self._begin_immediate()
            except sqlite3.Error as exc:
                raise StoreError(_cannot(action, self.path, exc)) from exc
            result = self._run(op, action)
            self._claims_in_a_row = claimed if spare else 0
            if not spare:
                self._prompt_writes = self._prompt_changes = self._prompt_bytes = 0
            self._restarts = owed  # if it checkpointed, the next write may start the WAL again: not promptly either
            return result

    @contextlib.contextmanager
    def promptly(self) -> Iterator[None]:
        """This thread's transactions made at once or not at all: until one has written, a transaction that would
        wait (for the write lock another process holds, for ``_lock`` another thread holds, for a read lock),
        checkpoint, start the WAL again or send many rows is refused (``WouldWait``) and changes nothing. Once one
        has written, the rest wait as they usually do, so that a caller that catches ``WouldWait`` and calls again
        elsewhere repeats nothing that was committed. Only in WAL mode (in another journal mode COMMIT waits for
        readers)."""
        prompt = self._prompt
        if not self._wal:
            raise WouldWait("not in WAL mode: a COMMIT may wait for readers")
        prompt.on, prompt.wrote = True, False
        try:
            yield
        finally:
            prompt.on = False

    def _checkpoint_owed(self) -> bool:
        return (
            self._prompt_writes >= PROMPT_WRITES_BEFORE_CHECKPOINT
            or self._prompt_changes >= PROMPT_CHANGES_BEFORE_CHECKPOINT
            or self._prompt_bytes >= PROMPT_BYTES_BEFORE_CHECKPOINT
        )

    def _transact_promptly(self, op: Callable[[SQLiteTx], T], *, write: bool) -> T:
        if not self._lock.acquire(blocking=False):
            raise WouldWait("another thread is in a transaction")
        try:
            if write and self._checkpoint_owed():
                raise WouldWait("a checkpoint is owed")
            if write and self._restarts:
                raise WouldWait("the last write could checkpoint: this one may start the WAL again")
            action = "write" if write else "read"
            tx, changes = self._tx, self._db.total_changes
            try:
                self._begin_promptly(write)
                if write:
                    tx.budget = min(PROMPT_BYTES_A_WRITE, PROMPT_BYTES_BEFORE_CHECKPOINT - self._prompt_bytes)
                    tx.sent = 0
                result = self._run(op, action)
            except StoreError as exc:  # a read that met a lock (a checkpoint that resets the WAL): nothing written
                cause = exc.__cause__
                if not write and isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause):
                    raise WouldWait(str(cause)) from cause
                raise
            except BaseException:  # a KeyboardInterrupt on the loop's thread (drain() runs it in the main thread)
                self._rollback()
                raise
            finally:
                tx.budget = None
            if write:
                self._prompt_writes += 1
                self._prompt_changes += (self._db.total_changes - changes) % 2**32  # sqlite3's count: 32 bits
                self._prompt_bytes += tx.sent
                self._prompt.wrote = True
            return result
        finally:
            self._lock.release()

    def _begin_promptly(self, write: bool) -> None:
        """BEGIN (IMMEDIATE for a write) with busy_timeout 0 and no checkpoint on COMMIT; ``WouldWait`` if a lock is
        held elsewhere."""
        db, action = self._db, "write" if write else "read"
        try:
            if self._waits:  # a lock held elsewhere: refused at once
                db.execute("PRAGMA busy_timeout = 0")
                self._waits = False
            if write:
                self._checkpoint_on_commit(False)
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise WouldWait(str(exc)) from exc
            raise StoreError(_cannot(action, self.path, exc)) from exc
        except sqlite3.Error as exc:
            raise StoreError(_cannot(action, self.path, exc)) from exc

    def _checkpoint_on_commit(self, may: bool) -> None:
        """Whether this write's COMMIT may checkpoint the WAL (``wal_autocheckpoint``, changed only when it must)."""
        if self._checkpoints != may:
            self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES if may else 0}")
            self._checkpoints = may

    def _run(self, op: Callable[[SQLiteTx], T], action: str) -> T:
        """``op`` in the transaction begun, then COMMIT; rolled back when either raises (``WouldWait`` too: a
        prompt write refused once it saw how much it sends)."""
        try:
            result = op(self._tx)
        except sqlite3.IntegrityError as exc:
            self._db.execute("ROLLBACK")
            raise ConflictError(str(exc)) from exc
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(_cannot(action, self.path, exc)) from exc
        except BaseException:
            self._rollback()
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(_cannot(action, self.path, exc)) from exc
        return result

    def transact_together(
        self, ops: Iterable[Callable[[SQLiteTx], None]], *, landed: Callable[[SQLiteTx], bool]
    ) -> None:
        """``transact``: nothing to gather in one process, and no COMMIT of unknown outcome to settle. The ops are
        all made before the write lock is taken, so that no other process waits while they are."""
        made = list(ops)

        def op(tx: SQLiteTx) -> None:
            for one in made:
                one(tx)

        self.transact(op)

    def _begin_immediate(self) -> None:
        """Take the write lock, polling for it every 0.1 to 2 ms while another process holds it (SQLite's own busy
        handler sleeps 1, 2, 5, 10 ms and longer between tries: most of a short transaction's turn lost).

        The poll needs busy_timeout 0. In WAL mode it stays 0 for the writes that follow, which wait on no lock
        once they hold this one, until a read needs the timeout again (``_wait_for_locks``): a run of writes,
        such as one ``schedule()`` after another, sets it for none of them."""
        db = self._db
        if self._waits:
            db.execute("PRAGMA busy_timeout = 0")
            self._waits = False
        try:
            deadline = time.monotonic() + self._busy
            pause = 0.0001
            while True:
                try:
                    db.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(pause)
                pause = min(pause * 2, 0.002)
        finally:
            if not self._wal:  # another journal mode: COMMIT may wait for readers
                self._wait_for_locks()

    def _wait_for_locks(self) -> None:
        """busy_timeout back to the one given, for a read (or a write outside WAL mode)."""
        if not self._waits:
            self._db.execute(f"PRAGMA busy_timeout = {int(self._busy * 1000)}")
            self._waits = True

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def migrate(self, *, create: bool = True) -> tuple[int, ...]:
        """Apply the migrations the file lacks (returned, in order). A file that has them all costs one read and no
        write lock (the usual start of a worker: processes starting together do not queue for the writer)."""
        if self._migrated():
            return ()
        if not create and plain_file(self.path) and not self._made():  # in memory: made by its opener
            raise ValidationError(
                "store",
                f"{self.path!r} holds no ductape-jobs store (a SQLite file none was made in): check the path; "
                f"{MAKES_ONE}",
            )

        def op(tx: SQLiteTx) -> tuple[int, ...]:
            db = self._db
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)")
            done = {r["version"] for r in db.execute("SELECT version FROM schema_migrations")}
            has_every_migration(f"{PACKAGE}.migrations", done)  # a newer release's, migrated meanwhile: refused
            reset = False
            applied: list[int] = []
            for version, sql in load_migrations(f"{PACKAGE}.migrations"):
                if version in done:
                    continue
                applied.append(version)
                for statement in _split_sql(sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
                    (version,),
                )
                reset = reset or version in TRIGGERS_RESET
            if reset:  # the outbox's triggers were dropped: back, as the latest outbox.sql writes them, if wanted
                tx.sync_outbox_triggers()
            return tuple(applied)

        return self.transact(op)

    def _migrated(self) -> bool:
        done = self._applied()
        return done is not None and has_every_migration(f"{PACKAGE}.migrations", done)

    def schema_state(self) -> SchemaState:
        return schema_state(f"{PACKAGE}.migrations", self._applied())

    def _applied(self) -> set[int] | None:
        """The versions the file records (``None``: it has no migrations table, a new file): one read."""
        with self._lock:
            self._wait_for_locks()
            try:
                rows = self._db.execute("SELECT version FROM schema_migrations").fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # a new file
                    return None
                raise StoreError(f"cannot read the store's schema version: {exc}") from exc
        return {r["version"] for r in rows}

    def _made(self) -> bool:
        """Whether the file holds a store at all (its migrations table), whatever its version."""
        with self._lock:
            self._wait_for_locks()
            row = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
            return row.fetchone() is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def backup(self, to: str | os.PathLike[str]) -> int:
        """The file copied, as one read transaction sees it, to the new file ``to`` (0600, as the store's: it holds
        what the store holds), on a connection of its own, while writers go on (this process's too: its store is not
        held); what they commit after it began is not in the copy. Page by page by SQLite's online backup, or, where
        more than ``PACKED_BACKUP_FREE`` of the file's pages are free (a prune freed them), by ``VACUUM INTO``: its live
        pages only, packed. Written to a
        file of its own beside ``to`` first, then linked to ``to`` (renamed where the file system has no links): a
        copy cut short leaves no file there, and an existing file is never overwritten. Returns its size in bytes."""
        if not plain_file(self.path):
            raise ValidationError("store", "an in-memory store has no file to back up")
        if isinstance(to, os.PathLike):
            to = os.fspath(to)
        if not isinstance(to, str) or not to or "\x00" in to:
            raise ValidationError("to", "must name a file: text, not empty, without a NUL character")
        taken = ValidationError("to", f"{to!r} exists; name a new file")
        if os.path.lexists(to):
            raise taken
        folder, name = os.path.split(os.path.abspath(to))
        if not os.path.isdir(folder):
            raise ValidationError("to", f"{to!r}: its folder {folder!r} does not exist")
        cannot = f"cannot back the SQLite store {self.path!r} up to {to!r}"
        try:
            fd, part = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)  # 0600, made here only
        except OSError as exc:
            raise StoreError(f"{cannot}: {exc.strerror or exc}") from None
        os.close(fd)
        try:
            source = sqlite3.connect(self.path, timeout=self._busy)
            try:
                free, pages = (source.execute(f"PRAGMA {p}").fetchone()[0] for p in ("freelist_count", "page_count"))
                if free > pages * PACKED_BACKUP_FREE:  # the live pages only: a copy kept 2 GB a prune freed, of 3
                    source.execute("VACUUM INTO ?", (part,))
                else:  # page by page: VACUUM INTO rebuilds every b-tree, 1.6 times as long
                    copy = sqlite3.connect(part)
                    try:
                        source.backup(copy)
                    finally:
                        copy.close()
            finally:
                source.close()
            link_new(part, to)
        except FileExistsError:
            raise taken from None
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{cannot}: {exc}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
        return os.path.getsize(to)

    def wait_for_change(self, timeout: timedelta) -> Change | None:
        return None  # no server to send notifications: a worker polls

    def stop_waiting(self) -> None:
        return None

    def server_time(self) -> datetime | None:
        return None  # the local clock is the only one


_UNWRITABLE = ("readonly", "read-only", "unable to open", "disk i/o error", "permission")


def _create_private(path: str) -> bool:
    """Create the store's file readable and writable by its owner only (0600) when it does not exist yet, and say
    whether this call made it; SQLite gives the ``-wal`` and ``-shm`` files it creates beside it the same mode."""
    if os.path.isdir(path):  # SQLite says "unable to open", which reads as a permission
        raise StoreError(f"cannot open the SQLite store {path!r}: it is a directory; name a file in it")
    if not plain_file(path) or os.path.exists(path):
        return False
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False  # another process created it just now
    except OSError as exc:
        raise StoreError(f"cannot create the SQLite store {path!r}: {exc.strerror or exc}") from exc
    return True


def _cannot(action: str, path: str, exc: sqlite3.Error) -> str:
    """The message of a driver error, naming the path (and what to check when it cannot write)."""
    text = str(exc)
    if any(word in text.lower() for word in _UNWRITABLE):
        name = os.path.basename(path)
        return (
            f"cannot {action} the SQLite store {path!r}: {text} (the file or its directory is read-only or not "
            f"writable by this process; SQLite writes the file and creates {name}-wal and {name}-shm beside it)"
        )
    return f"cannot open the SQLite store {path!r}: {text}" if action == "open" else f"SQLite store {path!r}: {text}"


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    """Rows as dicts (the codec reads columns by name). A statement's rows share one ``description`` object: its
    names are kept with it and found by identity (hashing the description, every column's 7-tuple, for each row
    cost more than building the dict). One reference is read and written whole, so threads cannot mix them up."""
    global _last_names
    description, names = _last_names
    if description is not cursor.description:
        description = cursor.description
        names = tuple(d[0] for d in description)
        _last_names = description, names
    return dict(zip(names, row, strict=True))


_last_names: tuple[object, tuple[str, ...]] = (None, ())


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, as SQLite itself reads them (comments and literals included)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()):
        statements.append(current.strip())
    return statements
