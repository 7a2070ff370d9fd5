"""``POST /api/v1/features/{tag}/run`` and ``GET /api/v1/features/runs/{id}``, called in process through httpx's
ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from feature_kit import App, fn, seq

from ductape_jobs.api import create_app
from ductape_jobs.apikeys import ApiKeys

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
