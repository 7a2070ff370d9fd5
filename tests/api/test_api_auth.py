"""API keys: every /api/v1 route needs one; a key limited to a product sees nothing of another product."""

from __future__ import annotations

import re
from typing import Any

import pytest
from apikit import BLOG, SHOP, Api

from ductape_jobs.apikeys import hash_key, key_matches, new_key

ROUTES = [
    ("GET", "/jobs"),
    ("POST", "/jobs"),
    ("GET", "/jobs/{tag}"),
    ("PATCH", "/jobs/{tag}"),
    ("DELETE", "/jobs/{tag}"),
    ("POST", "/schedule"),
    ("GET", "/schedules"),
    ("GET", "/schedules/{job_id}"),
    ("GET", "/schedules/{job_id}/history"),
    ("POST", "/schedules/{job_id}/pause"),
    ("POST", "/schedules/{job_id}/resume"),
    ("POST", "/schedules/{job_id}/cancel"),
    ("POST", "/schedules/{job_id}/trigger"),
    ("PUT", "/schedules/{job_id}/repeat"),
    ("POST", "/preview"),
    ("GET", "/runs"),
    ("GET", "/runs/{run_id}"),
    ("POST", "/runs/{run_id}/retry"),
    ("GET", "/stats/overview"),
    ("GET", "/stats/forecast"),
    ("GET", "/stats/jobs"),
    ("GET", "/events"),
    ("POST", "/webhooks"),
    ("GET", "/webhooks"),
    ("DELETE", "/webhooks/{webhook_id}"),
    ("GET", "/webhooks/{webhook_id}/deliveries"),
]


def filled(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: {"tag": "report"}.get(m.group(1), f"{m.group(1)}_x"), path)


def test_every_api_route_is_documented_and_needs_a_key(api: Api) -> None:
    spec = api.raw().get("/openapi.json").json()
    documented = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in spec["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    }
    assert set(ROUTES) <= documented  # (other packages may add routes: they are checked below too)
    anonymous = api.client("")
    for method, path in sorted(documented):
        operation = spec["paths"]["/api/v1" + path][method.lower()]
        assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
        response = anonymous.request(method, filled(path), json={})
        assert response.status_code == 401, (method, path, response.text)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_key_or_a_bad_key_is_401(api: Api, method: str, path: str) -> None:
    for c in (
        api.client(""),
        api.client("dtk_000000000000_not-a-real-key"),
        api.client(api.admin_key[:-2] + "xx"),  # right prefix, wrong secret
        api.client("", Authorization="Basic dXNlcjpwYXNz"),
    ):
        response = c.request(method, filled(path), json={})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_key_works_as_bearer_or_header_and_stops_when_revoked(api: Api) -> None:
    key = api.keys.create("ci")
    assert api.client(key.key).get("/jobs").status_code == 200
    assert api.client("", **{"X-API-Key": key.key}).get("/jobs").status_code == 200
    for name in ("ductape_key", "ductape_session"):  # a cookie is a login session's token, never a key
        cookie = api.client("")
        cookie.cookies.set(name, key.key)
        assert cookie.get("/jobs").status_code == 401
    api.keys.revoke(key.record.id)
    assert api.client(key.key).get("/jobs").status_code == 401
    assert api.client("", **{"X-API-Key": key.key}).get("/jobs").status_code == 401
    used = next(k for k in api.keys.list() if k.id == key.record.id)
    assert used.last_used_at is not None and used.revoked_at is not None


def test_public_routes_need_no_key(api: Api) -> None:
    raw = api.raw()
    assert raw.get("/healthz").json() == {"status": "ok"}
    assert raw.get("/readyz").json() == {"status": "ready"}
    assert raw.get("/openapi.json").status_code == 200
    assert "swagger" in raw.get("/docs").text.lower()
    assert raw.get("/metrics").status_code == 200


def test_metrics_can_require_a_key(dt: Any) -> None:
    from apikit import LiveServer

    from ductape_jobs.api import create_app
    from ductape_jobs.apikeys import ApiKeys

    server = LiveServer(create_app(dt, metrics_auth=True, dashboard=False)).start()
    try:
        import httpx

        assert httpx.get(f"{server.url}/metrics").status_code == 401
        key = ApiKeys(dt.store, dt.clock).create("prometheus").key
        scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {key}"})
        assert scraped.status_code == 200 and "ductape_queue_depth" in scraped.text
        # its series count every product's runs: a key limited to one product is refused, not shown them all
        shop = ApiKeys(dt.store, dt.clock).create("shop's", product_tag="shop").key
        refused = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {shop}"})
        assert refused.status_code == 403 and "limited to a product" in refused.text
    finally:
        server.stop()


def test_a_product_key_sees_only_its_product(api: Api, job: dict[str, Any]) -> None:
    shop_id = api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id
    blog_id = api.dt.job.schedule({**BLOG, "repeat": {"every": 60_000}}).job_id
    api.dt.drain()
    blog_run = api.dt.job.runs(job_id=blog_id)[0].id
    shop_run = api.dt.job.runs(job_id=shop_id)[0].id
    shop = api.client(api.key(product_tag="shop"))

    assert [s["job_id"] for s in shop.get("/schedules").json()["items"]] == [shop_id]
    assert [r["id"] for r in shop.get("/runs").json()["items"]] == [shop_run]
    assert shop.get("/runs", params={"job_id": blog_id}).json()["items"] == []
    assert shop.get(f"/schedules/{shop_id}").status_code == 200
    assert shop.get(f"/runs/{shop_run}").status_code == 200
    for method, path in [
        ("GET", f"/schedules/{blog_id}"),
        ("POST", f"/schedules/{blog_id}/pause"),
        ("POST", f"/schedules/{blog_id}/resume"),
        ("POST", f"/schedules/{blog_id}/cancel"),
        ("POST", f"/schedules/{blog_id}/trigger"),
        ("PUT", f"/schedules/{blog_id}/repeat"),
        ("GET", f"/runs/{blog_run}"),
        ("POST", f"/runs/{blog_run}/retry"),
    ]:
        body = {"every": 1000} if method == "PUT" else {}
        response = shop.request(method, path, json=body)
        assert response.status_code == 404, (path, response.text)  # as if it did not exist
        kind, key = ("run", blog_run) if blog_run in path else ("schedule", blog_id)
        assert response.json() == {"detail": f"{kind} {key!r} not found"}
    assert api.dt.job.get(blog_id).status == "active"  # nothing happened to it

    other = shop.post("/schedule", json=BLOG)
    assert other.status_code == 403 and "shop" in other.json()["detail"]
    assert shop.post("/schedule", json={**SHOP, "env": "dev"}).status_code == 201  # any env of its product
    # jobs: a product key manages its own product's jobs, reads the shared ones, and changes no other
    new_job = {"name": "x", "tag": "x", "event_type": "FUNCTION", "event_tag": "x"}
    made = shop.post("/jobs", json=new_job)
    assert made.status_code == 201 and made.json()["product_tag"] == "shop"
    assert shop.post("/jobs", json={**new_job, "product_tag": "blog"}).status_code == 403
    assert shop.post("/jobs?product_tag=blog", json=new_job).status_code == 403
    assert shop.patch("/jobs/x", json={"name": "y"}).json()["name"] == "y"
    assert shop.patch("/jobs/report", json={"name": "x"}).status_code == 403  # shared: not its own
    assert shop.delete("/jobs/report").status_code == 403
    assert shop.get("/jobs?product_tag=blog").status_code == 403
    listed = shop.get("/jobs").json()["items"]
    assert sorted((j["tag"], j["product_tag"]) for j in listed) == [("report", None), ("x", "shop")]
    assert api.dt.job.fetch("report").name != "x"
    assert shop.delete("/jobs/x").status_code == 204
    assert len(api.dt.job.list(product_tag="blog")) == 1


def test_an_env_key_sees_only_its_env(api: Api, job: dict[str, Any]) -> None:
    prd = api.dt.job.schedule(SHOP).job_id
    api.dt.job.schedule({**SHOP, "env": "dev"})
    key = api.client(api.key(product_tag="shop", env="prd"))
    assert [s["job_id"] for s in key.get("/schedules").json()["items"]] == [prd]
    assert key.post("/schedule", json={**SHOP, "env": "dev"}).status_code == 403
    assert key.post("/schedule", json=SHOP).status_code == 201


def test_keys_are_hashed_with_a_salt() -> None:
    key, prefix = new_key()
    assert key.startswith(prefix + "_") and prefix.startswith("dtk_") and len(prefix) == 16
    first, second = hash_key(key), hash_key(key)
    assert first != second  # a salt per hash
    assert key not in first and key_matches(key, first) and key_matches(key, second)
    assert not key_matches(key + "x", first) and not key_matches(key, "md5$x$y")


def test_the_docs_page_runs_no_unpinned_script_from_elsewhere_on_the_dashboards_origin(api: Api) -> None:
    """``/docs`` is served from the dashboard's origin, where the login cookie (``Path=/``) goes with every request:
    a script on it calls ``/api/v1`` as the logged-in user (same origin: the cookie's CSRF rule lets it through).
    It loaded ``swagger-ui-bundle.js`` from ``cdn.jsdelivr.net/npm/swagger-ui-dist@5`` (whatever 5.x is published
    next) without Subresource Integrity, and with no CSP: the page could be framed, and a release of that package
    (or of the CDN) would run with the dashboard's session."""
    page = api.raw().get("/docs")
    assert page.status_code == 200
    scripts = re.findall(r"<script[^>]*\bsrc=[\"']([^\"']+)[\"'][^>]*>", page.text)
    tags = re.findall(r"<script[^>]*\bsrc=[\"'][^\"']+[\"'][^>]*>", page.text)
    for src, tag in zip(scripts, tags, strict=True):
        if src.startswith(("http://", "https://", "//")):
            assert "integrity=" in tag, f"{src} is fetched from elsewhere without Subresource Integrity"
            assert re.search(r"@\d+\.\d+\.\d+/", src), f"{src} is not pinned to one version"
    policy = page.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, f"/docs has no frame-ancestors policy: {policy!r}"


def test_an_api_key_sent_in_the_wrong_place_is_not_sent_back(api: Api) -> None:
    """A security probe: a key (or a session token) put in a path, a query parameter or a field came back whole in
    the 4xx answer, which proxies and gateways keep in their error logs, while the server's own log masked it."""
    key = api.admin_key
    secret = key.rsplit("_", 1)[1]
    c = api.client()
    answers = [
        c.get(f"/runs/{key}"),  # 404: run '<key>' not found
        c.get("/runs", params={"phase": key}),  # 422: phase '<key>' is not one of ...
        c.get(f"/runs?{key}=1"),  # 422: the field is the key
        c.get(f"/jobs/{key}"),
    ]
    assert [a.status_code for a in answers] == [404, 422, 422, 404]
    for a in answers:
        assert secret not in a.text and "dtk_" in a.text, a.text
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLW9mLWEtc2Vzc2lvbi10b2tlbg"
    refused = c.get("/stats/jobs", params={"since": token})  # 422: since: '<token>' is not a time
    assert refused.status_code == 422 and "c2lnbmF0dXJl" not in refused.text, refused.text
