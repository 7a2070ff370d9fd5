"""The PostgreSQL store's part for features: feature runs and their events' results.

A mixin of ``PostgresStore`` (it uses the store's ``_db``); its SQL is ``features.sql``. Reads, ``claim``
(the same owner may claim again), ``extend_feature_lease`` and ``finish_feature_event`` (it accepts the
status it sets) are *idempotent*: retried even when a COMMIT's outcome is unknown. ``create_feature_run``,
``start_feature_event`` (it counts attempts), ``finish_feature_run`` and ``restart_feature_run`` are not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ductape_jobs.errors import ConflictError, NotFoundError
from ductape_jobs.store.codec import ms
from ductape_jobs.store.feature_rows import (
    event_finish_params,
    event_from_row,
    feature_event_params,
    feature_run_from_row,
    feature_run_params,
)
from ductape_jobs.store.postgres.connection import Conn, Database
from ductape_jobs.store.records import EventStatus, FeatureRun, FeatureRunStatus
from ductape_jobs.store.sql import load_queries

F = load_queries("ductape_jobs.store.postgres", "features.sql")


def _read_run(conn: Conn, run_id: str) -> FeatureRun | None:
    row = conn.execute(F["get_feature_run"], {"id": run_id}).fetchone()
    if row is None:
        return None
    events = [event_from_row(r) for r in conn.execute(F["events_of_feature_run"], {"run_id": run_id})]
    return feature_run_from_row(row, events)


class PostgresFeatureStore:
    """Feature runs on PostgreSQL (see ``Store`` for each method's contract)."""

    _db: Database  # the store's connection pool (``PostgresStore``)

    def create_feature_run(self, run: FeatureRun) -> None:
        def op(conn: Conn) -> None:
            conn.execute(F["insert_feature_run"], feature_run_params(run))
            with conn.cursor() as cur:
                cur.executemany(F["insert_feature_event"], [feature_event_params(run.id, e) for e in run.events])

        try:
            self._db.run(op)
        except ConflictError as exc:
            raise ConflictError(f"a feature run with id {run.id!r} already exists") from exc.__cause__

    def get_feature_run(self, run_id: str) -> FeatureRun | None:
        return self._db.run(lambda c: _read_run(c, run_id), idempotent=True)

    def list_feature_runs(
        self,
        *,
        feature_tag: str | None = None,
        status: FeatureRunStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[FeatureRun]:
        where: list[str] = []
        params: list[Any] = []
        if feature_tag is not None:
            where.append("feature_tag = %s")
            params.append(feature_tag)
        if status is not None:
            where.append("status = %s")
            params.append(FeatureRunStatus(status).value)
        query = "SELECT * FROM feature_runs" + (" WHERE " + " AND ".join(where) if where else "")
        query += " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s"
        rows = self._db.run(lambda c: c.execute(query, [*params, limit, offset]).fetchall(), idempotent=True)
        return [feature_run_from_row(r) for r in rows]

    def claim_feature_run(
        self, run_id: str, owner: str, until: datetime, now: datetime, *, take_over: bool = False
    ) -> FeatureRun | None:
        params = {"id": run_id, "owner": owner, "until": ms(until), "now": ms(now), "take_over": take_over}

        def op(conn: Conn) -> tuple[bool, FeatureRun | None]:
            claimed = conn.execute(F["claim_feature_run"], params).fetchone() is not None
            return claimed, _read_run(conn, run_id)

        claimed, run = self._db.run(op, idempotent=True)
        if run is None:
            raise NotFoundError("feature run", run_id)
        if claimed or run.status is not FeatureRunStatus.RUNNING:
            return run
        return None

    def extend_feature_lease(self, run_id: str, owner: str, until: datetime) -> bool:
        params = {"id": run_id, "owner": owner, "until": ms(until)}
        count: int = self._db.run(lambda c: c.execute(F["extend_feature_lease"], params).rowcount, idempotent=True)
        return count == 1

    def start_feature_event(
        self, run_id: str, owner: str, sequence_tag: str, event_tag: str, now: datetime
    ) -> int | None:
        params = {"run_id": run_id, "owner": owner, "sequence_tag": sequence_tag, "event_tag": event_tag}
        row = self._db.run(lambda c: c.execute(F["start_feature_event"], {**params, "now": ms(now)}).fetchone())
        return None if row is None else int(row["attempts"])

    def finish_feature_event(
        self,
        run_id: str,
        owner: str,
        sequence_tag: str,
        event_tag: str,
        status: EventStatus,
        now: datetime,
        *,
        output: Any = None,
        job_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        params = event_finish_params(run_id, owner, sequence_tag, event_tag, status, now, output, job_id, error)
        count: int = self._db.run(lambda c: c.execute(F["finish_feature_event"], params).rowcount, idempotent=True)
        return count == 1

    def finish_feature_run(
        self, run_id: str, owner: str, status: FeatureRunStatus, now: datetime, error: str | None = None
    ) -> bool:
        if status is FeatureRunStatus.RUNNING:
            raise ValueError("a feature run finishes completed or failed")
        params = {"id": run_id, "owner": owner, "status": status.value, "error": error, "now": ms(now)}

        def op(conn: Conn) -> bool:
            if conn.execute(F["finish_feature_run"], params).rowcount != 1:
                return False
            conn.execute(F["skip_unfinished_events"], {"id": run_id, "now": ms(now)})
            return True

        return self._db.run(op)

    def restart_feature_run(self, run_id: str, now: datetime) -> FeatureRun:
        def op(conn: Conn) -> FeatureRun:
            if conn.execute(F["restart_feature_run"], {"id": run_id, "now": ms(now)}).rowcount != 1:
                current = conn.execute(F["get_feature_run"], {"id": run_id}).fetchone()
                if current is None:
                    raise NotFoundError("feature run", run_id)
                raise ConflictError(f"feature run {run_id!r} is {current['status']}; only a failed one runs again")
            conn.execute(F["reset_unsuccessful_events"], {"id": run_id})
            run = _read_run(conn, run_id)
            assert run is not None
            return run

        return self._db.run(op)
