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
