"""``POST /api/v1/features/{tag}/run``, ``GET /api/v1/features/runs`` and ``/features/runs/{id}``, and ``POST
/api/v1/features/runs/{id}/resume`` and ``/retry``, called in process through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from feature_kit import App, fn, seq

from ductape_jobs.api import create_app
from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.features import EventResult, FeatureRun, FeatureRunStatus

MakeApp = Callable[..., App]
GREET = {
    "greet": {
        "input": {"name": "string"},
        "required": ["name"],
        "sequence": [
            seq("a", fn("hello", {"name": "$Input{name}"})),
            seq("b", fn("shout", {"text": "$Sequence{a}{hello}{text}"}), parents=["a"]),
        ],
    }
}


def served(make_app: MakeApp) -> tuple[App, Any, ApiKeys]:
    app = make_app(GREET)
    app.dt.function("hello")(lambda input, ctx: {"text": f"hello {input['name']}"})
    app.dt.function("shout")(lambda input, ctx: input["text"].upper())
    return app, create_app(app.dt, dashboard=False), ApiKeys(app.dt.store, app.dt.clock)


def calls(asgi: Any, key: str, *requests: tuple[str, str, dict[str, Any] | None]) -> list[httpx.Response]:
    """Send ``(method, path, json)`` requests in order with ``key`` (``""``: no key); their responses."""

    async def go() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1", headers=headers) as http:
            return [await http.request(method, path, json=body) for method, path, body in requests]

    return asyncio.run(go())


def test_run_a_feature_and_read_the_run_back(make_app: MakeApp) -> None:
    _, asgi, keys = served(make_app)
    admin = keys.create("admin").key
    (answer,) = calls(
        asgi, admin, ("POST", "/features/greet/run", {"env": "dev", "product_tag": "shop", "input": {"name": "ada"}})
    )
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["status"] == "completed" and run["feature_tag"] == "greet"
    assert run["output"] == {"a": {"hello": {"text": "hello ada"}}, "b": {"shout": "HELLO ADA"}}
    assert [(e["sequence_tag"], e["event_tag"], e["status"], e["attempts"]) for e in run["events"]] == [
        ("a", "hello", "completed", 1),
        ("b", "shout", "completed", 1),
    ]
    assert "session" not in run
    again, missing = calls(asgi, admin, ("GET", f"/features/runs/{run['id']}", None), ("GET", "/features/runs/x", None))
    assert again.status_code == 200 and again.json() == run
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"env": "dev", "product_tag": "shop", "input": {}}, "input.name"),
        ({"env": "dev", "product_tag": "shop", "input": {"name": 1}}, "input.name"),
        ({"product_tag": "shop", "input": {"name": "x"}}, "env"),
        ({"env": "dev", "product_tag": "shop", "inputs": {}}, "inputs"),
        ({"env": "qa", "product_tag": "shop", "input": {"name": "x"}}, "env"),
        ({"env": "dev", "product_tag": "shop", "input": {"name": "x"}, "": 1}, "body"),  # a key of no name
    ],
)
def test_bad_input_answers_422_and_stores_nothing(make_app: MakeApp, body: dict[str, Any], field: str) -> None:
    app, asgi, keys = served(make_app)
    (answer,) = calls(asgi, keys.create("admin").key, ("POST", "/features/greet/run", body))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["field"] == field
    assert app.dt.feature.runs() == []


def test_a_key_limited_to_another_product_may_not_run_or_see_it(make_app: MakeApp) -> None:
    _, asgi, keys = served(make_app)
    body = {"env": "dev", "product_tag": "shop", "input": {"name": "x"}}
    (ran,) = calls(asgi, keys.create("admin").key, ("POST", "/features/greet/run", body))
    path = f"/features/runs/{ran.json()['id']}"
    refused, hidden = calls(
        asgi, keys.create("blog", product_tag="blog").key, ("POST", "/features/greet/run", body), ("GET", path, None)
    )
    assert (refused.status_code, hidden.status_code) == (403, 404)
    (anonymous,) = calls(asgi, "", ("GET", path, None))
    assert anonymous.status_code == 401


# --------------------------------------------------------------- GET /features/runs, POST .../resume, .../retry


def test_list_feature_runs_paged_newest_first(make_app: MakeApp) -> None:
    app, asgi, keys = served(make_app)
    admin = keys.create("admin").key
    first = app.run("greet", name="ada")
    app.clock.advance(seconds=1)
    second = app.run("greet", name="bob")
    listed, page, by_tag, failed = calls(
        asgi,
        admin,
        ("GET", "/features/runs", None),
        ("GET", "/features/runs?limit=1&offset=1", None),
        ("GET", "/features/runs?feature_tag=other", None),
        ("GET", "/features/runs?status=failed", None),
    )
    body = listed.json()
    assert [r["id"] for r in body["items"]] == [second.id, first.id]
    assert (body["limit"], body["offset"], body["has_more"]) == (100, 0, False)
    assert body["items"][0]["events"] == []  # listings leave the events out (GET /features/runs/{id} has them)
    assert [r["id"] for r in page.json()["items"]] == [first.id] and page.json()["has_more"] is False
    assert by_tag.json()["items"] == [] and failed.json()["items"] == []
    bad_status, bad_limit = calls(
        asgi, admin, ("GET", "/features/runs?status=done", None), ("GET", "/features/runs?limit=0", None)
    )
    assert (bad_status.status_code, bad_status.json()["detail"][0]["field"]) == (422, "status")
    assert (bad_limit.status_code, bad_limit.json()["detail"][0]["field"]) == (422, "limit")


def test_retry_a_failed_feature_run_and_resume_one_whose_driver_died(make_app: MakeApp) -> None:
    app, asgi, keys = served(make_app)
    tries: list[str] = []

    @app.dt.function("shout")
    def shaky(input: dict[str, Any], ctx: Any) -> str:
        tries.append(input["text"])
        if len(tries) == 1:
            raise RuntimeError("down")
        return str(input["text"]).upper()

    failed = app.run("greet", name="ada")
    assert failed.status is FeatureRunStatus.FAILED
    admin = keys.create("admin").key
    retried, again, missing = calls(
        asgi,
        admin,
        ("POST", f"/features/runs/{failed.id}/retry", None),
        ("POST", f"/features/runs/{failed.id}/retry", None),  # completed now: nothing to retry
        ("POST", "/features/runs/feat_nope/retry", None),
    )
    assert retried.status_code == 200, retried.text
    run = retried.json()
    assert run["status"] == "completed" and run["output"]["b"] == {"shout": "HELLO ADA"}
    assert [(e["event_tag"], e["attempts"]) for e in run["events"]] == [("hello", 1), ("shout", 2)]
    assert (again.status_code, missing.status_code) == (409, 404)

    now = app.clock.now()
    held = FeatureRun(
        "feat_held", "shop", "dev", "greet", {"name": "cy"}, FeatureRunStatus.RUNNING, now, now,
        lease_owner="other-host:1:abc", lease_expires_at=now + timedelta(seconds=30),
        events=[EventResult("a", "hello", "function", 0), EventResult("b", "shout", "function", 0)],
    )  # fmt: skip
    app.dt.store.create_feature_run(held)
    (busy,) = calls(asgi, admin, ("POST", "/features/runs/feat_held/resume", None))
    assert busy.status_code == 409 and "other-host:1:abc" in busy.json()["detail"]  # its driver's lease holds
    app.clock.advance(seconds=31)
    resumed, finished = calls(
        asgi,
        admin,
        ("POST", "/features/runs/feat_held/resume", None),
        ("POST", f"/features/runs/{failed.id}/resume", None),
    )
    assert resumed.status_code == 200 and resumed.json()["output"]["b"] == {"shout": "HELLO CY"}
    assert finished.status_code == 200 and finished.json() == run  # a finished run is answered as it is


def test_a_product_limited_key_lists_resumes_and_retries_only_its_products_runs(make_app: MakeApp) -> None:
    app, asgi, keys = served(make_app)
    app.dt.function("shout")(lambda input, ctx: (_ for _ in ()).throw(RuntimeError("down")))
    failed = app.run("greet", name="ada")
    assert failed.status is FeatureRunStatus.FAILED
    blog = keys.create("blog", product_tag="blog").key
    listed, resumed, retried = calls(
        asgi,
        blog,
        ("GET", "/features/runs", None),
        ("POST", f"/features/runs/{failed.id}/resume", None),
        ("POST", f"/features/runs/{failed.id}/retry", None),
    )
    assert listed.json()["items"] == []
    assert (resumed.status_code, retried.status_code) == (404, 404)  # as if it did not exist
    assert app.dt.feature.get(failed.id).events == failed.events  # nothing ran again
    (other_env,) = calls(
        asgi, keys.create("shop-prd", product_tag="shop", env="prd").key, ("GET", "/features/runs", None)
    )
    assert other_env.json()["items"] == []
    shop = keys.create("shop", product_tag="shop", env="dev").key
    (mine,) = calls(asgi, shop, ("GET", "/features/runs", None))
    assert [r["id"] for r in mine.json()["items"]] == [failed.id]
    reader = keys.create("reader", scope="read").key
    (refused,) = calls(asgi, reader, ("POST", f"/features/runs/{failed.id}/retry", None))
    assert refused.status_code == 403 and "needs the write scope" in refused.json()["detail"]
