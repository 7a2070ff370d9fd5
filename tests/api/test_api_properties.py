"""No request breaks the API: schemathesis generates requests from the OpenAPI document for every route
(valid and invalid ones), sent with each kind of key. No answer is a 5xx; every 422 names its fields, every
other 4xx says why in ``detail``. ``EXAMPLES`` requests per route and key (the event stream, which never
ends by itself, is tested in test_api_runs.py)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from ductape_jobs import Ductape
from ductape_jobs.api import create_app
from ductape_jobs.apikeys import ApiKeys

EXAMPLES = int(os.environ.get("DUCTAPE_API_EXAMPLES", "50"))


def _serve() -> tuple[Ductape, Any, dict[str, str]]:
    """The app under test, built at import: schemathesis reads its OpenAPI document to make the tests."""
    folder = tempfile.mkdtemp(prefix="ductape-props-")
    dt = Ductape(f"sqlite:///{folder}/jobs.db")
    dt.products.add(
        {"tag": "shop", "envs": {"dev": {"secrets": {"signing": "sig-0123456789"}}},
         "features": {"greet": {"input": {"name": "string"}, "sequence": [
             {"sequence_tag": "a", "events": [
                 {"type": "FUNCTION", "event": "echo", "input": {"n": "$Input{name}"}}]}]}}}
    )  # fmt: skip
    dt.function("echo")(lambda input, ctx: input)
    dt.job.create({"name": "Echo", "tag": "echo", "event_type": "FUNCTION", "event_tag": "echo"})
    dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "echo", "input": {"a": 1}})
    dt.drain()
    keys = ApiKeys(dt.store, dt.clock)
    made = {
        "admin": keys.create("admin").key,
        "limited": keys.create("shop", product_tag="shop", env="dev").key,
        "read": keys.create("reader", scope="read").key,
    }
    return dt, create_app(dt, events_poll=0.05, events_keepalive=0.3), made


DT, APP, KEYS = _serve()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/api/v1/events")


@pytest.fixture(scope="module", autouse=True)
def _close() -> Any:
    yield
    DT.close()


PROPERTIES = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no example database written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)


def _explains(answer: Any) -> None:
    status = answer.status_code
    assert status < 500, f"{status}: {answer.text[:500]}"
    if status == 422:
        detail = answer.json()["detail"]
        assert detail and all(p["field"] and p["rule"] and p["message"].startswith(p["field"]) for p in detail)
    elif status >= 400:
        assert isinstance(answer.json()["detail"], str) and answer.json()["detail"]


def _bearer(keys: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[who]}"}


@schema.parametrize()
@PROPERTIES
def test_no_request_from_an_unlimited_key_gets_a_server_error(case: Any) -> None:
    _explains(case.call(headers=_bearer(KEYS, "admin")))


@schema.parametrize()
@PROPERTIES
def test_no_request_from_a_product_limited_key_gets_a_server_error(case: Any) -> None:
    _explains(case.call(headers=_bearer(KEYS, "limited")))


SCOPES = {
    (method.upper(), path): operation.get("x-required-scope")
    for path, operations in APP.openapi()["paths"].items()
    for method, operation in operations.items()
}


@schema.parametrize()
@settings(PROPERTIES, max_examples=min(EXAMPLES, 20))
def test_a_read_key_gets_no_server_error_and_403_on_every_change(case: Any) -> None:
    answer = case.call(headers=_bearer(KEYS, "read"))
    _explains(answer)
    needed = SCOPES.get((case.method.upper(), case.path))  # (None for a method the route does not have)
    if needed not in (None, "read") and answer.status_code != 413:  # a body over the limit is refused first
        assert answer.status_code == 403 and f"needs the {needed} scope" in answer.json()["detail"]


def test_a_client_gone_before_its_body_is_a_400_not_an_exception() -> None:
    """Starlette raises ClientDisconnect from the body's read; uvicorn logged it as "Exception in ASGI application"
    with its traceback, for every client that dropped its connection mid-upload."""
    import asyncio

    from fastapi import HTTPException, Request

    from ductape_jobs.api.common import json_object

    sent: list[dict[str, Any]] = [{"type": "http.request", "body": b'{"a": ', "more_body": True}]
    messages = iter([*sent, {"type": "http.disconnect"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    request = Request({"type": "http", "method": "POST", "headers": [], "path": "/"}, receive)
    with pytest.raises(HTTPException) as refused:
        asyncio.run(json_object(request))
    assert refused.value.status_code == 400 and "closed the connection" in str(refused.value.detail)


def test_a_client_gone_during_the_dashboard_login_is_not_an_exception() -> None:
    """The login form is read from the stream itself: a client gone mid-form raised ClientDisconnect to uvicorn."""
    import asyncio

    from fastapi import Request

    from ductape_jobs.api.dashboard import _form_keys

    sent: list[dict[str, Any]] = [{"type": "http.request", "body": b"key=ab", "more_body": True}]
    messages = iter([*sent, {"type": "http.disconnect"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    request = Request({"type": "http", "method": "POST", "headers": [], "path": "/login"}, receive)
    assert asyncio.run(_form_keys(request)) == []
