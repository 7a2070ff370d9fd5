"""What a write answers is what a read of it gives back: a call that writes a record takes its time to the
millisecond (``clock.to_ms``), as the stores keep times. A job's ``created_at``, a schedule's ``scheduled_at``, an
API key's or a webhook's ``created_at`` carried microseconds in the answer to the call that made them, and read back
without them. The clocks keep microseconds: a worker sleeps by them (truncated, it woke up to 1 ms late)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ductape_jobs import Ductape
from ductape_jobs.apikeys import ApiKeys

JOB = {"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"}


@pytest.mark.parametrize("attempt", range(3))  # a reading that happens to fall on a whole millisecond hides it
def test_what_a_write_answers_is_what_a_read_gives_back(tmp_path: Path, attempt: int) -> None:
    with Ductape(f"sqlite:///{tmp_path / 'times.db'}") as dt:
        made = dt.job.create(JOB)
        assert dt.job.fetch("report").created_at == made.created_at
        dispatched = dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "report"})
        (run,) = dt.job.runs(job_id=dispatched.job_id)
        assert (run.scheduled_at, dt.job.get(dispatched.job_id).created_at) == (dispatched.scheduled_at,) * 2
        key = ApiKeys(dt.store, dt.clock).create("ops").record
        (listed,) = ApiKeys(dt.store, dt.clock).list()
        assert listed.created_at == key.created_at
        dt.webhooks.allow = ["127.0.0.0/8"]
        hook, _ = dt.webhooks.create(
            {"product_tag": "shop", "url": "http://127.0.0.1:9/hook", "events": ["job.completed"]}
        )
        assert dt.webhooks.get(hook.id).created_at == hook.created_at


def test_a_start_at_of_now_with_microseconds_runs_at_once(tmp_path: Path) -> None:
    """``start_at=datetime.now(UTC)`` is a fraction of a millisecond past the call's own (millisecond) now: it is
    now, made with its first run, and answered as read back."""
    from datetime import UTC, datetime

    from ductape_jobs import RunPhase

    with Ductape(f"sqlite:///{tmp_path / 'now.db'}") as dt:
        dt.job.create(JOB)
        for _ in range(20):
            made = dt.job.schedule(
                {"env": "prd", "product_tag": "shop", "event": "report", "start_at": datetime.now(UTC)}
            )
            assert made.status is RunPhase.QUEUED
            (run,) = dt.job.runs(job_id=made.job_id)
            assert run.scheduled_at == made.scheduled_at == dt.job.get(made.job_id).start_at
