"""The HTTP transport against a real local server (http.server in a thread): building, auth, results, failures."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import pickle
import socket
import time
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from rich.pretty import pretty_repr

from ductape_jobs.errors import ExecutionError, ValidationError
from ductape_jobs.executors.http import (
    MAX_BODY_BYTES,
    HttpAuth,
    HttpError,
    HttpRequestSpec,
    build_request,
    perform,
    redact_url,
)
from ductape_jobs.redaction import SECRETS, WEBHOOK_EXTENSION
from support import Recorder


@pytest.fixture
def server(http: Recorder) -> Recorder:
    """The shared local HTTP server (conftest's ``http``)."""
    return http


def spec(base_url: str, **kw: Any) -> HttpRequestSpec:
    return HttpRequestSpec(**{"method": "GET", "base_url": base_url, **kw})


def call(request: httpx.Request, timeout: float = 5.0) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            return await perform(client, request, timeout)

    return asyncio.run(go())


def failure(request: httpx.Request, timeout: float = 5.0) -> HttpError:
    with pytest.raises(HttpError) as info:
        call(request, timeout)
    assert isinstance(info.value, ExecutionError)
    return info.value


# ------------------------------------------------------------------------------------------- building


def test_path_params_are_filled_and_encoded(server: Recorder) -> None:
    s = spec(server.url + "/api/", path="/users/:id/files/{name}/v1/items:batch")
    call(build_request(s, {"params": {"id": "a b/c", "name": "x?y#z&ü", "unused": 1}}))
    assert server.last.path == "/api/users/a%20b%2Fc/files/x%3Fy%23z%26%C3%BC/v1/items:batch"


def test_numeric_and_bool_params(server: Recorder) -> None:
    call(build_request(spec(server.url, path=":n/:flag"), {"params": {"n": 42, "flag": True}}))
    assert server.last.path == "/42/true"


def test_an_object_or_list_param_fills_the_path_as_json_as_piping_does(server: Recorder) -> None:
    """A path's value reads as a placeholder's does inside text (``limits.as_text``): an object or a list as compact
    JSON (it went as Python wrote it: ``{'a': 1, 't': True, 'n': None}``), and so does a header's."""
    given = {"id": {"a": 1, "t": True, "n": None}, "ids": [1, "x"]}
    call(build_request(spec(server.url, path="/u/:id/{ids}"), {"params": given, "headers": {"X-Ids": [1, "x"]}}))
    assert unquote(server.last.target) == '/u/{"a":1,"t":true,"n":null}/[1,"x"]'
    assert server.last.headers["x-ids"] == '[1,"x"]'
    # a query's and a form's alike (a list repeats the parameter)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    s = spec(server.url, method="POST", path="/q", headers=form, body={"o": {"a": 1}, "t": True})
    call(build_request(s, {"query": {"q": {"a": 1, "n": None}, "ids": [1, {"b": 2}, None], "gone": None}}))
    assert unquote(server.last.target) == '/q?q={"a":1,"n":null}&ids=1&ids={"b":2}&ids='
    assert unquote(server.last.body.decode()) == 'o={"a":1}&t=true'


def test_a_missing_path_param_is_not_retryable_and_named() -> None:
    with pytest.raises(HttpError) as info:
        build_request(spec("http://127.0.0.1:9", path="/users/:id/{kind}/:other"), {"params": {"other": None}})
    assert not info.value.retryable
    assert "id" in str(info.value) and "kind" in str(info.value) and "other" in str(info.value)


def test_bad_input_and_urls_are_not_retryable() -> None:
    cases: list[tuple[HttpRequestSpec, Any]] = [
        (spec("not a url"), {}),
        (spec("ftp://host/x"), {}),
        (spec("http://h"), {"query": ["a"]}),
        (spec("http://h"), {"headers": {"X-A": "one\r\nX-B: two"}}),
        (spec("http://h", method="POST"), {"body": {"x": float("nan")}}),
        (spec("http://h", method="POST"), {"body": {"x": object()}}),
        (spec("http://h"), "not a dict"),
    ]
    for bad_spec, bad_input in cases:
        with pytest.raises(HttpError) as info:
            build_request(bad_spec, bad_input)
        assert not info.value.retryable, (bad_spec, bad_input)


def test_query_headers_and_body_merge_over_the_spec(server: Recorder) -> None:
    s = spec(
        server.url + "/search?fixed=1",
        method="post",
        query={"a": "1", "b": "2", "gone": "x"},
        headers={"X-A": "spec", "X-B": "spec"},
        body={"a": 1, "b": 2, "nested": {"k": 1}},
    )
    request = build_request(
        s,
        {
            "query": {"b": "3", "c": ["x", "y"], "gone": None, "flag": False},
            "headers": {"x-b": "input", "X-N": 7},
            "body": {"b": 3, "nested": {"j": 2}},
        },
    )
    call(request)
    seen = server.last
    assert seen.method == "POST"
    assert seen.query == "fixed=1&a=1&b=3&c=x&c=y&flag=false"
    assert seen.headers["x-a"] == "spec" and seen.headers["x-b"] == "input" and seen.headers["x-n"] == "7"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"].startswith("ductape-jobs")
    assert seen.json() == {"a": 1, "b": 3, "nested": {"j": 2}}  # shallow merge


def test_a_non_dict_body_replaces_and_other_encodings(server: Recorder) -> None:
    call(build_request(spec(server.url, method="PUT", body={"a": 1}), {"body": [1, 2]}))
    assert server.last.json() == [1, 2]
    call(build_request(spec(server.url, method="POST", body=[1]), {"body": {"a": 1}}))
    assert server.last.json() == {"a": 1}
    call(build_request(spec(server.url, method="POST", body={"a": 1}), {"body": "héllo"}))
    assert server.last.body == "héllo".encode() and server.last.headers["content-type"].startswith("text/plain")
    call(build_request(spec(server.url, method="POST", body={"a": 1}), {}))
    assert server.last.json() == {"a": 1}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    call(build_request(spec(server.url, method="POST", headers=form), {"body": {"To": "+1 555", "Body": "hi&bye"}}))
    assert server.last.body == b"To=%2B1+555&Body=hi%26bye"
    call(build_request(spec(server.url), {}))
    assert server.last.body == b""


@pytest.mark.parametrize(
    ("auth", "check"),
    [
        (HttpAuth("bearer", token="tok-1"), lambda s: s.headers["authorization"] == "Bearer tok-1"),
        (
            HttpAuth("basic", username="ann", password="pä:ss"),
            lambda s: s.headers["authorization"] == "Basic " + base64.b64encode("ann:pä:ss".encode()).decode(),
        ),
        (HttpAuth("header", name="X-Api-Key", value="k-9"), lambda s: s.headers["x-api-key"] == "k-9"),
        (HttpAuth("query", name="api_token", value="q s"), lambda s: s.query == "page=2&api_token=q+s"),
        (HttpAuth("none"), lambda s: "authorization" not in s.headers and s.query == "page=2"),
    ],
    ids=["bearer", "basic", "header", "query", "none"],
)
def test_each_auth_kind_arrives(server: Recorder, auth: HttpAuth, check: Any) -> None:
    call(build_request(spec(server.url, path="/me", query={"page": 2}, auth=auth), {}))
    assert check(server.last), server.last


def test_input_headers_can_override_the_auth_header(server: Recorder) -> None:
    s = spec(server.url, auth=HttpAuth("bearer", token="app"))
    call(build_request(s, {"headers": {"authorization": "Bearer per-call"}}))
    assert server.last.headers["authorization"] == "Bearer per-call"


def test_auth_is_validated_and_secrets_stay_out_of_repr() -> None:
    for kind, kw in [("bearer", {}), ("basic", {}), ("header", {"name": "X"}), ("query", {"value": "v"})]:
        with pytest.raises(ValidationError):
            HttpAuth(kind, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        HttpAuth("digest")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        HttpAuth("header", name="X", value="a\nb")
    auths = [HttpAuth("basic", username="u", password="hunter2"), HttpAuth("bearer", token="t0ken")]
    text = "".join(repr(a) + pretty_repr(a) for a in auths)  # rich's too (a Struct's __rich_repr__: every field)
    assert "hunter2" not in text and "t0ken" not in text and "username='u'" in text


# ------------------------------------------------------------------------------------------- results


def test_a_2xx_answer_gives_the_summary(server: Recorder) -> None:
    server.reply(
        201,
        {"id": 7, "name": "x"},
        headers={"Content-Type": "application/json", "X-Request-Id": "r-1", "Set-Cookie": "s=secret", "X-Other": "o"},
    )
    result = call(build_request(spec(server.url, method="POST", path="/things"), {"body": {"name": "x"}}))
    assert result["status"] == 201
    assert result["body"] == {"id": 7, "name": "x"}
    assert result["truncated"] is False
    assert isinstance(result["duration_ms"], int) and result["duration_ms"] >= 0
    assert result["headers"]["content-type"] == "application/json"
    assert result["headers"]["x-request-id"] == "r-1"
    assert "set-cookie" not in result["headers"] and "x-other" not in result["headers"]
    json.dumps(result)  # storable as run output


def test_text_and_empty_bodies(server: Recorder) -> None:
    server.reply(200, "plain words", headers={"Content-Type": "text/plain; charset=utf-8"})
    server.reply(204, b"", headers={})
    server.reply(200, b"[1, 2]", headers={})  # no content type: still parsed when it is JSON
    request = build_request(spec(server.url), {})
    assert call(request)["body"] == "plain words"
    assert call(build_request(spec(server.url), {}))["body"] is None
    assert call(build_request(spec(server.url), {}))["body"] == [1, 2]


def test_a_big_body_is_truncated(server: Recorder) -> None:
    big = json.dumps({"data": "x" * (MAX_BODY_BYTES * 2)})
    server.reply(200, big)
    result = call(build_request(spec(server.url), {}))
    assert result["truncated"] is True
    assert isinstance(result["body"], str) and len(result["body"]) == MAX_BODY_BYTES
    assert big.startswith(result["body"])


# ------------------------------------------------------------------------------------------- failures


def test_500_is_retryable_with_details(server: Recorder) -> None:
    server.reply(500, {"error": "database down", "trace": "x" * 2000}, headers={"Retry-After": "3"})
    error = failure(build_request(spec(server.url, method="POST", path="/jobs/:id"), {"params": {"id": 5}}))
    assert error.retryable is True
    message = str(error)
    assert message.startswith(f"POST {server.url}/jobs/5 -> HTTP 500")
    assert "database down" in message and len(message) < 800
    assert error.details is not None
    assert error.details["status"] == 500 and error.details["body"]["error"] == "database down"
    assert error.details["headers"]["retry-after"] == "3"
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.retryable, copy.details) == (message, True, error.details)


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (400, False), (401, False), (429, True), (503, True)])
def test_status_decides_retryable(server: Recorder, status: int, retryable: bool) -> None:
    server.reply(status, {"error": "nope"})
    error = failure(build_request(spec(server.url, path="/x"), {}))
    assert error.retryable is retryable
    assert error.details is not None and error.details["status"] == status
    assert f"HTTP {status}" in str(error)


def test_secrets_in_the_url_are_redacted_from_messages(server: Recorder) -> None:
    server.reply(403, b"denied", headers={})
    auth = HttpAuth("query", name="sig_x", value="very-secret")
    error = failure(
        build_request(spec(server.url, path="/x", query={"api_key": "also-secret", "page": 1}, auth=auth), {})
    )
    message = str(error)
    assert "very-secret" not in message and "also-secret" not in message
    assert "sig_x=REDACTED" in message and "api_key=REDACTED" in message and "page=1" in message
    assert server.last.query == "api_key=also-secret&page=1&sig_x=very-secret"  # the server got the real values
    assert redact_url(httpx.URL("https://ann:pw@h/x?token=t&q=1")) == "https://ann:REDACTED@h/x?token=REDACTED&q=1"


def test_a_timeout_is_retryable(server: Recorder) -> None:
    server.reply(200, delay=2.0)
    started = time.monotonic()
    error = failure(build_request(spec(server.url, path="/slow"), {}), timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert error.retryable is True
    assert "timed out" in str(error) and "/slow" in str(error)
    assert error.details is not None and error.details["status"] is None


def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens there
    error = failure(build_request(spec(f"http://127.0.0.1:{port}", path="/x"), {}))
    assert error.retryable is True
    assert "ConnectError" in str(error) and f"127.0.0.1:{port}/x" in str(error)


def test_httpx_logs_the_url_of_a_call_as_messages_show_it(server: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    """An application that logs INFO gets httpx's line for every request: the engine's calls' secrets are masked
    in it (an action's query key, a webhook's path); a request of the application's own is left as it is."""
    server.reply(200, b"{}", headers={})
    SECRETS.learn(["bot-path-secret-value-1"])  # a product's secret, as a run that reads it teaches the process
    auth = HttpAuth("query", name="auth[token]", value="very-secret")  # sent as auth%5Btoken%5D
    query = {"api_key": "also-secret", "page": 1, "x_sig": "bot-path-secret-value-1"}
    plain = build_request(spec(server.url, path="/bot-path-secret-value-1/x", query=query, auth=auth), {})
    hook = build_request(spec(server.url, path="/services/T000/B000/XXXXsecrettokenXXXX"), {})
    hook.extensions[WEBHOOK_EXTENSION] = True

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            await perform(client, plain, 5.0)
            await perform(client, hook, 5.0)
            await client.get(f"{server.url}/own?token=the-apps-own")  # not the engine's: not touched

    with caplog.at_level(logging.INFO, logger="httpx"):
        asyncio.run(go())
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(lines) == 3
    assert "auth%5Btoken%5D=REDACTED" in lines[0] and "api_key=REDACTED" in lines[0] and "page=1" in lines[0]
    assert f"{server.url}/[secret]/x?" in lines[0] and "x_sig=[secret]" in lines[0]
    assert lines[1].startswith(f"HTTP Request: GET {server.url}/services/***")
    assert "very-secret" not in lines[0] + lines[1] and "also-secret" not in lines[0] and "XXXX" not in lines[1]
    assert "token=the-apps-own" in lines[2]
