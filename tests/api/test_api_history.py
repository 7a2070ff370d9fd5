"""``GET /schedules/{job_id}/history`` and ``GET /stats/jobs``: ``job.history`` and ``job.stats`` through HTTP,
with the Python API's answers and errors, and a product key's limits."""

from __future__ import annotations

from typing import Any

import pytest
from apikit import BLOG, SHOP, Api, problems

from ductape_jobs import FakeClock, ValidationError
from ductape_jobs.answers import JobHistoryOut, JobStatsOut


def three_runs(api: Api, clock: FakeClock) -> str:
    """Shop's every-minute schedule: its runs at T0 and T0 + 1 min, and a manual one at T0 + 1 min; blog's one
    run (a failure)."""

    def fails(input: Any, ctx: Any) -> None:
        raise RuntimeError("blog is down")

    job_id = api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id
    api.dt.drain()
    clock.advance(minutes=1)
    api.dt.drain()
    api.dt.job.trigger(job_id)
    api.dt.drain()
    api.dt.job.create({"name": "Blog", "tag": "blog", "event_type": "FUNCTION", "event_tag": "blog"})
    api.dt.function("blog")(fails)
    api.dt.job.schedule({**BLOG, "event": "blog"})
    api.dt.drain()
    return job_id


def test_history_answers_what_job_history_does(api: Api, job: dict[str, Any], clock: FakeClock) -> None:
    job_id = three_runs(api, clock)
    c = api.client()
    answer = c.get(f"/schedules/{job_id}/history")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == JobHistoryOut.of(api.dt.job.history(job_id)).model_dump(mode="json")
    assert (body["job_id"], body["job_tag"], body["total"], body["successful"], body["failed"]) == (
        job_id,
        "report",
        3,
        3,
        0,
    )
    assert [e["number"] for e in body["executions"]] == [3, 2, 1]
    oldest = body["executions"][-1]
    assert (oldest["phase"], oldest["scheduled_at"], oldest["triggered_by"]) == (
        "completed",
        "2026-03-02T12:00:00Z",
        "schedule",
    )
    assert oldest["result"] == {"ok": True, "input": {}} and oldest["error"] is None
    assert sorted(e["triggered_by"] for e in body["executions"][:2]) == ["manual", "schedule"]

    newest = c.get(f"/schedules/{job_id}/history", params={"limit": 1}).json()
    assert (newest["total"], [e["number"] for e in newest["executions"]]) == (3, [3])
    missing = c.get("/schedules/job_nope/history")
    assert (missing.status_code, missing.json()) == (404, {"detail": "schedule 'job_nope' not found"})


@pytest.mark.parametrize("limit", [0, 10_001])
def test_history_refuses_a_bad_limit_with_the_python_apis_words(api: Api, job: dict[str, Any], limit: int) -> None:
    job_id = api.dt.job.schedule(SHOP).job_id
    with pytest.raises(ValidationError) as raised:
        api.dt.job.history(job_id, limit=limit)
    response = api.client().get(f"/schedules/{job_id}/history", params={"limit": limit})
    assert problems(response) == [(raised.value.field, raised.value.rule)]
    assert problems(api.client().get(f"/schedules/{job_id}/history", params={"limit": "ten"}))[0][0] == "limit"


@pytest.mark.parametrize("limit", [0, 10_001])
def test_a_bad_limit_answers_422_before_the_schedule_is_looked_up(api: Api, job: dict[str, Any], limit: int) -> None:
    """The query is checked first: a bad limit is a 422 naming it, for a schedule that does not exist or that the
    key does not see too (not a 404 that says nothing of the limit)."""
    with pytest.raises(ValidationError) as raised:
        api.dt.job.history("job_nope", limit=limit)
    assert (raised.value.field, raised.value.rule) == ("limit", "must be a whole number between 1 and 10000")
    assert problems(api.client().get("/schedules/job_nope/history", params={"limit": limit})) == [
        (raised.value.field, raised.value.rule)
    ]
    blog_id = api.dt.job.schedule(BLOG).job_id
    shop = api.client(api.key(product_tag="shop"))
    assert problems(shop.get(f"/schedules/{blog_id}/history", params={"limit": limit}))[0][0] == "limit"
    assert shop.get(f"/schedules/{blog_id}/history").status_code == 404  # a good limit: still not shown


def test_stats_answer_what_job_stats_does(api: Api, job: dict[str, Any], clock: FakeClock) -> None:
    three_runs(api, clock)
    c = api.client()
    every = c.get("/stats/jobs").json()
    assert every == JobStatsOut.of(api.dt.job.stats()).model_dump(mode="json")
    assert (every["total"], every["finished"], every["success_rate"]) == (4, 4, 0.75)
    assert {k: v for k, v in every["by_phase"].items() if v} == {"completed": 3, "failed": 1}
    assert (every["completed_first_try"], every["completed_after_retry"], every["average_retry_count"]) == (3, 0, 0.0)

    blog = c.get("/stats/jobs", params={"product_tag": "blog", "env": "prd"}).json()
    assert (blog["total"], blog["success_rate"], blog["product_tag"], blog["env"]) == (1, 0.0, "blog", "prd")
    window = c.get("/stats/jobs", params={"since": "2026-03-02T12:01:00Z", "until": 1772452920000}).json()
    assert (window["total"], window["since"], window["until"]) == (3, "2026-03-02T12:01:00Z", "2026-03-02T12:02:00Z")
    assert c.get("/stats/jobs", params={"product_tag": "nobody"}).json()["success_rate"] is None


@pytest.mark.parametrize(
    "params", [{"since": "2026-03-02T13:00:00Z", "until": "2026-03-02T12:00:00Z"}, {"until": "soon"}]
)
def test_bad_stats_filters_answer_the_same_422(api: Api, params: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as raised:
        api.dt.job.stats(**params)
    assert problems(api.client().get("/stats/jobs", params=params)) == [(raised.value.field, raised.value.rule)]


def test_a_product_key_sees_only_its_products_history_and_stats(
    api: Api, job: dict[str, Any], clock: FakeClock
) -> None:
    shop_id = three_runs(api, clock)
    blog_id = api.dt.job.list(product_tag="blog")[0].id
    shop = api.client(api.key(product_tag="shop"))
    assert shop.get(f"/schedules/{shop_id}/history").json()["total"] == 3
    hidden = shop.get(f"/schedules/{blog_id}/history")
    assert (hidden.status_code, hidden.json()) == (404, {"detail": f"schedule {blog_id!r} not found"})

    own = shop.get("/stats/jobs").json()
    assert (own["total"], own["product_tag"], own["by_phase"]["failed"]) == (3, "shop", 0)  # blog's failure unseen
    assert shop.get("/stats/jobs", params={"product_tag": "shop"}).json() == own
    other = shop.get("/stats/jobs", params={"product_tag": "blog"})
    assert (other.status_code, other.json()) == (403, {"detail": "this API key only sees product_tag 'shop'"})

    prd = api.client(api.key(product_tag="shop", env="prd"))
    assert prd.get("/stats/jobs", params={"env": "dev"}).status_code == 403
    assert prd.get("/stats/jobs").json()["env"] == "prd"
