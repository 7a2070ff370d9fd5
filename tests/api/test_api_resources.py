"""``/api/v1/resources`` and limits over HTTP: each resource's use, the runs a limit holds back, 422s naming the
field for bad limits (nothing written), and the forecast's minutes over a rate limit."""

from __future__ import annotations

from apikit import Api, problems

SHOP = {"tag": "shop", "envs": ["prd"], "resources": {"crm-api": {"concurrency": 1, "rate": "2/min"}}}
SYNC = {"name": "Sync", "tag": "sync", "event_type": "FUNCTION", "event_tag": "report", "product_tag": "shop"}


def test_resources_show_their_use_and_the_runs_they_hold(api: Api) -> None:
    api.dt.products.add(SHOP)
    c = api.client()
    created = c.post("/jobs", json={**SYNC, "resources": ["crm-api"], "priority": 3})
    assert created.status_code == 201, created.text
    assert (created.json()["resources"], created.json()["priority"]) == (["crm-api"], 3)
    for _ in range(3):
        r = c.post("/schedule", json={"env": "prd", "product_tag": "shop", "event": "sync"})
        assert r.status_code in (200, 201), r.text
    api.dt.drain()
    (use,) = c.get("/resources").json()["items"]
    assert use == {
        "product_tag": "shop",
        "name": "crm-api",
        "concurrency": 1,
        "rate": "2/m",
        "running": 0,
        "recent_starts": 2,
        "waiting": 1,
    }
    (held,) = c.get("/resources/waiting").json()["items"]
    assert "of 'crm-api'" in held["waiting_on"] and held["priority"] == 3 and held["attempt"] == 0
    assert c.get("/resources", params={"product_tag": "blog"}).json()["items"] == []
    # a shared job's own limit: no product, as the job says it (null, not "": a new-user probe)
    shared = {"name": "S", "tag": "s", "event_type": "FUNCTION", "event_tag": "s", "concurrency": 1}
    assert c.post("/jobs", json=shared).status_code == 201
    own = [r for r in c.get("/resources").json()["items"] if r["name"] == "job:s"]
    assert [(r["product_tag"], r["concurrency"]) for r in own] == [(None, 1)]
    assert c.get("/jobs/s").json()["product_tag"] is None


def test_bad_limits_answer_422_naming_the_field_and_write_nothing(api: Api) -> None:
    api.dt.products.add(SHOP)
    c = api.client()
    for body, field in (
        ({**SYNC, "resources": ["nope"]}, "resources[0]"),
        ({**SYNC, "concurrency": 0}, "concurrency"),
        ({**SYNC, "rate": "0/s"}, "rate"),
        ({**SYNC, "priority": 500}, "priority"),
    ):
        assert [f for f, _ in problems(c.post("/jobs", json=body))] == [field]
    assert c.get("/jobs").json()["items"] == [] and c.get("/resources").json()["items"] == []
    assert c.post("/jobs", json=SYNC).status_code == 201
    bad = c.post("/schedule", json={"env": "prd", "product_tag": "shop", "event": "sync", "priority": 101})
    assert [f for f, _ in problems(bad)] == ["priority"]


def test_the_forecast_marks_minutes_over_a_rate_limit(api: Api) -> None:
    api.dt.products.add(SHOP)
    c = api.client()
    assert c.post("/jobs", json={**SYNC, "resources": ["crm-api"]}).status_code == 201
    every = {"env": "prd", "product_tag": "shop", "event": "sync", "repeat": {"every": 20_000}}  # 3 a minute
    assert c.post("/schedule", json=every).status_code in (200, 201)
    over = c.get("/stats/forecast", params={"hours": 1}).json()["over_limits"]
    assert over and all(o["resource"] == "crm-api" and o["allowed"] == 2 and o["starts"] == 3 for o in over[1:])
