"""The embedded default store: one SQLite file in WAL mode, shared safely by threads and processes."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from ductape_jobs.errors import ConflictError, NotFoundError, StoreError
from ductape_jobs.models import (
    JobDefinition,
    NewRun,
    Overlap,
    Run,
    RunFilter,
    RunPhase,
    Schedule,
    ScheduleStatus,
)
from ductape_jobs.store.base import (
    Advance,
    Capabilities,
    DueSchedule,
    Outcome,
    Planner,
    ScheduleChange,
    Store,
    Wakeups,
)
from ductape_jobs.store.codec import (
    attempt_from_row,
    dumps,
    from_ms,
    job_from_row,
    job_params,
    ms,
    new_run_params,
    outcome_params,
    run_from_row,
    schedule_changes,
    schedule_from_row,
    schedule_params,
)
from ductape_jobs.store.sql import load_migrations, load_queries
from ductape_jobs.store.sqlite.api_store import SQLiteApiStore
from ductape_jobs.store.sqlite.feature_store import SQLiteFeatureStore

Q = load_queries("ductape_jobs.store.sqlite")


class SQLiteStore(SQLiteApiStore, SQLiteFeatureStore, Store):
    capabilities = Capabilities(listen_notify=False, skip_locked=False, multi_process=True)

    def __init__(self, path: str, *, busy_timeout: timedelta = timedelta(seconds=30)) -> None:
        """Open (creating it, mode 0600, when absent) the SQLite file at ``path``. A file or directory that
        cannot be created, opened or written is a ``StoreError`` naming the path."""
        self.path = path
        self._lock = threading.RLock()
        _create_private(path)
        try:
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout.total_seconds()
            )
        except sqlite3.Error as exc:
            raise StoreError(_cannot("open", path, exc)) from exc
        try:
            self._db.row_factory = _dict_row
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout.total_seconds() * 1000)}")
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(_cannot("open", path, exc)) from exc

    # ------------------------------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise StoreError(_cannot("write" if write else "read", self.path, exc)) from exc
            try:
                yield self._db
            except sqlite3.IntegrityError as exc:
                self._db.execute("ROLLBACK")
                raise ConflictError(str(exc)) from exc
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(_cannot("write" if write else "read", self.path, exc)) from exc
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _one(self, query: str, params: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            try:
                row: dict[str, Any] | None = self._db.execute(query, params).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
            return row

    def _all(self, query: str, params: dict[str, Any] | Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                return self._db.execute(query, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc

    def migrate(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)")
            done = {r["version"] for r in db.execute("SELECT version FROM schema_migrations")}
            for version, sql in load_migrations("ductape_jobs.store.sqlite.migrations"):
                if version in done:
                    continue
                for statement in _split_sql(sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
                    (version,),
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ----------------------------------------------------------------------------------------- jobs

    def create_job(self, job: JobDefinition, now: datetime) -> JobDefinition:
        try:
            with self._tx() as db:
                db.execute(Q["insert_job"], job_params(job, now))
        except ConflictError:
            raise ConflictError(f"tag: a job with tag {job.tag!r} already exists") from None
        return job.model_copy(update={"created_at": now, "updated_at": now})

    def update_job(self, tag: str, changes: dict[str, Any], now: datetime) -> JobDefinition:
        with self._tx() as db:
            row = db.execute(Q["get_job"], {"tag": tag}).fetchone()
            if row is None:
                raise NotFoundError("job", tag)
            job = job_from_row(row).model_copy(update=changes)
            params = job_params(job, now)
            db.execute(Q["update_job"], params)
            if "intervals" in changes or "executions" in changes:
                db.execute(Q["follow_job_cadence"], params)
        return job.model_copy(update={"updated_at": now})

    def get_job(self, tag: str) -> JobDefinition | None:
        row = self._one(Q["get_job"], {"tag": tag})
        return None if row is None else job_from_row(row)

    def list_jobs(self) -> list[JobDefinition]:
        return [job_from_row(r) for r in self._all(Q["list_jobs"])]

    def delete_job(self, tag: str) -> None:
        with self._tx() as db:
            if db.execute(Q["get_job"], {"tag": tag}).fetchone() is None:
                raise NotFoundError("job", tag)
            live = db.execute(Q["live_schedules_of_job"], {"tag": tag}).fetchone()["n"]
            if live:
                raise ConflictError(
                    f"job {tag!r} has {live} active or paused schedule(s); cancel them before deleting it"
                )
            db.execute(Q["delete_job"], {"tag": tag})

    # ------------------------------------------------------------------------------------ schedules

    def add_schedules(self, schedules: Sequence[Schedule], runs: Sequence[NewRun]) -> None:
        tags = sorted({s.job_tag for s in schedules})
        with self._tx() as db:
            marks = ", ".join("?" * len(tags))
            sql = f"SELECT tag, event_type, event_tag FROM jobs WHERE tag IN ({marks})"
            events = {r["tag"]: (r["event_type"], r["event_tag"]) for r in db.execute(sql, tags)}
            for tag in tags:
                if tag not in events:
                    raise NotFoundError("job", tag)
            rows = {s.id: schedule_params(s) for s in schedules}
            db.executemany(Q["insert_schedule"], list(rows.values()))
            # First runs take their values from the rows just written rather than a join per run.
            firsts = []
            for run in runs:
                row = rows.get(run.schedule_id)
                if row is None:
                    raise NotFoundError("schedule", run.schedule_id)
                event_type, event_tag = events[row["job_tag"]]
                firsts.append(
                    {
                        **row,
                        **new_run_params(run, run.scheduled_at),
                        "event_type": event_type,
                        "event_tag": event_tag,
                        "now": row["created_at"],
                    }
                )
            db.executemany(Q["insert_first_run"], firsts)

    def _insert_runs(self, db: sqlite3.Connection, runs: Sequence[NewRun], now: datetime | None) -> int:
        if not runs:
            return 0
        before = db.total_changes
        db.executemany(Q["insert_run"], [new_run_params(r, now) for r in runs])
        return db.total_changes - before

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        row = self._one(Q["get_schedule"], {"id": schedule_id})
        return None if row is None else schedule_from_row(row)

    def list_schedules(
        self,
        *,
        status: ScheduleStatus | None = None,
        job_tag: str | None = None,
        limit: int = 100,
        offset: int = 0,
        product_tag: str | None = None,
        env: str | None = None,
    ) -> list[Schedule]:
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        for column, value in (("job_tag", job_tag), ("product_tag", product_tag), ("env", env)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM schedules" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        return [schedule_from_row(r) for r in self._all(sql, [*params, limit, offset])]

    def update_schedule(self, schedule_id: str, now: datetime, change: ScheduleChange) -> Schedule:
        changes = change.changed()
        cancel_pending = change.cancel_pending
        columns = schedule_changes(changes)
        sets = [f"{column} = :{column}" for column in columns]
        params: dict[str, Any] = {"id": schedule_id, "now": ms(now), **columns}
        with self._tx() as db:
            if db.execute(Q["get_schedule"], {"id": schedule_id}).fetchone() is None:
                raise NotFoundError("schedule", schedule_id)
            if sets:
                db.execute(f"UPDATE schedules SET {', '.join(sets)}, updated_at = :now WHERE id = :id", params)
            if cancel_pending:
                reason = changes.get("reason") or "cancelled"
                db.execute(Q["cancel_pending_runs"], {"schedule_id": schedule_id, "reason": reason, "now": ms(now)})
            row = db.execute(Q["get_schedule"], {"id": schedule_id}).fetchone()
        return schedule_from_row(row)

    def advance_due(self, now: datetime, limit: int, planner: Planner) -> list[NewRun]:
        created: list[NewRun] = []
        with self._tx() as db:
            rows = db.execute(Q["due_schedules"], {"now": ms(now), "limit": limit}).fetchall()
            for row in rows:
                schedule = schedule_from_row(row)
                active, held = 0, False
                if schedule.overlap is not Overlap.ALLOW:
                    state = db.execute(Q["overlap_state"], {"schedule_id": schedule.id}).fetchone()
                    active, held = state["active"], bool(state["held"])
                plan = planner(DueSchedule(schedule, active, held))
                if self._apply(db, plan, now):
                    created.extend(plan.runs)
        return created

    def _apply(self, db: sqlite3.Connection, plan: Advance, now: datetime) -> bool:
        cur = db.execute(
            Q["advance_schedule"],
            {
                "id": plan.schedule_id,
                "next_run_at": ms(plan.next_run_at),
                "last_due_at": ms(plan.last_due_at),
                "created": len(plan.runs),
                "skipped": plan.skipped,
                "finished": plan.finished,
                "expected_next": ms(plan.expected_next),
                "now": ms(now),
            },
        )
        if cur.rowcount != 1:
            return False  # another scheduler moved it first
        self._insert_runs(db, plan.runs, now)
        return True

    # ----------------------------------------------------------------------------------------- runs

    def acquire_runs(self, worker_id: str, limit: int, lease_for: timedelta, now: datetime) -> list[Run]:
        now_ms = ms(now)
        with self._tx() as db:
            rows = db.execute(
                Q["acquire_runs"],
                {"worker_id": worker_id, "lease_until": ms(now + lease_for), "now": now_ms, "limit": limit},
            ).fetchall()
            if rows:
                db.executemany(
                    Q["insert_attempt"],
                    [{"run_id": r["id"], "attempt": r["attempt"], "worker_id": worker_id, "now": now_ms} for r in rows],
                )
        runs = [run_from_row(r) for r in rows]
        runs.sort(key=lambda r: r.available_at or r.scheduled_at)
        return runs

    def extend_leases(self, worker_id: str, run_ids: Sequence[str], until: datetime) -> int:
        if not run_ids:
            return 0
        with self._tx() as db:
            before = db.total_changes
            db.executemany(Q["extend_lease"], [{"id": i, "worker_id": worker_id, "until": ms(until)} for i in run_ids])
            return db.total_changes - before

    def finish_runs(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        if not outcomes:
            return
        now_ms = ms(now)
        done, retry, failed, attempts = outcome_params(outcomes, now)
        with self._tx() as db:
            # Each update is guarded by (lease_owner, attempt): an outcome whose lease was lost changes only
            # its attempt row.
            db.executemany(Q["complete_run"], done)
            db.executemany(Q["schedule_retry"], retry)
            for params in failed:
                row = db.execute(Q["fail_run"], params).fetchone()
                if row is not None:
                    db.execute(
                        Q["pause_on_failure"],
                        {
                            "schedule_id": row["schedule_id"],
                            "now": now_ms,
                            "reason": f"paused after run {params['run_id']} failed",
                        },
                    )
            db.executemany(Q["finish_attempt"], attempts)
            if done or failed:
                db.execute(Q["release_held_runs"], {"now": now_ms})

    def release_runs(self, worker_id: str, run_ids: Sequence[str], now: datetime) -> int:
        released = 0
        with self._tx() as db:
            for run_id in run_ids:
                row = db.execute(Q["release_run"], {"id": run_id, "worker_id": worker_id, "now": ms(now)}).fetchone()
                if row is not None:
                    released += 1
                    db.execute(
                        Q["finish_attempt"],
                        {
                            "run_id": run_id,
                            "attempt": row["attempt"],
                            "finished_at": ms(now),
                            "outcome": "released",
                            "error": "worker shut down before the run finished",
                        },
                    )
        return released

    def rescue_expired(self, now: datetime, max_rescues: int) -> list[str]:
        now_ms = ms(now)
        rescued: list[str] = []
        with self._tx() as db:
            for row in db.execute(Q["expired_leases"], {"now": now_ms}).fetchall():
                error = f"lease expired: worker {row['lease_owner']} stopped heartbeating (presumed dead)"
                db.execute(
                    Q["finish_attempt"],
                    {
                        "run_id": row["id"],
                        "attempt": row["attempt"],
                        "finished_at": now_ms,
                        "outcome": "lost",
                        "error": error,
                    },
                )
                if row["rescues"] >= max_rescues:
                    db.execute(
                        Q["fail_lost_run"],
                        {"id": row["id"], "now": now_ms, "error": f"{error}; lost {row['rescues'] + 1} times"},
                    )
                    db.execute(Q["release_held_runs"], {"now": now_ms})
                else:
                    db.execute(Q["rescue_run"], {"id": row["id"], "now": now_ms})
                rescued.append(row["id"])
        return rescued

    def retry_run(self, run_id: str, now: datetime) -> Run:
        with self._tx() as db:
            row = db.execute(Q["get_run"], {"id": run_id}).fetchone()
            if row is None:
                raise NotFoundError("run", run_id)
            if db.execute(Q["retry_run"], {"id": run_id, "now": ms(now)}).rowcount != 1:
                raise ConflictError(f"run {run_id!r} is {row['phase']}; only a failed or cancelled run can be retried")
            row = db.execute(Q["get_run"], {"id": run_id}).fetchone()
        return run_from_row(row)

    def trigger(self, schedule_id: str, run: NewRun) -> None:
        with self._tx() as db:
            if self._insert_runs(db, [run], run.scheduled_at) != 1:
                raise ConflictError(f"schedule {schedule_id!r} already has a run due at {run.scheduled_at}")

    def get_run(self, run_id: str) -> Run | None:
        with self._lock:
            row = self._one(Q["get_run"], {"id": run_id})
            if row is None:
                return None
            attempts = [attempt_from_row(a) for a in self._all(Q["attempts_of_run"], {"run_id": run_id})]
        return run_from_row(row, attempts)

    def list_runs(self, flt: RunFilter) -> list[Run]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("schedule_id", flt.job_id),
            ("job_tag", flt.job_tag),
            ("product_tag", flt.product_tag),
            ("env", flt.env),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if flt.status is not None:  # a literal (an enum value), so the partial index on failed runs applies
            where.append(f"phase = '{RunPhase(flt.status).value}'")
        if flt.since is not None:
            where.append("scheduled_at >= ?")
            params.append(ms(flt.since))
        if flt.until is not None:
            where.append("scheduled_at < ?")
            params.append(ms(flt.until))
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY scheduled_at DESC, id DESC LIMIT ? OFFSET ?"
        return [run_from_row(r) for r in self._all(sql, [*params, flt.limit, flt.offset])]

    def next_wakeup(self) -> Wakeups:
        with self._lock:
            times = [
                from_ms(self._db.execute(Q[name]).fetchone()["t"])
                for name in ("next_schedule_due", "next_run_due", "next_lease_expiry")
            ]
        return Wakeups(*times)

    def cache_get(self, key: str, now: datetime) -> tuple[bool, Any]:
        row = self._one(Q["cache_get"], {"key": key, "now": ms(now)})
        return (False, None) if row is None else (True, json.loads(row["value"]))

    def cache_put(self, key: str, value: Any, expires_at: datetime, now: datetime) -> None:
        with self._tx() as db:
            db.execute(Q["cache_put"], {"key": key, "value": dumps(value), "expires_at": ms(expires_at)})
            if hash(key) % 64 == 0:
                db.execute(Q["cache_purge"], {"now": ms(now)})

    def count_runs(self) -> dict[RunPhase, int]:
        return {RunPhase(r["phase"]): r["n"] for r in self._all(Q["count_runs"])}


_UNWRITABLE = ("readonly", "read-only", "unable to open", "disk i/o error", "permission")


def _create_private(path: str) -> None:
    """Create the store's file readable and writable by its owner only (0600) when it does not exist yet;
    SQLite gives the ``-wal`` and ``-shm`` files it creates beside it the same mode."""
    if path in ("", ":memory:") or path.startswith("file:") or os.path.exists(path):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return  # another process created it just now
    except OSError as exc:
        raise StoreError(f"cannot create the SQLite store {path!r}: {exc.strerror or exc}") from exc


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
    """Rows as dicts (the codec reads columns by name; a dict is several times faster than dict[str, Any])."""
    return dict(zip(_names(cursor.description), row, strict=True))


@functools.lru_cache(maxsize=256)
def _names(description: tuple[tuple[Any, ...], ...]) -> tuple[str, ...]:
    return tuple(d[0] for d in description)


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
