"""``/api/v1/jobs``: job definitions through HTTP, and 422s that name the field as the Python API does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from apikit import BLOG, JOB, SHOP, Api, problems

from ductape_jobs import ValidationError


def test_create_list_get_update_delete(api: Api) -> None:
    c = api.client()
    created = c.post("/jobs", json={**JOB, "intervals": 60_000, "executions": 3})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["tag"], body["event_type"], body["intervals"], body["executions"]) == ("report", "function", 60000, 3)
    assert body["created_at"] == "2026-03-02T12:00:00Z"  # the fake clock, ISO 8601 UTC

    assert [j["tag"] for j in c.get("/jobs").json()["items"]] == ["report"]
    assert c.get("/jobs/report").json()["name"] == "Report"

    updated = c.patch("/jobs/report", json={"name": "Daily report", "intervals": 120_000})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["name"], updated.json()["intervals"]) == ("Daily report", 120000)
    assert api.dt.job.fetch("report").name == "Daily report"

    assert c.delete("/jobs/report").status_code == 204
    assert c.get("/jobs/report").status_code == 404
    assert c.get("/jobs").json()["items"] == []


def test_a_tag_two_products_have_is_named_by_its_product_tag(api: Api) -> None:
    """The 422 told an HTTP client to call ``ductape.product(<tag>).jobs``; it names ``?product_tag=`` too."""
    c = api.client()
    for product in ("a", "b"):
        assert c.post("/jobs", json={**JOB, "tag": "dup", "product_tag": product}).status_code == 201
    for response in (c.get("/jobs/dup"), c.patch("/jobs/dup", json={"name": "x"})):
        assert response.status_code == 422, response.text
        assert "?product_tag=" in response.json()["detail"][0]["rule"]
    assert c.get("/jobs/dup", params={"product_tag": "b"}).json()["product_tag"] == "b"


def test_missing_jobs_answer_404(api: Api) -> None:
    c = api.client()
    for response in (c.get("/jobs/nope"), c.patch("/jobs/nope", json={"name": "x"}), c.delete("/jobs/nope")):
        assert response.status_code == 404, response.text
        assert "nope" in response.json()["detail"]


def test_deleting_a_job_cancels_its_live_schedules_and_keeps_their_history(api: Api, job: dict[str, Any]) -> None:
    """The seeds: a job with unlimited executions runs "until deleted or updated"."""
    live = api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id
    paused = api.dt.job.pause(api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id).id
    api.dt.drain()
    response = api.client().delete("/jobs/report")
    assert response.status_code == 204
    assert api.client().get("/jobs/report").status_code == 404
    for job_id in (live, paused):
        schedule = api.dt.job.get(job_id)
        assert schedule.status.value == "cancelled" and schedule.reason == "cancelled: job report deleted"
    assert [r.phase.value for r in api.dt.job.runs(job_id=live)] == ["completed"]  # history kept


def test_deleting_a_job_cancels_a_one_offs_run_that_has_not_started(api: Api, job: dict[str, Any]) -> None:
    """A new-user probe: a one-off's schedule is ``completed`` once its run is made, so the delete left its queued run,
    which ran later for a job that no longer was."""
    one_off = api.dt.job.schedule(SHOP).job_id
    assert [r.phase.value for r in api.dt.job.runs(job_id=one_off)] == ["queued"]
    assert api.client().delete("/jobs/report").status_code == 204
    assert api.dt.drain().ran == 0
    (run,) = api.dt.job.runs(job_id=one_off)
    assert (run.phase.value, run.error) == ("cancelled", "cancelled: job report deleted")
    schedule = api.dt.job.get(one_off)
    assert (schedule.status.value, schedule.reason) == ("cancelled", "cancelled: job report deleted")


@pytest.mark.parametrize(
    "body",
    [
        {**JOB, "tag": "bad tag"},
        {**JOB, "event_type": "TELEPATHY"},
        {**JOB, "intervals": -5},
        {**JOB, "typo": 1},
        {k: v for k, v in JOB.items() if k != "name"},
    ],
)
def test_bad_job_answers_the_python_apis_422_and_writes_nothing(api: Api, body: dict[str, Any]) -> None:
    response = api.client().post("/jobs", json=body)
    with pytest.raises(ValidationError) as raised:
        api.dt.job.create(body)
    assert problems(response) == [(raised.value.field, raised.value.rule)]
    assert api.dt.job.fetch_all() == []


def test_bad_bodies_are_422(api: Api, job: dict[str, Any]) -> None:
    c = api.client()
    assert problems(c.post("/jobs", content=b"{not json", headers={"Content-Type": "application/json"}))[0][0] == "body"
    assert problems(c.post("/jobs", json=[1, 2])) == [("body", "must be a JSON object, not list")]
    assert problems(c.post("/jobs"))[0] == ("body", "is required (a JSON object)")
    assert problems(c.patch("/jobs/report", json={})) == [("data", "give at least one field to update")]
    assert problems(c.patch("/jobs/report", json={"tag": "other"})) == [
        ("tag", "cannot be changed; create a new job instead")
    ]
    taken = c.post("/jobs", json=JOB)
    assert taken.status_code == 409 and taken.json()["detail"] == "tag: a job with tag 'report' already exists"
    assert api.dt.job.fetch("report").name == "Report"


def test_a_jobs_own_retention_over_http(api: Api) -> None:
    c = api.client()
    created = c.post("/jobs", json={**JOB, "keep_completed": "3d", "keep_failed": 100})
    assert created.status_code == 201, created.text
    assert (created.json()["keep_completed"], created.json()["keep_failed"]) == ("3d", 100)
    assert c.get("/jobs/report").json()["keep_completed"] == "3d"
    cleared = c.patch("/jobs/report", json={"keep_completed": None, "keep_failed": "12h"})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["keep_completed"], cleared.json()["keep_failed"]) == (None, "12h")
    for field, bad in (("keep_completed", "3 days"), ("keep_failed", -1), ("keep_failed", True)):
        refused = c.patch("/jobs/report", json={field: bad})
        assert refused.status_code == 422, refused.text
        assert [p["field"] for p in refused.json()["detail"]] == [field]
    assert api.dt.job.fetch("report").keep_failed == timedelta(hours=12)  # nothing written by a refusal


def test_executions_without_intervals_are_refused_naming_intervals(api: Api) -> None:
    """The seeds: ``executions`` is the number of times the job runs, ``intervals`` the ms between them. A job of 5
    executions and no intervals ran once, silently; create and update (the fields as they will be) now refuse
    it with a 422 naming ``intervals``, and write nothing."""
    c = api.client()
    rule = "must be at least 100 (milliseconds) for executions 5: intervals 0 runs the job once"
    for body in ({**JOB, "executions": 5}, {**JOB, "executions": 5, "intervals": 0}):
        refused = c.post("/jobs", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"] == [{"field": "intervals", "rule": rule, "message": f"intervals: {rule}"}]
    assert c.get("/jobs").json()["items"] == []
    assert c.post("/jobs", json={**JOB, "executions": 1}).status_code == 201  # one run needs no interval
    assert c.patch("/jobs/report", json={"executions": 5}).status_code == 422
    assert c.patch("/jobs/report", json={"executions": 5, "intervals": 60_000}).status_code == 200
    refused = c.patch("/jobs/report", json={"intervals": 0})  # the stored executions (5) count too
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["field"] == "intervals"
    stored = api.dt.job.fetch("report")
    assert (stored.executions, stored.intervals) == (5, 60_000)
    assert c.patch("/jobs/report", json={"executions": 0, "intervals": 0}).status_code == 422  # 0 is unlimited
    assert c.patch("/jobs/report", json={"executions": 1, "intervals": 0}).status_code == 200  # once


@pytest.mark.parametrize("limits", [{"env": "dev"}, {"product_tag": "shop", "env": "dev"}])
def test_a_key_limited_to_an_env_cannot_cancel_another_envs_schedules_by_deleting_their_job(
    api: Api, job: dict[str, Any], limits: dict[str, str]
) -> None:
    """A job definition covers every env (as a webhook does): deleting it cancels its schedules in every env, and
    changing it changes their cadence. A key limited to ``dev`` deleted the job and cancelled ``prd``'s schedules
    (of every product, for a key not limited to a product)."""
    if "product_tag" in limits:  # the product's own job: a product key may change it, but not for other envs
        api.dt.product("shop").jobs.create({**job, "name": "Shop report"})
    prd = api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id
    blog = api.dt.job.schedule({**BLOG, "repeat": {"every": 60_000}}).job_id
    dev = api.client(api.key(**limits))

    deleted = dev.delete("/jobs/report")
    changed = dev.patch("/jobs/report", json={"name": "renamed by dev"})

    assert api.dt.job.get(prd).status == "active", "a dev key cancelled a prd schedule"
    assert api.dt.job.get(blog).status == "active", "a dev key cancelled a prd schedule"
    assert deleted.status_code == 403, deleted.text
    assert changed.status_code == 403, changed.text
    assert "env" in deleted.json()["detail"]
