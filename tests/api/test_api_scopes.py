"""Key scopes: read < write < admin. Every /api/v1 route declares the scope it needs; a key without it gets 403
naming that scope, and nothing changes. Keys stored before scopes existed keep working with every scope."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from apikit import JOB, SHOP, Api, LiveServer

from ductape_jobs import Ductape, FakeClock
from ductape_jobs.api import create_app
from ductape_jobs.api.auth import declared_scopes
from ductape_jobs.apikeys import ApiKeys, hash_key, new_key
from ductape_jobs.errors import ValidationError
from ductape_jobs.models import KeyScope, ScheduleStatus, Webhook
from ductape_jobs.store.codec import ms
from ductape_jobs.store.sql import load_migrations

READ, WRITE, ADMIN = KeyScope.READ, KeyScope.WRITE, KeyScope.ADMIN

# (method, path, scope needed): the whole API
SCOPES = [
    ("GET", "/jobs", READ),
    ("POST", "/jobs", WRITE),
    ("GET", "/jobs/{tag}", READ),
    ("PATCH", "/jobs/{tag}", WRITE),
    ("DELETE", "/jobs/{tag}", WRITE),
    ("POST", "/schedule", WRITE),
    ("POST", "/schedule/batch", WRITE),
    ("GET", "/schedules", READ),
    ("GET", "/schedules/{job_id}", READ),
    ("GET", "/schedules/{job_id}/history", READ),
    ("POST", "/schedules/{job_id}/pause", WRITE),
    ("POST", "/schedules/{job_id}/resume", WRITE),
    ("POST", "/schedules/{job_id}/cancel", WRITE),
    ("POST", "/schedules/{job_id}/trigger", WRITE),
    ("PUT", "/schedules/{job_id}/repeat", WRITE),
    ("POST", "/preview", READ),
    ("GET", "/runs", READ),
    ("GET", "/runs/{run_id}", READ),
    ("POST", "/runs/{run_id}/retry", WRITE),
    ("GET", "/stats/overview", READ),
    ("GET", "/stats/forecast", READ),
    ("GET", "/stats/jobs", READ),
    ("GET", "/events", READ),
    ("POST", "/webhooks", ADMIN),
    ("GET", "/webhooks", ADMIN),
    ("GET", "/webhooks/{webhook_id}", ADMIN),
    ("DELETE", "/webhooks/{webhook_id}", ADMIN),
    ("GET", "/webhooks/{webhook_id}/deliveries", ADMIN),
    ("POST", "/features/{tag}/run", WRITE),
    ("GET", "/features/runs", READ),
    ("GET", "/features/runs/{run_id}", READ),
    ("POST", "/features/runs/{run_id}/resume", WRITE),
    ("POST", "/features/runs/{run_id}/retry", WRITE),
    ("POST", "/sessions", WRITE),
    ("POST", "/sessions/verify", READ),
    ("GET", "/me", READ),
]
BODIES: dict[str, Any] = {
    "/jobs": {"name": "New", "tag": "new", "event_type": "FUNCTION", "event_tag": "report"},
    "/schedule/batch": [SHOP, SHOP],
    "/jobs/{tag}": {"name": "Renamed"},
    "/schedule": SHOP,
    "/schedules/{job_id}/repeat": {"every": 120_000},
    "/preview": {"repeat": {"every": 60_000}, "count": 2},
    "/webhooks": {"product_tag": "shop", "url": "https://example.com/hook", "events": ["job.failed"]},
    "/features/{tag}/run": {"env": "prd", "product_tag": "shop", "input": {}},
    "/sessions": {"tag": "user-session", "data": {}, "env": "prd", "product_tag": "shop"},
    "/sessions/verify": {"session": "user-session:x.y.z", "env": "prd", "product_tag": "shop"},
}


def test_every_api_route_declares_its_scope(api: Api) -> None:
    found = declared_scopes(api.server.app.routes, "/api/v1")
    assert [route for route, scope in found.items() if scope is None] == []  # none without a scope
    assert {(method, path.removeprefix("/api/v1"), scope) for (method, path), scope in found.items()} >= set(SCOPES)
    spec = api.raw().get("/openapi.json").json()
    for method, path, scope in SCOPES:
        assert spec["paths"]["/api/v1" + path][method.lower()]["x-required-scope"] == scope.value


@pytest.fixture
def world(api: Api, job: dict[str, Any]) -> dict[str, str]:
    """A schedule with a failed run, and a webhook: something for each route to act on."""

    def down(input: Any, ctx: Any) -> None:
        raise RuntimeError("down")

    api.dt.function("report")(down)
    schedule_id = api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id
    api.dt.drain()
    (run,) = api.dt.job.runs(job_id=schedule_id)
    hook = Webhook("wh_1", "shop", "https://example.com/h", ["job.failed"], "whsec_x", api.dt.clock.now())
    api.dt.store.add_webhook(hook)  # (straight into the store: the route's own URL checks are not the point)
    return {"tag": "report", "job_id": schedule_id, "run_id": run.id, "webhook_id": hook.id}


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def call(c: httpx.Client, method: str, path: str, ids: dict[str, str]) -> httpx.Response:
    if path == "/events":
        with c.stream("GET", "/events") as response:
            return response
    body = BODIES.get(path, {}) if method != "GET" else None
    return c.request(method, fill(path, ids), json=body)


@pytest.mark.parametrize("scope", [READ, WRITE])
def test_a_key_gets_403_naming_the_scope_on_every_route_above_its_own(
    api: Api, world: dict[str, str], scope: KeyScope
) -> None:
    c = api.client(api.key(scope=scope))
    before = (api.dt.job.get(world["job_id"]), api.dt.job.runs(), api.dt.job.fetch_all(), api.dt.webhooks.list())
    for method, path, needed in SCOPES:
        if scope.allows(needed):
            continue
        response = call(c, method, path, world)
        assert response.status_code == 403, (method, path, response.text)
        message = response.json()["detail"]
        assert f"needs the {needed.value} scope" in message and f"has the {scope.value} scope" in message
    after = (api.dt.job.get(world["job_id"]), api.dt.job.runs(), api.dt.job.fetch_all(), api.dt.webhooks.list())
    assert after == before  # nothing changed
    assert api.dt.job.get(world["job_id"]).status is ScheduleStatus.ACTIVE


def test_a_read_key_reads_everything_it_sees(api: Api, world: dict[str, str]) -> None:
    c = api.client(api.key(scope=READ))
    for method, path, needed in SCOPES:
        if needed is not READ:
            continue
        response = call(c, method, path, world)
        if path == "/features/runs/{run_id}":  # no such feature run: the scope let it through to the lookup
            assert response.status_code == 404, response.text
            continue
        if path == "/sessions/verify":  # no product declares sessions here: the scope let it through to the check
            assert response.status_code == 422 and response.json()["detail"][0]["field"] == "session", response.text
            continue
        assert response.status_code == 200, (method, path, response.text)
    me = c.get("/me").json()
    assert (me["scope"], me["scopes"], me["via"]) == ("read", ["read"], "key")


def test_a_write_key_writes_and_an_admin_key_also_manages_webhooks(api: Api, world: dict[str, str]) -> None:
    writer = api.client(api.key(scope=WRITE))
    assert writer.post(f"/schedules/{world['job_id']}/pause", json={}).status_code == 200
    assert writer.post(f"/runs/{world['run_id']}/retry", json={}).status_code == 200
    assert writer.post("/schedule", json=SHOP).status_code == 201
    assert writer.get("/me").json()["scopes"] == ["read", "write"]
    admin = api.client(api.key(scope=ADMIN))
    assert admin.get("/webhooks").status_code == 200
    assert admin.delete(f"/webhooks/{world['webhook_id']}").status_code == 204
    assert admin.get("/me").json()["scopes"] == ["read", "write", "admin"]


def test_scopes_and_product_limits_add_up(api: Api, world: dict[str, str]) -> None:
    shop_writer = api.client(api.key(scope=WRITE, product_tag="shop"))
    assert shop_writer.post("/schedule", json={**SHOP, "product_tag": "blog"}).status_code == 403  # its limit
    made = shop_writer.post("/jobs", json=BODIES["/jobs"])  # a job of its own product
    assert made.status_code == 201 and made.json()["product_tag"] == "shop"
    shop_reader = api.client(api.key(scope=READ, product_tag="shop"))
    assert shop_reader.post("/jobs", json={**BODIES["/jobs"], "tag": "other"}).status_code == 403  # its scope
    me = shop_writer.get("/me").json()
    assert (me["scope"], me["product_tag"], me["env"]) == ("write", "shop", None)


def test_a_key_is_made_admin_unless_told_and_a_bad_scope_is_refused(api: Api) -> None:
    assert api.keys.create("default").record.scope is ADMIN
    assert api.keys.create("reader", scope="read").record.scope is READ
    with pytest.raises(ValidationError, match="scope"):
        api.keys.create("x", scope="root")


def test_a_key_stored_before_scopes_keeps_working_with_every_scope(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)  # the schema as the release before scopes left it (migrations 1-3)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)")
    for version, script in load_migrations("ductape_jobs.store.sqlite.migrations"):
        if version <= 3:
            db.executescript(script)
            db.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    key, prefix = new_key()
    db.execute(
        "INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES (?, ?, ?, ?, ?)",
        ("key_old", "ops", prefix, hash_key(key), ms(FakeClock().now())),
    )
    db.commit()
    db.close()

    dt = Ductape(f"sqlite:///{path}", clock=FakeClock())  # migrates
    server = LiveServer(create_app(dt, dashboard=False)).start()
    try:
        c = httpx.Client(base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        with c:
            assert c.get("/me").json()["scopes"] == ["read", "write", "admin"]
            assert c.get("/webhooks").status_code == 200  # an admin route
            job = {"name": "J", "tag": "j", "event_type": "FUNCTION", "event_tag": "j"}
            assert c.post("/jobs", json=job).status_code == 201  # a write route
    finally:
        server.stop()
        dt.close()
    again = Ductape(f"sqlite:///{path}")
    try:
        (listed,) = ApiKeys(again.store, FakeClock()).list()
        assert listed.scope is ADMIN
    finally:
        again.close()


def test_lists_filter_by_product_and_env_within_what_the_key_sees(api: Api) -> None:
    """``job.list(product_tag=, env=)``, ``job.runs(...)`` and ``webhooks.list(product_tag=)`` had no such filter over
    HTTP (422, "it takes: ..."); a key limited to a product that asks for another's gets 403, not its records."""
    c = api.client()
    assert c.post("/jobs", json=JOB).status_code == 201
    for product, env in [("shop", "prd"), ("shop", "dev"), ("blog", "prd")]:
        assert c.post("/schedule", json={**SHOP, "product_tag": product, "env": env}).status_code == 201
        hook = {"product_tag": product, "url": "https://example.com/hook", "events": ["job.failed"]}
        assert env == "dev" or c.post("/webhooks", json=hook).status_code == 201
    for path in ("/schedules", "/runs"):
        listed = c.get(path, params={"product_tag": "shop", "env": "prd"}).json()["items"]
        assert [(i["product_tag"], i["env"]) for i in listed] == [("shop", "prd")], path
        assert len(c.get(path, params={"product_tag": "shop"}).json()["items"]) == 2
        shop_only = api.client(api.key(scope=READ, product_tag="shop"))
        assert shop_only.get(path, params={"product_tag": "blog"}).status_code == 403
        assert len(shop_only.get(path, params={"env": "dev"}).json()["items"]) == 1
    # a cursor of another product's is not found, as that record is (a page past it told that it existed)
    blog_run = c.get("/runs", params={"product_tag": "blog"}).json()["items"][0]["id"]
    blog_schedule = c.get("/schedules", params={"product_tag": "blog"}).json()["items"][0]["job_id"]
    shop_only = api.client(api.key(scope=READ, product_tag="shop"))
    for path, cursor in (("/runs", blog_run), ("/schedules", blog_schedule)):
        assert c.get(path, params={"after": cursor}).status_code == 200  # the unlimited key pages past it
        refused = shop_only.get(path, params={"after": cursor})
        assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "after", path
        assert f"no {'run' if path == '/runs' else 'schedule'} with id {cursor!r}" in refused.text
        assert shop_only.get(f"{path}/{cursor}").status_code == 404
    assert [h["product_tag"] for h in c.get("/webhooks", params={"product_tag": "blog"}).json()["items"]] == ["blog"]
    shop_only = api.client(api.key(scope=READ, product_tag="shop"))
    assert shop_only.get("/features/runs", params={"product_tag": "blog"}).status_code == 403
    assert c.get("/features/runs", params={"product_tag": "shop", "env": "dev"}).json()["items"] == []
    # one rule for lists and statistics: the key's product with a trailing space is its product (it was 403 here)
    for path in ("/runs", "/stats/jobs"):
        assert shop_only.get(path, params={"product_tag": "shop "}).status_code == 200, path
