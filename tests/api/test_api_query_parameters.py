"""A query parameter a route does not take is refused (422 naming it), before anything is read or written. It was
ignored: a filter spelt wrong answered as if none were given, and a ``product_tag`` spelt wrong on a delete or an
update acted on the shared job instead of the product's own."""

from __future__ import annotations

from apikit import JOB, SHOP, Api, problems


def test_a_misspelt_product_on_a_delete_deletes_nothing(api: Api) -> None:
    c = api.client()
    assert c.post("/jobs", json=JOB).status_code == 201  # the shared job
    assert c.post("/jobs", json={**JOB, "name": "Shop's report"}, params={"product_tag": "shop"}).status_code == 201
    job_id = c.post("/schedule", json={**SHOP, "event": "report", "repeat": {"cron": "0 9 * * *"}}).json()["job_id"]

    [(field, rule)] = problems(c.delete("/jobs/report", params={"product": "shop"}))
    assert field == "product" and rule.startswith("is not a query parameter of DELETE /api/v1/jobs/report")
    assert "product_tag" in rule  # what it takes
    [(field, _)] = problems(c.patch("/jobs/report", json={"name": "Other"}, params={"produt_tag": "shop"}))
    assert field == "produt_tag"
    assert {(j.product_tag or "", j.name) for j in api.dt.job.fetch_all()} == {
        ("", "Report"),
        ("shop", "Shop's report"),
    }
    assert api.dt.job.get(job_id).status.value == "active"
    assert c.delete("/jobs/report", params={"product_tag": "shop"}).status_code == 204  # spelt right


def test_a_misspelt_filter_is_refused_not_ignored(api: Api) -> None:
    c = api.client()
    assert c.post("/jobs", json=JOB).status_code == 201
    assert c.post("/schedule", json=SHOP).status_code in (200, 201)
    [(field, rule)] = problems(c.get("/runs", params={"job_tg": "nothing-like-it"}))
    assert field == "job_tg" and "job_tag" in rule
    assert c.get("/runs", params={"job_tag": "nothing-like-it"}).json()["items"] == []
    assert problems(c.get("/schedules", params={"limit": 5, "staus": "paused"}))[0][0] == "staus"
    assert c.get("/schedules", params={"limit": 5}).status_code == 200


def test_a_parameter_with_no_name_is_named_so_and_a_long_one_cut(api: Api) -> None:
    [(field, _)] = problems(api.client().get("/runs?=x"))
    assert field == "(a parameter with no name)"
    [(field, _)] = problems(api.client().get("/runs", params={"x" * 20_000: "1"}))
    assert field == "x" * 100 + "…"  # not echoed whole


def test_without_a_key_it_is_still_401(api: Api) -> None:
    assert api.client("").get("/runs", params={"job_tg": "x"}).status_code == 401


def test_a_parameter_given_twice_is_refused_not_read_as_its_last(api: Api) -> None:
    """``?phase=failed&phase=completed`` answered the completed runs alone."""
    assert problems(api.client().get("/runs?phase=failed&phase=completed")) == [
        ("phase", "is given 2 times; give it once")
    ]
    assert api.client().get("/runs?phase=failed").status_code == 200


def test_a_body_s_name_given_twice_is_refused_not_read_as_its_last(api: Api) -> None:
    """A hostile-input probe: ``{"name": "a", "name": "b"}`` renamed the job "b" without a word, and ``{"env": "prd",
    "env": "x"}`` was read as ``x`` (a proxy's reader may take the first). Refused at any depth, naming the name by
    its path (a control character in it shown escaped), and nothing is written."""
    c = api.client()
    assert c.post("/jobs", json=JOB).status_code == 201
    head = {"content-type": "application/json"}
    renamed = c.patch("/jobs/report", content=b'{"name": "a", "name": "b"}', headers=head)
    assert problems(renamed) == [("name", "is given 2 times in one object; give it once")]
    env = f'"env": "{SHOP["env"]}", "env": "x", "product_tag": "{SHOP["product_tag"]}", "event": "report"'
    assert problems(c.post("/schedule", content=("{" + env + "}").encode(), headers=head))[0][0] == "env"
    nested = f'{{"env": "{SHOP["env"]}", "product_tag": "{SHOP["product_tag"]}", "event": "report", '
    nested += '"input": {"to": "a", "cc": "b", "to": "c", "to": "d"}}'
    assert problems(c.post("/schedule", content=nested.encode(), headers=head)) == [
        ("input.to", "is given 3 times in one object; give it once")
    ]
    one = f'{{"env": "{SHOP["env"]}", "product_tag": "{SHOP["product_tag"]}", "event": "report"}}'
    twice = f'{{"env": "{SHOP["env"]}", "product_tag": "{SHOP["product_tag"]}", "event": "report", "event": "x"}}'
    batch = f"[{one}, {one}, {twice}]"
    assert problems(c.post("/schedule/batch", content=batch.encode(), headers=head))[0][0] == "[2].event"
    ugly = '{"input": {"\\u001b[2J": 1, "\\u001b[2J": 2}, ' + one[1:]
    assert problems(c.post("/schedule", content=ugly.encode(), headers=head))[0][0] == "input.\\x1b[2J"
    assert [j.name for j in api.dt.job.fetch_all()] == ["Report"] and api.dt.job.list() == []
    assert c.post("/schedule", json=SHOP).status_code in (200, 201)  # each name once
