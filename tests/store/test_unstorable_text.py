"""A text the database cannot hold, given to a call that reads or writes by it (an id, a filter, a reason), is a
``ValidationError`` naming the parameter, and writes nothing: a lone surrogate on every backend (UTF-8 cannot
encode it), a NUL character on PostgreSQL (its text cannot hold one; SQLite keeps it). They were a bare
``UnicodeEncodeError``, or a ``StoreError`` that the HTTP API answered 503."""

from __future__ import annotations

import pytest
from storekit import Backend

from ductape_jobs import Ductape, FakeClock, ValidationError

JOB = {"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"}
REQUEST = {"env": "prd", "product_tag": "shop", "event": "report", "repeat": {"cron": "0 9 * * *"}}


@pytest.mark.parametrize("bad", ["\ud800", "a\x00b"], ids=["lone surrogate", "NUL"])
def test_an_id_a_filter_or_a_reason_the_database_cannot_hold_is_refused_naming_it(backend: Backend, bad: str) -> None:
    refused_here = bad != "a\x00b" or backend.name == "postgres"
    with Ductape(backend.url, clock=FakeClock()) as dt:
        dt.job.create(JOB)
        job_id = dt.job.schedule(REQUEST).job_id
        before = dt.job.get(job_id)
        calls = [
            (lambda: dt.job.get(f"job_{bad}"), "id"),
            (lambda: dt.job.list(env=bad), "env"),
            (lambda: dt.job.runs(job_tag=bad), "job_tag"),
            (lambda: dt.job.runs(job_id=f"job_{bad}"), "job_id"),  # the API's name, not the query's schedule_id
            (lambda: dt.job.pause(job_id, reason=f"stop {bad}"), "reason"),
        ]
        for call, field in calls:
            control = bad == "a\x00b" and field == "reason"  # a reason holds no control character, on any backend
            if not refused_here and not control:
                try:
                    call()
                except Exception as exc:  # SQLite keeps a NUL: a lookup finds nothing
                    assert not isinstance(exc, ValidationError), exc
                continue
            with pytest.raises(ValidationError) as refused:
                call()
            assert refused.value.field == field
            expected = "control character (U+0000, NUL)" if control else "NUL character"
            assert ("lone surrogate" if bad == "\ud800" else expected) in refused.value.rule
        assert dt.job.get(job_id) == before  # the refused pause wrote nothing
