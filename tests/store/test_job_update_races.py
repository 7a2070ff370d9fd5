"""Two updates of one job at once, each of fields that are fine alone (a probe: ``executions`` 5 by one, ``intervals``
0 by the other): each was checked against the job as it read it, and the store merged both, so the job ended as
neither could have made it (executions 5, intervals 0: a job that runs once and then refuses every update; PostgreSQL
60 of 60 rounds, SQLite 15 of 60). The check now runs in the write's transaction, on the row as it is."""

from __future__ import annotations

from storekit import Backend
from test_schedule_control_races import at_once

from ductape_jobs import Ductape, ValidationError

ROUNDS = 20


def test_two_updates_at_once_never_make_a_job_neither_could(backend: Backend) -> None:
    a, b = Ductape(backend.url), Ductape(backend.url)
    try:
        for i in range(ROUNDS):
            tag = f"pair{i}"
            a.job.create(
                {
                    "name": tag,
                    "tag": tag,
                    "event_type": "FUNCTION",
                    "event_tag": "f",
                    "intervals": 1000,
                    "executions": 0,
                }
            )
            raised = at_once(
                lambda t=tag: a.job.update(t, {"executions": 5}), lambda t=tag: b.job.update(t, {"intervals": 0})
            )
            job = a.job.fetch(tag)
            assert not (job.executions > 1 and job.intervals == 0), (i, job)
            refused = [e for e in raised if e is not None]
            assert all(isinstance(e, ValidationError) and e.field == "intervals" for e in refused), refused
            assert len(refused) <= 1  # the one that came second, if it saw the first
    finally:
        a.close()
        b.close()
