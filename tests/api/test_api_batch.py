"""``POST /api/v1/schedule/batch``: ``job.schedule_many`` over HTTP. The body is a JSON array of schedule requests;
all or nothing; a bad request is named by its index; a product-limited key may schedule only for its product."""

from __future__ import annotations

from typing import Any

from apikit import BLOG, SHOP, Api, problems

from ductape_jobs.limits import MAX_BATCH


def test_many_requests_are_scheduled_at_once_in_order(api: Api, job: dict[str, Any]) -> None:
    c = api.client()
    batch = [SHOP, {**SHOP, "repeat": {"every": 60_000}}, {**BLOG, "input": {"n": 3}}]
    answer = c.post("/schedule/batch", json=batch)
    assert answer.status_code == 201, answer.text
    items = answer.json()["items"]
    assert [(i["recurring"], i["status"]) for i in items] == [(False, "queued"), (True, "queued"), (False, "queued")]
    stored = {s.id: s for s in api.dt.job.list()}
    assert set(stored) == {i["job_id"] for i in items}
    assert stored[items[2]["job_id"]].product_tag == "blog" and stored[items[2]["job_id"]].input == {"n": 3}
    assert c.post("/schedule/batch", json=[]).json() == {"items": []}  # nothing asked, nothing made


def test_a_bad_request_is_named_by_its_index_and_nothing_is_stored(api: Api, job: dict[str, Any]) -> None:
    c = api.client()
    assert problems(c.post("/schedule/batch", json=[SHOP, {**SHOP, "colour": 1}])) == [
        ("[1].colour", "is not a known field")
    ]
    assert problems(c.post("/schedule/batch", json=[SHOP, {**SHOP, "repeat": {"every": 0}}]))[0][0] == (
        "[1].repeat.every"
    )
    assert problems(c.post("/schedule/batch", json={"requests": [SHOP]})) == [
        ("body", "must be a JSON array, not dict")
    ]
    too_many = problems(c.post("/schedule/batch", json=[SHOP] * (MAX_BATCH + 1)))
    assert too_many == [("requests", f"holds {MAX_BATCH + 1} requests; at most {MAX_BATCH} a call")]
    assert api.dt.job.list() == [] and api.dt.job.runs() == []


def test_a_product_limited_key_schedules_only_for_its_product(api: Api, job: dict[str, Any]) -> None:
    shop = api.client(api.key(product_tag="shop", env="prd"))
    refused = shop.post("/schedule/batch", json=[SHOP, SHOP, BLOG])
    assert refused.status_code == 403
    assert refused.json()["detail"] == "[2]: this API key may only schedule for product_tag 'shop'"
    other_env = shop.post("/schedule/batch", json=[{**SHOP, "env": "dev"}])
    assert other_env.status_code == 403 and other_env.json()["detail"].startswith("[0]: ")
    assert api.dt.job.list() == []  # nothing of the batch was stored
    made = shop.post("/schedule/batch", json=[SHOP, SHOP])
    assert made.status_code == 201 and len(made.json()["items"]) == 2
    reader = api.client(api.key(scope="read"))
    assert reader.post("/schedule/batch", json=[SHOP]).status_code == 403
    assert len(api.dt.job.list()) == 2
