"""What a write answers is what a read of it gives back: the machine's clock (and the store-synchronised one) reads
to the millisecond, as the stores keep times. A job's ``created_at``, a schedule's ``scheduled_at``, an API key's
``created_at`` carried microseconds in the answer to the call that made them, and read back without them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ductape_jobs import Ductape
from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.clock import StoreClock, SystemClock

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


def test_the_clocks_read_whole_milliseconds() -> None:
    readings = [SystemClock().now() for _ in range(50)]
    assert {t.microsecond % 1000 for t in readings} == {0}
    shifted = StoreClock(SystemClock(), _Server())
    assert shifted.offset % timedelta(milliseconds=1) and shifted.now().microsecond % 1000 == 0


class _Server:
    """A server whose clock is 1.234 ms ahead: an offset of microseconds."""

    def server_time(self) -> datetime:
        return datetime.now(UTC) + timedelta(microseconds=1234)
