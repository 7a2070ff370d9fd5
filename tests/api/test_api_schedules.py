"""``/api/v1/schedule``, ``/schedules`` and ``/preview``: scheduling and schedule control through HTTP."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from apikit import BLOG, SHOP, Api, problems

from ductape_jobs import FakeClock, ValidationError

WHOLE_1_10000 = "must be a whole number between 1 and 10000"


def test_schedule_answers_the_dispatch_result(api: Api, job: dict[str, Any]) -> None:
    c = api.client()
    now = c.post("/schedule", json={**SHOP, "input": {"team": "growth"}, "retries": 2})
    assert now.status_code == 201, now.text
    assert set(now.json()) == {"job_id", "status", "scheduled_at", "recurring", "next_run_at"}
    assert now.json()["status"] == "queued" and now.json()["recurring"] is False

    cron = c.post("/schedule", json={**SHOP, "repeat": {"cron": "0 9 * * *", "tz": "America/New_York"}}).json()
    assert cron == {
        "job_id": cron["job_id"],
        "status": "scheduled",
        "scheduled_at": "2026-03-02T14:00:00Z",  # 09:00 EST
        "recurring": True,
        "next_run_at": "2026-03-02T14:00:00Z",
    }
    stored = api.dt.job.get(cron["job_id"])
    assert (stored.cron, stored.tz, stored.product_tag) == ("0 9 * * *", "America/New_York", "shop")

    later = c.post("/schedule", json={**SHOP, "start_at": 1772456400 + 3600}).json()  # Unix seconds
    assert later["scheduled_at"] == "2026-03-02T14:00:00Z"


def test_a_keyed_schedule_is_made_once_and_shows_its_key(api: Api, job: dict[str, Any]) -> None:
    c = api.client()
    keyed = {**SHOP, "key": "nightly-report", "repeat": {"cron": "0 2 * * *"}}
    first = c.post("/schedule", json=keyed)
    again = c.post("/schedule", json={**keyed, "repeat": {"every": 60_000}})
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    shown = c.get(f"/schedules/{first.json()['job_id']}").json()
    assert (shown["key"], shown["cron"]) == ("nightly-report", "0 2 * * *")
    assert [s["key"] for s in c.get("/schedules").json()["items"]] == ["nightly-report"]
    batch = c.post("/schedule/batch", json=[{**SHOP, "key": "other", "start_at": 0}])
    assert problems(batch) == [("[0].key", "is taken by schedule(), one request at a time, not schedule_many")]


@pytest.mark.parametrize(
    "request_",
    [
        {**SHOP, "repeat": {"every": 0}},
        {**SHOP, "repeat": {"cron": "61 * * * *"}},
        {**SHOP, "repeat": {"cron": "* * * * *", "every": 1000}},
        {**SHOP, "repeat": {"every": 1000, "tz": "Mars/Olympus"}},
        {**SHOP, "start_at": "yesterday-ish"},
        {**SHOP, "event": "missing-job"},
        {**SHOP, "retries": -1},
        {**SHOP, "start_at": 10**400},  # was a 500 (OverflowError)
        {**SHOP, "repeat": {"every": 1000, "endDate": 10**400}},
        {**SHOP, "priority": True},
        {**SHOP, "pause_on_failure": "yes"},  # was stored as true ("off" as false, 1, 0 too)
        {**SHOP, "pause_on_failure": 0},
        {**SHOP, "input": "not an object"},
        {**SHOP, "colour": "blue"},
        {"env": "prd", "event": "report"},
    ],
)
def test_bad_schedule_requests_answer_the_same_422_and_write_nothing(
    api: Api, job: dict[str, Any], request_: dict[str, Any]
) -> None:
    response = api.client().post("/schedule", json=request_)
    with pytest.raises(ValidationError) as raised:
        api.dt.job.schedule(request_)
    assert problems(response) == [(raised.value.field, raised.value.rule)]
    assert api.dt.job.list() == [] and api.dt.job.runs() == []


def test_a_name_with_a_lone_surrogate_answers_422_naming_it(api: Api, job: dict[str, Any]) -> None:
    """JSON may escape a lone surrogate (``\\udce9``), which no UTF-8 text holds: the rule says so, as for an input."""
    body = json.dumps({**SHOP, "env": "pr\udce9"})  # ensure_ascii: the escape, as a client would send it
    response = api.client().post("/schedule", content=body, headers={"content-type": "application/json"})
    assert problems(response) == [("env", "is text with a lone surrogate (UTF-8 cannot encode it)")]
    assert api.dt.job.list() == []


def test_list_filters_and_pages(api: Api, job: dict[str, Any], clock: FakeClock) -> None:
    ids = []
    for _ in range(3):
        ids.append(api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id)
        clock.advance(seconds=1)
    other = api.dt.job.schedule({**BLOG, "repeat": {"every": 60_000}}).job_id
    api.dt.job.pause(ids[0])
    c = api.client()

    page = c.get("/schedules", params={"limit": 2}).json()
    assert [s["job_id"] for s in page["items"]] == [other, ids[2]]  # newest first
    assert (page["limit"], page["offset"], page["has_more"]) == (2, 0, True)
    rest = c.get("/schedules", params={"limit": 2, "offset": 2}).json()
    assert ([s["job_id"] for s in rest["items"]], rest["has_more"]) == ([ids[1], ids[0]], False)
    past = c.get("/schedules", params={"limit": 2, "after": ids[2]}).json()  # the page past the last one seen
    assert ([s["job_id"] for s in past["items"]], past["has_more"]) == ([ids[1], ids[0]], False)
    assert problems(c.get("/schedules", params={"after": "job_gone"})) == [
        (
            "after",
            "no schedule with id 'job_gone' in this list (never made, or of another product or env than it keeps); "
            "page from the start",
        )
    ]

    paused = c.get("/schedules", params={"status": "paused"}).json()["items"]
    assert [s["job_id"] for s in paused] == [ids[0]]
    assert paused[0]["reason"] == "paused"
    assert len(c.get("/schedules", params={"job_tag": "report"}).json()["items"]) == 4
    assert c.get("/schedules", params={"job_tag": "none"}).json()["items"] == []

    one = c.get(f"/schedules/{ids[1]}").json()
    assert "id" not in one  # one name per thing: job_id
    assert (one["job_id"], one["every"], one["status"], one["tz"]) == (
        ids[1],
        60000,
        "active",
        "UTC",
    )
    assert "session" not in one
    assert c.get("/schedules/job_missing").status_code == 404


def test_list_queries_are_validated(api: Api) -> None:
    c = api.client()
    assert problems(c.get("/schedules", params={"status": "sleeping"})) == [
        ("status", "'sleeping' is not one of active, paused, cancelled, completed")
    ]
    assert problems(c.get("/schedules", params={"limit": 0})) == [
        ("limit", "must be a whole number between 1 and 10000")
    ]
    assert problems(c.get("/schedules", params={"offset": -1})) == [
        ("offset", "must be a whole number between 0 and 1000000000")
    ]
    field, _ = problems(c.get("/schedules", params={"limit": "ten"}))[0]
    assert field == "limit"


def test_pause_resume_cancel_trigger_and_reschedule(api: Api, job: dict[str, Any], clock: FakeClock) -> None:
    c = api.client()
    job_id = api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id
    paused = c.post(f"/schedules/{job_id}/pause", json={"reason": "maintenance"})
    assert paused.status_code == 200, paused.text
    assert (paused.json()["status"], paused.json()["reason"]) == ("paused", "paused: maintenance")
    again = c.post(f"/schedules/{job_id}/pause")  # a state conflict: 409
    assert (
        again.status_code == 409
        and again.json()["detail"] == f"schedule {job_id!r} is paused; only an active one pauses"
    )

    clock.advance(minutes=5)
    resumed = c.post(f"/schedules/{job_id}/resume")  # no body at all
    assert resumed.json()["status"] == "active"
    assert resumed.json()["next_run_at"] == "2026-03-02T12:05:00Z"  # carries on from now

    triggered = c.post(f"/schedules/{job_id}/trigger", json={})
    assert triggered.status_code == 200, triggered.text
    assert (triggered.json()["triggered_by"], triggered.json()["job_id"]) == ("manual", job_id)

    again = c.put(f"/schedules/{job_id}/repeat", json={"cron": "0 * * * *"})
    assert again.status_code == 200, again.text
    assert (again.json()["cron"], again.json()["every"], again.json()["next_run_at"]) == (
        "0 * * * *",
        None,
        "2026-03-02T13:00:00Z",
    )
    assert problems(c.put(f"/schedules/{job_id}/repeat", json={"every": -1})) == [
        ("repeat.every", "every must be > 0 (milliseconds)")
    ]
    assert api.dt.job.get(job_id).cron == "0 * * * *"  # the bad one changed nothing

    cancelled = c.post(f"/schedules/{job_id}/cancel", json={"reason": "replaced"})
    assert (cancelled.json()["status"], cancelled.json()["reason"]) == ("cancelled", "cancelled: replaced")
    assert api.dt.job.runs(job_id=job_id, phase="queued") == []  # its pending runs went with it
    assert problems(c.post(f"/schedules/{job_id}/cancel", json={"why": "typo"})) == [("why", "is not a known field")]
    for verb in ("pause", "resume", "cancel", "trigger"):
        assert c.post(f"/schedules/job_missing/{verb}").status_code == 404
    assert c.put("/schedules/job_missing/repeat", json={"every": 1000}).status_code == 404
    # a bad body is a 422 naming its field whether or not the schedule exists, as the Python call answers
    with pytest.raises(ValidationError) as raised:
        api.dt.job.reschedule("job_missing", {"every": -1})
    assert problems(c.put("/schedules/job_missing/repeat", json={"every": -1})) == [
        (raised.value.field, raised.value.rule)
    ]
    assert problems(c.post("/schedules/job_missing/cancel", json={"why": "typo"})) == [("why", "is not a known field")]


def test_preview(api: Api) -> None:
    c = api.client()
    times = c.post("/preview", json={"repeat": {"cron": "30 2 * * *", "tz": "America/New_York"}, "count": 3})
    assert times.status_code == 200, times.text
    assert times.json() == {"times": ["2026-03-03T07:30:00Z", "2026-03-04T07:30:00Z", "2026-03-05T07:30:00Z"]}
    start = (api.dt.clock.now() + timedelta(days=30)).isoformat()
    later = c.post("/preview", json={"repeat": {"every": 3_600_000, "limit": 2}, "start": start}).json()
    assert later == {"times": ["2026-04-01T12:00:00Z", "2026-04-01T13:00:00Z"]}
    assert problems(c.post("/preview", json={"repeat": {"cron": "nope"}}))[0][0] == "repeat.cron"
    assert problems(c.post("/preview", json={"repeat": {"every": 1000}, "count": 0})) == [
        ("count", "must be a whole number between 1 and 10000 (got 0)")
    ]
    assert problems(c.post("/preview", json={"count": 3})) == [("repeat", "is required")]
    assert problems(c.post("/preview", json={"repeat": {"every": 1000}, "extra": 1})) == [
        ("extra", "is not a known field")
    ]


@pytest.mark.parametrize("reason", ["x" * 1001, 5, ["a list"]])
def test_a_bad_reason_is_refused_in_the_python_calls_words(api: Api, job: dict[str, Any], reason: Any) -> None:
    c = api.client()
    job_id = api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id
    with pytest.raises(ValidationError) as python:
        api.dt.job.pause(job_id, reason)
    for verb in ("pause", "cancel"):
        assert problems(c.post(f"/schedules/{job_id}/{verb}", json={"reason": reason})) == [
            ("reason", python.value.rule)
        ]
    assert api.dt.job.get(job_id).status.value == "active"  # nothing was written
