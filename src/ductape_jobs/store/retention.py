"""The store core's part for retention: the pruner's batches (queries in ``retention.sql``).

Each kind is pruned in its own short transaction: pick up to ``limit`` rows (oldest first; on PostgreSQL locked
``FOR UPDATE SKIP LOCKED``, so racing pruners take different rows and never wait for each other; on SQLite the
single writer orders them), then delete them by key with what belongs to them; a schedule counts its pruned runs
(``job.history`` adds them), updated in schedule order so racing pruners never deadlock. ``prune`` is *idempotent*: the
deletes are guarded by the rows' state, so a second application deletes nothing more than a first would.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from ductape_jobs.retention import PruneCounts, Retention
from ductape_jobs.store.codec import ms
from ductape_jobs.store.dialect import Row, Tx, UsesDialect

# kind -> (query picking a batch, key column, [(query deleting what belongs to it, count name)], delete, count name)
_Kind = tuple[str, str, tuple[tuple[str, str], ...], str, str]
_KINDS: tuple[_Kind, ...] = (
    ("prunable_done_runs", "id", (("delete_attempts_of_runs", "attempts"),), "delete_runs", "runs"),
    ("prunable_failed_runs", "id", (("delete_attempts_of_runs", "attempts"),), "delete_runs", "runs"),
    (
        "prunable_feature_runs",
        "id",
        (("delete_events_of_feature_runs", "feature_events"),),
        "delete_feature_runs",
        "feature_runs",
    ),
    ("prunable_deliveries", "id", (), "delete_deliveries", "webhook_deliveries"),
    ("prunable_cache_entries", "key", (), "delete_cache_entries", "cache_entries"),
    ("prunable_outbox", "seq", (), "delete_outbox", "outbox"),
)
_COUNTS = (
    "count_prunable_runs",
    "count_prunable_feature_runs",
    "count_prunable_deliveries",
    "count_prunable_cache_entries",
    "count_prunable_outbox",
)


def _params(now: datetime, retention: Retention) -> dict[str, Any]:
    completed, failed, cancelled = retention.cutoffs(now)
    return {
        "now": ms(now),
        "completed_before": ms(completed),
        "failed_before": ms(failed),
        "cancelled_before": ms(cancelled),
        "before": ms(max(completed, failed, cancelled)),
        "done_before": ms(max(completed, cancelled)),
    }


def _prune_kind(tx: Tx, kind: _Kind, params: dict[str, Any]) -> dict[str, int]:
    """One batch of one kind: pick it, delete what belongs to it, then it."""
    pick, key, belongs, delete, name = kind
    ids = [r[key] for r in tx.all(pick, params)]
    if not ids:
        return {}
    done = {what: tx.run(query, {"ids": ids}) for query, what in belongs}
    if delete != "delete_runs":
        done[name] = tx.run(delete, {"ids": ids, "now": params["now"]})
        return done
    gone = tx.all(delete, {"ids": ids})
    done[name] = len(gone)
    tx.many("count_pruned_runs", _tally(gone))
    return done


def _tally(gone: list[Row]) -> list[dict[str, Any]]:
    """Pruned runs counted per schedule, in schedule order (racing pruners lock schedules in one order)."""
    counts: dict[str, dict[str, Any]] = {}
    for row in gone:
        c = counts.setdefault(
            row["schedule_id"], {"schedule_id": row["schedule_id"], "runs": 0, "completed": 0, "failed": 0}
        )
        c["runs"] += 1
        if row["phase"] in ("completed", "failed"):
            c[row["phase"]] += 1
    return [counts[k] for k in sorted(counts)]


class RetentionCore(UsesDialect):
    """The pruner (see ``RetentionStore`` for the contract)."""

    def prune(self, now: datetime, retention: Retention, limit: int) -> PruneCounts:
        params = {**_params(now, retention), "limit": limit}
        total = PruneCounts()
        for kind in _KINDS:
            total += PruneCounts(
                **self._write(functools.partial(_prune_kind, kind=kind, params=params), idempotent=True)
            )
        return total

    def count_prunable(self, now: datetime, retention: Retention) -> PruneCounts:
        params = _params(now, retention)

        def op(tx: Tx) -> dict[str, int]:
            counts: dict[str, int] = {}
            for query in _COUNTS:
                row = tx.one(query, params)
                assert row is not None
                counts.update({k: int(v or 0) for k, v in row.items()})
            return counts

        return PruneCounts(**self._read(op))
