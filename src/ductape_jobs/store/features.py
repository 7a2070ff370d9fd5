"""The store core's part for features: feature runs and their events' results (queries in ``features.sql``).

Reads, ``claim_feature_run`` (the same owner may claim again), ``extend_feature_lease`` and
``finish_feature_event`` (it accepts the status it sets) are *idempotent*: a dialect may retry them even when
a COMMIT's outcome is unknown. ``create_feature_run``, ``start_feature_event`` (it counts attempts),
``finish_feature_run`` and ``restart_feature_run`` are not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ductape_jobs.errors import ConflictError, NotFoundError
from ductape_jobs.models import Schedule
from ductape_jobs.store.codec import ms, schedule_from_row, storable
from ductape_jobs.store.dialect import NO_CURSOR, Cursor, Tx, UsesDialect
from ductape_jobs.store.feature_rows import (
    event_finish_params,
    event_from_row,
    feature_event_params,
    feature_run_from_row,
    feature_run_params,
)
from ductape_jobs.store.records import EventStatus, FeatureRun, FeatureRunStatus

#: A feature run past which a list pages: of the list's product and env (and feature, when it names one).
_FEATURE_RUNS = Cursor("get_feature_run", "feature run", "created_at", ("product_tag", "env", "feature_tag"))


def _read_run(tx: Tx, run_id: str) -> FeatureRun | None:
    row = tx.one("get_feature_run", {"id": run_id})
    if row is None:
        return None
    return feature_run_from_row(row, [event_from_row(r) for r in tx.all("events_of_feature_run", {"run_id": run_id})])


class FeatureCore(UsesDialect):
    """Feature runs (see ``FeatureStore`` for each method's contract)."""

    def create_feature_run(self, run: FeatureRun) -> None:
        def op(tx: Tx) -> None:
            tx.run("insert_feature_run", feature_run_params(run))
            tx.many("insert_feature_event", [feature_event_params(run.id, e) for e in run.events])

        try:
            self._write(op)
        except ConflictError as exc:
            raise ConflictError(f"a feature run with id {run.id!r} already exists") from exc.__cause__

    def get_feature_run(self, run_id: str) -> FeatureRun | None:
        return self._read(lambda tx: _read_run(tx, run_id))

    def list_feature_runs(
        self,
        *,
        feature_tag: str | None = None,
        status: FeatureRunStatus | None = None,
        product_tag: str | None = None,
        env: str | None = None,
        limit: int = 100,
        offset: int = 0,
        after: str | None = None,
    ) -> list[FeatureRun]:
        params = {
            "feature_tag": feature_tag,
            "status": None if status is None else FeatureRunStatus(status).value,
            "product_tag": product_tag,
            "env": env,
            "limit": limit,
            "offset": offset,
            **NO_CURSOR,
        }
        name = "list_feature_runs" if feature_tag is None else "list_feature_runs_of_feature"  # its index applies
        return self._page(name, params, after, _FEATURE_RUNS, feature_run_from_row)

    def claim_feature_run(
        self, run_id: str, owner: str, until: datetime, now: datetime, *, take_over: bool = False
    ) -> FeatureRun | None:
        params = {"id": run_id, "owner": owner, "until": ms(until), "now": ms(now), "take_over": take_over}

        def op(tx: Tx) -> tuple[bool, FeatureRun | None]:
            claimed = tx.one("claim_feature_run", params) is not None
            return claimed, _read_run(tx, run_id)

        claimed, run = self._write(op, idempotent=True)
        if run is None:
            raise NotFoundError("feature run", run_id)
        if claimed or run.status is not FeatureRunStatus.RUNNING:
            return run
        return None

    def feature_schedule(self, key: str) -> Schedule | None:
        row = self._read_one("feature_schedule", {"key": key})
        return None if row is None else schedule_from_row(row)

    def orphaned_feature_runs(self, now: datetime, limit: int) -> list[str]:
        rows = self._read_all("orphaned_feature_runs", {"now": ms(now), "limit": limit})
        return [r["id"] for r in rows]

    def extend_feature_lease(self, run_id: str, owner: str, until: datetime) -> bool:
        params = {"id": run_id, "owner": owner, "until": ms(until)}
        return self._write(lambda tx: tx.run("extend_feature_lease", params), idempotent=True) == 1

    def start_feature_event(
        self, run_id: str, owner: str, sequence_tag: str, event_tag: str, now: datetime
    ) -> int | None:
        params = {"run_id": run_id, "owner": owner, "sequence_tag": sequence_tag, "event_tag": event_tag}
        row = self._write(lambda tx: tx.one("start_feature_event", {**params, "now": ms(now)}))
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
        return self._write(lambda tx: tx.run("finish_feature_event", params), idempotent=True) == 1

    def finish_feature_run(
        self, run_id: str, owner: str, status: FeatureRunStatus, now: datetime, error: str | None = None
    ) -> bool:
        if status is FeatureRunStatus.RUNNING:
            raise ValueError("a feature run finishes completed or failed")
        params = {"id": run_id, "owner": owner, "status": status.value, "error": storable(error), "now": ms(now)}

        def op(tx: Tx) -> bool:
            if tx.run("finish_feature_run", params) != 1:
                return False
            tx.run("skip_unfinished_events", {"id": run_id, "now": ms(now)})
            return True

        return self._write(op)

    def restart_feature_run(self, run_id: str, now: datetime) -> FeatureRun:
        def op(tx: Tx) -> FeatureRun:
            if tx.run("restart_feature_run", {"id": run_id, "now": ms(now)}) != 1:
                current = tx.one("get_feature_run", {"id": run_id})
                if current is None:
                    raise NotFoundError("feature run", run_id)
                raise ConflictError(f"feature run {run_id!r} is {current['status']}; only a failed one runs again")
            tx.run("reset_unsuccessful_events", {"id": run_id})
            run = _read_run(tx, run_id)
            assert run is not None
            return run

        return self._write(op)
