"""``ductape.job.history`` and ``ductape.job.stats``: what a schedule ran, and how the runs went. ``Jobs`` has
them from ``JobReports``; the store aggregates (``StatsStore.schedule_history`` and ``run_stats``)."""

from __future__ import annotations

from datetime import datetime

from ductape_jobs.errors import NotFoundError, ValidationError
from ductape_jobs.limits import check_page
from ductape_jobs.models import JobHistory, JobStats, check_filter, check_key, check_window
from ductape_jobs.store.base import Store

#: How many executions ``history`` lists when not told.
HISTORY_LIMIT = 50


class JobReports:
    """History and statistics, validated before the store is asked (bad input: ``ValidationError``)."""

    _store: Store

    def history(self, job_id: str, limit: int = HISTORY_LIMIT, *, max_bytes: int | None = None) -> JobHistory:
        """A schedule's executions (``job_id``: what ``schedule()`` answered), newest first, at most ``limit``
        (1 to ``MAX_PAGE``), each numbered from 1 in order of due time; with the total, successful and failed
        counts over all its runs. ``max_bytes``: the executions stop once their results and errors pass about that
        many bytes, one at least (``cut`` says how many of ``limit`` were left out; the HTTP API's bound).
        ``NotFoundError`` if there is no such schedule."""
        check_page(limit)
        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
            raise ValidationError("max_bytes", "must be a whole number of bytes, 1 or more, or None (no bound)")
        bound = None if max_bytes is None else min(max_bytes, 2**62)  # past that, no bound: SQL integers end there
        found = self._store.schedule_history(check_key(job_id, "job_id"), limit, bound)
        if found is None:
            raise NotFoundError("schedule", job_id)
        return found

    def stats(
        self,
        product_tag: str | None = None,
        env: str | None = None,
        since: datetime | str | int | None = None,
        until: datetime | str | int | None = None,
    ) -> JobStats:
        """The runs due in ``[since, until)`` (each bound optional; what ``start_at`` takes: a datetime, Unix
        seconds or ms, ISO 8601), of ``product_tag`` and ``env`` when given: counts by phase, the success rate
        (completed / finished), how many completed at their first attempt or after retries, and the average
        retry count of finished runs."""
        product = check_filter(product_tag, "product_tag")
        environment = check_filter(env, "env")
        start, end = check_window(since, until)
        return self._store.run_stats(product_tag=product, env=environment, since=start, until=end)


__all__ = ["HISTORY_LIMIT", "JobReports"]
