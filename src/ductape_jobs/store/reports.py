"""The store core's part for ``job.history`` and ``job.stats`` (``StatsStore.schedule_history`` and
``StatsStore.run_stats``): each is one query of ``queries.sql``, aggregated by the database. Both only read
(*idempotent*: a dialect may retry them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ductape_jobs.models import Execution, JobHistory, JobStats, RunPhase, TriggeredBy
from ductape_jobs.store.codec import from_ms, loads, ms
from ductape_jobs.store.dialect import Row, UsesDialect


class ReportsCore(UsesDialect):
    """A schedule's history and the runs' statistics (see ``StatsStore``)."""

    def schedule_history(self, schedule_id: str, limit: int, max_bytes: int | None = None) -> JobHistory | None:
        params = {"schedule_id": schedule_id, "limit": limit, "max_bytes": max_bytes}
        rows = self._read_all("schedule_history", params)
        if not rows:
            return None
        head = rows[0]
        return JobHistory(
            job_id=schedule_id,
            job_tag=head["job_tag"],
            total=int(head["total"]),
            successful=int(head["successful"]),
            failed=int(head["failed"]),
            executions=[execution_from_row(r) for r in rows if r["run_id"] is not None],
            cut=int(head["cut"]),
        )

    def run_stats(
        self,
        *,
        product_tag: str | None = None,
        env: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> JobStats:
        params = {"product_tag": product_tag, "env": env, "since": ms(since), "until": ms(until)}
        rows = self._read_all("run_stats", params)
        return stats_from_rows(rows, product_tag=product_tag, env=env, since=since, until=until)


def execution_from_row(r: Row) -> Execution:
    output = r["output"]
    return Execution(
        number=int(r["number"]),
        run_id=r["run_id"],
        phase=RunPhase(r["phase"]),
        scheduled_at=from_ms(r["scheduled_at"]) or datetime.fromtimestamp(0, UTC),
        started_at=from_ms(r["started_at"]),
        completed_at=from_ms(r["completed_at"]),
        duration_ms=r["duration_ms"],
        error=r["error"],
        result=None if output is None else loads(output),
        triggered_by=TriggeredBy(r["triggered_by"]),
        retry_count=r["retry_count"],
    )


def stats_from_rows(rows: list[Row], **window: Any) -> JobStats:
    """``run_stats``'s rows (one per phase: ``n``, ``first_try``, ``retries``) as the record."""
    by_phase = {RunPhase(r["phase"]): r for r in rows}
    counts = {phase: int(by_phase[phase]["n"]) if phase in by_phase else 0 for phase in RunPhase}
    done = by_phase.get(RunPhase.COMPLETED)
    first_try = int(done["first_try"]) if done else 0
    finished = counts[RunPhase.COMPLETED] + counts[RunPhase.FAILED]
    retries = sum(int(r["retries"]) for p, r in by_phase.items() if p in (RunPhase.COMPLETED, RunPhase.FAILED))
    return JobStats(
        total=sum(counts.values()),
        by_phase=counts,
        finished=finished,
        success_rate=counts[RunPhase.COMPLETED] / finished if finished else None,
        completed_first_try=first_try,
        completed_after_retry=counts[RunPhase.COMPLETED] - first_try,
        average_retry_count=retries / finished if finished else None,
        **window,
    )
