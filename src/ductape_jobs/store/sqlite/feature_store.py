"""The SQLite store's part for features: feature runs and their events' results.

A mixin of ``SQLiteStore`` (it uses the store's ``_tx``, ``_one`` and ``_all``); its SQL is ``features.sql``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
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
from ductape_jobs.store.records import EventStatus, FeatureRun, FeatureRunStatus
from ductape_jobs.store.sql import load_queries

F = load_queries("ductape_jobs.store.sqlite", "features.sql")


class SQLiteFeatureStore:
    """Feature runs on SQLite (see ``Store`` for each method's contract)."""

    # the store's plumbing (``SQLiteStore``), declared for the type checker
    _tx: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _one: Callable[[str, dict[str, Any]], dict[str, Any] | None]
    _all: Callable[..., list[dict[str, Any]]]

    def create_feature_run(self, run: FeatureRun) -> None:
        try:
            with self._tx() as db:
                db.execute(F["insert_feature_run"], feature_run_params(run))
                db.executemany(F["insert_feature_event"], [feature_event_params(run.id, e) for e in run.events])
        except ConflictError:
            raise ConflictError(f"a feature run with id {run.id!r} already exists") from None

    def _read_run(self, db: sqlite3.Connection, run_id: str) -> FeatureRun | None:
        row = db.execute(F["get_feature_run"], {"id": run_id}).fetchone()
        if row is None:
            return None
        events = [event_from_row(r) for r in db.execute(F["events_of_feature_run"], {"run_id": run_id})]
        return feature_run_from_row(row, events)

    def get_feature_run(self, run_id: str) -> FeatureRun | None:
        with self._tx(write=False) as db:
            return self._read_run(db, run_id)

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
            where.append("feature_tag = ?")
            params.append(feature_tag)
        if status is not None:
            where.append("status = ?")
            params.append(FeatureRunStatus(status).value)
        sql = "SELECT * FROM feature_runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        return [feature_run_from_row(r) for r in self._all(sql, [*params, limit, offset])]

    def claim_feature_run(
        self, run_id: str, owner: str, until: datetime, now: datetime, *, take_over: bool = False
    ) -> FeatureRun | None:
        params = {"id": run_id, "owner": owner, "until": ms(until), "now": ms(now), "take_over": int(take_over)}
        with self._tx() as db:
            claimed = db.execute(F["claim_feature_run"], params).fetchone() is not None
            run = self._read_run(db, run_id)
        if run is None:
            raise NotFoundError("feature run", run_id)
        if claimed or run.status is not FeatureRunStatus.RUNNING:
            return run
        return None

    def extend_feature_lease(self, run_id: str, owner: str, until: datetime) -> bool:
        with self._tx() as db:
            cur = db.execute(F["extend_feature_lease"], {"id": run_id, "owner": owner, "until": ms(until)})
            return cur.rowcount == 1

    def start_feature_event(
        self, run_id: str, owner: str, sequence_tag: str, event_tag: str, now: datetime
    ) -> int | None:
        params = {"run_id": run_id, "owner": owner, "sequence_tag": sequence_tag, "event_tag": event_tag}
        with self._tx() as db:
            row = db.execute(F["start_feature_event"], {**params, "now": ms(now)}).fetchone()
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
        with self._tx() as db:
            return db.execute(F["finish_feature_event"], params).rowcount == 1

    def finish_feature_run(
        self, run_id: str, owner: str, status: FeatureRunStatus, now: datetime, error: str | None = None
    ) -> bool:
        if status is FeatureRunStatus.RUNNING:
            raise ValueError("a feature run finishes completed or failed")
        params = {"id": run_id, "owner": owner, "status": status.value, "error": error, "now": ms(now)}
        with self._tx() as db:
            if db.execute(F["finish_feature_run"], params).rowcount != 1:
                return False
            db.execute(F["skip_unfinished_events"], {"id": run_id, "now": ms(now)})
        return True

    def restart_feature_run(self, run_id: str, now: datetime) -> FeatureRun:
        with self._tx() as db:
            current = self._read_run(db, run_id)
            if current is None:
                raise NotFoundError("feature run", run_id)
            if db.execute(F["restart_feature_run"], {"id": run_id, "now": ms(now)}).rowcount != 1:
                raise ConflictError(f"feature run {run_id!r} is {current.status}; only a failed one runs again")
            db.execute(F["reset_unsuccessful_events"], {"id": run_id})
            run = self._read_run(db, run_id)
        assert run is not None
        return run
