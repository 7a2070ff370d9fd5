"""The PostgreSQL store: many schedulers and workers, in many processes on many machines, share one database.

Racing schedulers split the due schedules with ``FOR UPDATE SKIP LOCKED`` and the unique (schedule, due time)
constraint keeps each occurrence to one run; racing workers claim different runs the same way. Each call is
one transaction; calls that fail on a lost connection are retried when safe (``connection.py``). Calls marked
*idempotent* below are retried even when the COMMIT's outcome is unknown, because their WHERE guards make a
second application change nothing:

- reads (``get_*``, ``list_*``, ``next_wakeup``, ``count_runs``) and ``migrate`` (versions already applied
  are skipped);
- ``advance_due`` (``next_run_at = expected_next`` and the unique occurrence), ``finish_runs`` (lease owner
  and attempt, attempt rows ``finished_at IS NULL``), ``extend_leases``, ``release_runs`` (lease owner),
  ``rescue_expired`` (lease expired), ``update_schedule`` and ``cache_put`` (they set absolute values).

Not idempotent, so retried only when the failure came before COMMIT: ``create_job``, ``update_job``,
``delete_job``, ``add_schedules``, ``trigger``, ``retry_run`` (a second try would report a conflict) and
``acquire_runs`` (the first claim may have committed; its runs come back through ``rescue_expired``).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ductape_jobs.errors import ConflictError, NotFoundError
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
from ductape_jobs.store.base import Capabilities, DueSchedule, Outcome, Planner, ScheduleChange, Store, Wakeups
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
from ductape_jobs.store.postgres.api_store import PostgresApiStore
from ductape_jobs.store.postgres.connection import Conn, Database, Listener, check_schema, split_url
from ductape_jobs.store.postgres.feature_store import PostgresFeatureStore
from ductape_jobs.store.postgres.schema import migrate
from ductape_jobs.store.sql import load_queries

Q = load_queries("ductape_jobs.store.postgres")


class PostgresStore(PostgresApiStore, PostgresFeatureStore, Store):
    """``PostgresStore("postgresql://user@host/db?schema=jobs")``; ``schema`` (URL option or keyword) puts the
    tables in that schema (created by ``migrate``). ``pool_min``/``pool_max``/``pool_timeout`` URL options
    size the connection pool."""

    capabilities = Capabilities(listen_notify=True, skip_locked=True, multi_process=True)

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        timeout: timedelta | None = None,
        retries: int = 3,
    ) -> None:
        conninfo, options = split_url(url)
        self.schema = check_schema(schema or options["schema"]) if (schema or options.get("schema")) else None
        self.channel = f"ductape_jobs_{self.schema or 'public'}"[:63]
        self._db = Database(
            conninfo,
            schema=self.schema,
            min_size=min_size or int(options.get("pool_min", 1)),
            max_size=max_size or int(options.get("pool_max", 8)),
            timeout=timeout or timedelta(seconds=float(options.get("pool_timeout", 10))),
            retries=retries,
        )
        self._listener = Listener(conninfo, self.channel)

    # ------------------------------------------------------------------------------------ lifecycle

    def migrate(self) -> None:
        self._db.run(lambda conn: migrate(conn, self.schema), idempotent=True)

    def close(self) -> None:
        self._listener.close()
        self._db.close()

    # ----------------------------------------------------------------------------------------- jobs

    def create_job(self, job: JobDefinition, now: datetime) -> JobDefinition:
        try:
            self._db.run(lambda c: c.execute(Q["insert_job"], job_params(job, now)))
        except ConflictError as exc:
            raise ConflictError(f"tag: a job with tag {job.tag!r} already exists") from exc.__cause__
        return job.model_copy(update={"created_at": now, "updated_at": now})

    def update_job(self, tag: str, changes: dict[str, Any], now: datetime) -> JobDefinition:
        def op(conn: Conn) -> JobDefinition:
            row = conn.execute(Q["lock_job"], {"tag": tag}).fetchone()
            if row is None:
                raise NotFoundError("job", tag)
            job = job_from_row(row).model_copy(update=changes)
            params = job_params(job, now)
            conn.execute(Q["update_job"], params)
            if "intervals" in changes or "executions" in changes:
                conn.execute(Q["follow_job_cadence"], params)
            return job.model_copy(update={"updated_at": now})

        return self._db.run(op)

    def get_job(self, tag: str) -> JobDefinition | None:
        row = self._db.run(lambda c: c.execute(Q["get_job"], {"tag": tag}).fetchone(), idempotent=True)
        return None if row is None else job_from_row(row)

    def list_jobs(self) -> list[JobDefinition]:
        rows = self._db.run(lambda c: c.execute(Q["list_jobs"]).fetchall(), idempotent=True)
        return [job_from_row(r) for r in rows]

    def delete_job(self, tag: str) -> None:
        def op(conn: Conn) -> None:
            if conn.execute(Q["lock_job"], {"tag": tag}).fetchone() is None:
                raise NotFoundError("job", tag)
            live = _scalar(conn, Q["live_schedules_of_job"], {"tag": tag})
            if live:
                raise ConflictError(
                    f"job {tag!r} has {live} active or paused schedule(s); cancel them before deleting it"
                )
            conn.execute(Q["delete_job"], {"tag": tag})

        self._db.run(op)

    # ------------------------------------------------------------------------------------ schedules

    def add_schedules(self, schedules: Sequence[Schedule], runs: Sequence[NewRun]) -> None:
        now = schedules[0].created_at if schedules else None

        def op(conn: Conn) -> None:
            tags = sorted({s.job_tag for s in schedules})
            found = {r["tag"] for r in conn.execute(Q["share_jobs"], {"tags": tags})}
            for tag in tags:
                if tag not in found:
                    raise NotFoundError("job", tag)
            with conn.cursor() as cur:
                cur.executemany(Q["insert_schedule"], [schedule_params(s) for s in schedules])
                if runs:
                    cur.executemany(Q["insert_run"], [new_run_params(r, now) for r in runs])
            self._notify(conn)

        if schedules or runs:
            self._db.run(op)

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        row = self._db.run(lambda c: c.execute(Q["get_schedule"], {"id": schedule_id}).fetchone(), idempotent=True)
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
            where.append("status = %s")
            params.append(status.value)
        for column, value in (("job_tag", job_tag), ("product_tag", product_tag), ("env", env)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        query = "SELECT * FROM schedules" + (" WHERE " + " AND ".join(where) if where else "")
        query += " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s"
        rows = self._db.run(lambda c: c.execute(query, [*params, limit, offset]).fetchall(), idempotent=True)
        return [schedule_from_row(r) for r in rows]

    def update_schedule(self, schedule_id: str, now: datetime, change: ScheduleChange) -> Schedule:
        changes = change.changed()
        cancel_pending = change.cancel_pending
        values = schedule_changes(changes)
        sets = ", ".join(f"{column} = %({column})s" for column in values)
        params = {**values, "id": schedule_id, "now": ms(now)}

        def op(conn: Conn) -> Schedule:
            if conn.execute(Q["lock_schedule"], {"id": schedule_id}).fetchone() is None:
                raise NotFoundError("schedule", schedule_id)
            if sets:
                conn.execute(f"UPDATE schedules SET {sets}, updated_at = %(now)s WHERE id = %(id)s", params)
            if cancel_pending:
                reason = changes.get("reason") or "cancelled"
                conn.execute(Q["cancel_pending_runs"], {"schedule_id": schedule_id, "reason": reason, "now": ms(now)})
            self._notify(conn)
            row = conn.execute(Q["get_schedule"], {"id": schedule_id}).fetchone()
            assert row is not None
            return schedule_from_row(row)

        return self._db.run(op, idempotent=True)

    def advance_due(self, now: datetime, limit: int, planner: Planner) -> list[NewRun]:
        def op(conn: Conn) -> list[NewRun]:
            rows = conn.execute(Q["due_schedules"], {"now": ms(now), "limit": limit}).fetchall()
            if not rows:
                return []
            schedules = [schedule_from_row(r) for r in rows]
            watched = [s.id for s in schedules if s.overlap is not Overlap.ALLOW]
            state: dict[str, dict[str, Any]] = {}
            if watched:
                state = {r["schedule_id"]: r for r in conn.execute(Q["overlap_state"], {"ids": watched})}
            plans = []
            for s in schedules:
                st = state.get(s.id)
                plans.append(planner(DueSchedule(s, st["active"] if st else 0, bool(st and st["held"]))))
            params = [
                {
                    "id": p.schedule_id,
                    "next_run_at": ms(p.next_run_at),
                    "last_due_at": ms(p.last_due_at),
                    "created": len(p.runs),
                    "skipped": p.skipped,
                    "finished": p.finished,
                    "expected_next": ms(p.expected_next),
                    "now": ms(now),
                }
                for p in plans
            ]
            with conn.cursor() as cur:
                moved = {r["id"] for r in _many(cur, Q["advance_schedule"], params)}  # the others moved first
                runs = [r for p in plans if p.schedule_id in moved for r in p.runs]
                inserted = {r["id"] for r in _many(cur, Q["insert_run"], [new_run_params(r, now) for r in runs])}
            return [r for r in runs if r.id in inserted]

        return self._db.run(op, idempotent=True)

    # ----------------------------------------------------------------------------------------- runs

    def acquire_runs(self, worker_id: str, limit: int, lease_for: timedelta, now: datetime) -> list[Run]:
        params = {"worker_id": worker_id, "lease_until": ms(now + lease_for), "now": ms(now), "limit": limit}
        rows = self._db.run(lambda c: c.execute(Q["acquire_runs"], params).fetchall())
        return [run_from_row(r) for r in rows]

    def extend_leases(self, worker_id: str, run_ids: Sequence[str], until: datetime) -> int:
        if not run_ids:
            return 0
        params = {"ids": list(run_ids), "worker_id": worker_id, "until": ms(until)}
        return self._db.run(lambda c: c.execute(Q["extend_leases"], params).rowcount, idempotent=True)

    def finish_runs(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        if not outcomes:
            return
        done, retry, failed, attempts = outcome_params(outcomes, now)

        def op(conn: Conn) -> None:
            # Each update is guarded by (lease_owner, attempt): an outcome whose lease was lost changes only
            # its attempt row (and not even that once the rescue marked the attempt lost).
            with conn.cursor() as cur:
                ended = _many(cur, Q["complete_run"], done)
                if retry:
                    cur.executemany(Q["schedule_retry"], retry)
                lost = _many(cur, Q["fail_run"], failed)
                pauses = [
                    {"schedule_id": r["schedule_id"], "now": ms(now), "reason": f"paused after run {r['id']} failed"}
                    for r in lost
                ]
                if pauses:
                    cur.executemany(Q["pause_on_failure"], pauses)
                cur.executemany(Q["finish_attempt"], attempts)
            self._release_held(conn, [*ended, *lost], now)

        self._db.run(op, idempotent=True)

    def _release_held(self, conn: Conn, ended: list[dict[str, Any]], now: datetime) -> None:
        """Runs held behind these ended runs (``buffer_one``) become due now."""
        ids = sorted({r["schedule_id"] for r in ended if r["overlap"] == Overlap.BUFFER_ONE.value})
        if ids:
            conn.execute(Q["share_schedules"], {"ids": ids})
            conn.execute(Q["release_held_runs"], {"schedule_ids": ids, "now": ms(now)})

    def release_runs(self, worker_id: str, run_ids: Sequence[str], now: datetime) -> int:
        if not run_ids:
            return 0

        def op(conn: Conn) -> int:
            params = {"ids": list(run_ids), "worker_id": worker_id, "now": ms(now)}
            rows = conn.execute(Q["release_runs"], params).fetchall()
            if rows:
                error = "worker shut down before the run finished"
                attempt = {"finished_at": ms(now), "outcome": "released", "error": error}
                with conn.cursor() as cur:
                    cur.executemany(
                        Q["finish_attempt"], [{**attempt, "run_id": r["id"], "attempt": r["attempt"]} for r in rows]
                    )
                self._notify(conn)
            return len(rows)

        return self._db.run(op, idempotent=True)

    def rescue_expired(self, now: datetime, max_rescues: int) -> list[str]:
        now_ms = ms(now)

        def op(conn: Conn) -> list[str]:
            rows = conn.execute(Q["expired_leases"], {"now": now_ms}).fetchall()
            if not rows:
                return []
            attempts, back, lost = [], [], []
            for row in rows:
                error = f"lease expired: worker {row['lease_owner']} stopped heartbeating (presumed dead)"
                attempts.append({"run_id": row["id"], "attempt": row["attempt"], "finished_at": now_ms})
                attempts[-1].update(outcome="lost", error=error)
                if row["rescues"] >= max_rescues:
                    lost.append({"id": row["id"], "now": now_ms, "error": f"{error}; lost {row['rescues'] + 1} times"})
                else:
                    back.append({"id": row["id"], "now": now_ms})
            with conn.cursor() as cur:
                cur.executemany(Q["finish_attempt"], attempts)
                if back:
                    cur.executemany(Q["rescue_run"], back)
                ended = _many(cur, Q["fail_lost_run"], lost)
            self._release_held(conn, ended, now)
            self._notify(conn)
            return [r["id"] for r in rows]

        return self._db.run(op, idempotent=True)

    def retry_run(self, run_id: str, now: datetime) -> Run:
        def op(conn: Conn) -> Run:
            row = conn.execute(Q["retry_run"], {"id": run_id, "now": ms(now)}).fetchone()
            if row is None:
                current = conn.execute(Q["get_run"], {"id": run_id}).fetchone()
                if current is None:
                    raise NotFoundError("run", run_id)
                raise ConflictError(
                    f"run {run_id!r} is {current['phase']}; only a failed or cancelled run can be retried"
                )
            self._notify(conn)
            return run_from_row(row)

        return self._db.run(op)

    def trigger(self, schedule_id: str, run: NewRun) -> None:
        def op(conn: Conn) -> None:
            if conn.execute(Q["insert_run"], new_run_params(run, run.scheduled_at)).fetchone() is None:
                raise ConflictError(f"schedule {schedule_id!r} already has a run due at {run.scheduled_at}")
            self._notify(conn)

        self._db.run(op)

    def get_run(self, run_id: str) -> Run | None:
        def op(conn: Conn) -> Run | None:
            row = conn.execute(Q["get_run"], {"id": run_id}).fetchone()
            if row is None:
                return None
            attempts = conn.execute(Q["attempts_of_run"], {"run_id": run_id}).fetchall()
            return run_from_row(row, [attempt_from_row(a) for a in attempts])

        return self._db.run(op, idempotent=True)

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
                where.append(f"{column} = %s")
                params.append(value)
        if flt.status is not None:  # a literal (an enum value), so the partial index on failed runs applies
            where.append(f"phase = '{RunPhase(flt.status).value}'")
        if flt.since is not None:
            where.append("scheduled_at >= %s")
            params.append(ms(flt.since))
        if flt.until is not None:
            where.append("scheduled_at < %s")
            params.append(ms(flt.until))
        query = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        query += " ORDER BY scheduled_at DESC, id DESC LIMIT %s OFFSET %s"
        rows = self._db.run(lambda c: c.execute(query, [*params, flt.limit, flt.offset]).fetchall(), idempotent=True)
        return [run_from_row(r) for r in rows]

    def next_wakeup(self) -> Wakeups:
        row = self._db.run(lambda c: c.execute(Q["next_wakeup"]).fetchone(), idempotent=True)
        assert row is not None
        return Wakeups(from_ms(row["schedule_due"]), from_ms(row["run_due"]), from_ms(row["lease_expiry"]))

    def count_runs(self) -> dict[RunPhase, int]:
        rows = self._db.run(lambda c: c.execute(Q["count_runs"]).fetchall(), idempotent=True)
        return {RunPhase(r["phase"]): r["n"] for r in rows}

    # --------------------------------------------------------------------------------- result cache

    def cache_get(self, key: str, now: datetime) -> tuple[bool, Any]:
        params = {"key": key, "now": ms(now)}
        row = self._db.run(lambda c: c.execute(Q["cache_get"], params).fetchone(), idempotent=True)
        return (False, None) if row is None else (True, json.loads(row["value"]))

    def cache_put(self, key: str, value: Any, expires_at: datetime, now: datetime) -> None:
        def op(conn: Conn) -> None:
            conn.execute(Q["cache_put"], {"key": key, "value": dumps(value), "expires_at": ms(expires_at)})
            if zlib.crc32(key.encode()) % 64 == 0:  # now and then, not on every write
                conn.execute(Q["cache_purge"], {"now": ms(now)})

        self._db.run(op, idempotent=True)

    # --------------------------------------------------------------------------------- LISTEN/NOTIFY

    def _notify(self, conn: Conn) -> None:
        """Tell listeners (at commit) that runs or schedules may be due sooner than they planned. Sent by the
        calls of the API and of shutdown/rescue, not by the hot claim/finish path: a notifying transaction
        takes a database-wide lock at commit."""
        conn.execute(Q["notify"], {"channel": self.channel, "payload": ""})

    def wait_for_change(self, timeout: timedelta) -> bool:
        """Block until another connection writes something that may be due now (``True``), or ``timeout``
        passes (``False``). The first call starts listening; notifications sent before it are not seen."""
        return self._listener.wait(timeout)

    def stop_waiting(self) -> None:
        self._listener.close()

    def server_time(self) -> datetime:
        row = self._db.autocommit(lambda c: c.execute(Q["server_time"]).fetchone())  # one round trip
        assert row is not None
        now: datetime = row["now"]
        return now.astimezone(UTC)


def _scalar(conn: Conn, query: str, params: dict[str, Any]) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return next(iter(row.values()))


def _many(cur: psycopg.Cursor[Any], query: str, params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``executemany`` (pipelined: one round trip) returning every statement's rows."""
    if not params:
        return []
    cur.executemany(query, params, returning=True)
    rows: list[dict[str, Any]] = []
    while True:
        rows.extend(cur.fetchall())
        if not cur.nextset():
            return rows
