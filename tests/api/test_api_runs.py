"""``/api/v1/runs``: history with filters, one run with attempts and timings, retrying a dead letter."""

from __future__ import annotations

from typing import Any

import pytest
from apikit import SHOP, Api, problems

from ductape_jobs import FakeClock, ValidationError

WHOLE_1_10000 = "must be a whole number between 1 and 10000"


def test_runs_list_filter_and_show_attempts(api: Api, job: dict[str, Any], clock: FakeClock) -> None:
    api.dt.job.create({"name": "Boom", "tag": "boom", "event_type": "FUNCTION", "event_tag": "boom"})
    api.dt.function("boom")(lambda input, ctx: 1 / 0)
    ok = api.dt.job.schedule({**SHOP, "input": {"n": 1}}).job_id
    clock.advance(seconds=2)
    bad = api.dt.job.schedule({**SHOP, "event": "boom", "retries": 1}).job_id
    clock.advance(seconds=3)
    api.dt.drain()  # report completes, boom fails once and waits for its retry
    clock.advance(seconds=2)
    api.dt.drain()  # boom fails for good
    c = api.client()

    runs = c.get("/runs").json()["items"]
    assert [(r["job_tag"], r["phase"]) for r in runs] == [("boom", "failed"), ("report", "completed")]
    assert runs[0]["attempts"] == []  # lists leave attempts out
    assert [r["job_id"] for r in c.get("/runs", params={"phase": "failed"}).json()["items"]] == [bad]
    assert [r["job_id"] for r in c.get("/runs", params={"job_id": ok}).json()["items"]] == [ok]
    assert [r["job_tag"] for r in c.get("/runs", params={"job_tag": "boom"}).json()["items"]] == ["boom"]
    since = c.get("/runs", params={"since": "2026-03-02T12:00:01Z"}).json()["items"]
    assert [r["job_id"] for r in since] == [bad]
    until = c.get("/runs", params={"until": "1772452801"}).json()["items"]  # Unix seconds: 12:00:01
    assert [r["job_id"] for r in until] == [ok]

    done = c.get(f"/runs/{runs[1]['id']}").json()
    assert (done["output"], done["input"], done["attempt"], done["duration_ms"] >= 0) == (
        {"ok": True, "input": {"n": 1}},
        {"n": 1},
        1,
        True,
    )
    assert done["scheduled_at"] == "2026-03-02T12:00:00Z" and done["started_at"] == "2026-03-02T12:00:05Z"
    assert done["lateness_ms"] == 5000
    assert [(a["attempt"], a["outcome"]) for a in done["attempts"]] == [(1, "completed")]

    failed = c.get(f"/runs/{runs[0]['id']}").json()
    assert "ZeroDivisionError" in failed["error"]
    assert [a["outcome"] for a in failed["attempts"]] == ["failed", "failed"]
    assert failed["attempts"][0]["worker_id"] and failed["attempts"][0]["finished_at"]
    assert c.get("/runs/run_missing").status_code == 404


def test_retry_a_failed_run(api: Api, job: dict[str, Any]) -> None:
    api.dt.function("report")(lambda input, ctx: 1 / 0)
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    c = api.client()
    (run,) = c.get("/runs", params={"phase": "failed"}).json()["items"]
    retried = c.post(f"/runs/{run['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["phase"] == "queued" and "status" not in retried.json()
    # its attempts, as GET /runs/{id} has them (the answer said [] for a run with one), not the last one's times
    assert [a["outcome"] for a in retried.json()["attempts"]] == ["failed"]
    assert (retried.json()["started_at"], retried.json()["duration_ms"], retried.json()["retry_count"]) == (
        None,
        None,
        1,
    )
    again = c.post(f"/runs/{run['id']}/retry")
    assert again.status_code == 409
    assert "only a failed or cancelled run can be retried" in again.json()["detail"]
    assert c.post("/runs/run_missing/retry").status_code == 404


def test_run_queries_are_validated(api: Api) -> None:
    c = api.client()
    # a window the wrong way round: as /stats/jobs answers it (the runs answered [] with 200)
    for path in ("/runs", "/stats/jobs"):
        wrong = c.get(path, params={"since": "2027-01-01", "until": "2026-01-01"})
        assert problems(wrong) == [("since", "2027-01-01T00:00:00+00:00 is after until 2026-01-01T00:00:00+00:00")]
    with pytest.raises(ValidationError, match="is after until"):
        api.dt.job.runs(since="2027-01-01", until="2026-01-01")
    assert problems(c.get("/runs", params={"phase": "exploded"}))[0][0] == "phase"
    assert problems(c.get("/runs", params={"since": "last tuesday"}))[0][0] == "since"
    assert problems(c.get("/runs", params={"limit": 20_000})) == [
        ("limit", "must be a whole number between 1 and 10000")
    ]
