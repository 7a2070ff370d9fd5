"""``POST /api/v1/sessions`` and ``POST /api/v1/sessions/verify``: ``ductape.session.start`` and ``verify`` over
HTTP. The token is answered once (not cached, never logged); a product-limited key handles only its product's
sessions. (The dashboard's login sessions are test_api_sessions.py's.)"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from apikit import SHOP, Api, problems

from ductape_jobs import FakeClock

SECRET = "session-secret-for-the-api-tests-0123456789"
USER = {"user": {"id": 7, "name": "Ada"}}


@pytest.fixture
def shop(api: Api) -> Api:
    """Product ``shop`` (env ``prd``) declaring ``user-session`` (its ``user`` required, an object)."""
    api.dt.products.add(
        {
            "tag": "shop",
            "envs": {"prd": {"session_secret": SECRET}, "dev": {"session_secret": SECRET}},
            "sessions": {
                "user-session": {
                    "name": "User",
                    "schema": {"user": "object"},
                    "required": ["user"],
                    "selector": "$Session{user}{id}",
                    "expiry": 3600,
                }
            },
        }
    )
    return api


def test_start_a_session_verify_it_and_schedule_with_it(
    shop: Api, job: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    c = shop.client()
    caplog.set_level(logging.DEBUG)
    made = c.post("/sessions", json={"tag": "user-session", "data": USER, "env": "prd", "product_tag": "shop"})
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    body = made.json()
    assert set(body) == {"session", "tag", "expires_at", "subject"}
    assert body["session"].startswith("user-session:") and (body["tag"], body["subject"]) == ("user-session", "7")
    assert body["expires_at"].startswith((shop.dt.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"))

    verified = c.post("/sessions/verify", json={"session": body["session"], "env": "prd", "product_tag": "shop"})
    assert verified.status_code == 200 and verified.json() == {"data": USER}
    tag, token = body["session"].split(":", 1)
    as_object = c.post("/sessions/verify", json={"session": {"tag": tag, "token": token}, "env": "prd",
                                                 "product_tag": "shop"})  # fmt: skip
    assert as_object.json() == {"data": USER}
    scheduled = c.post("/schedule", json={**SHOP, "session": body["session"], "input": {"who": "$Session{user}{name}"}})
    assert scheduled.status_code == 201, scheduled.text
    assert token not in caplog.text  # a credential: never logged


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tag": "user-session", "data": {"user": 5}, "env": "prd", "product_tag": "shop"}, "session.data.user"),
        ({"tag": "user-session", "data": {}, "env": "prd", "product_tag": "shop"}, "session.data.user"),
        ({"tag": "user-session", "data": [1], "env": "prd", "product_tag": "shop"}, "session.data"),
        ({"tag": "nobody", "data": USER, "env": "prd", "product_tag": "shop"}, "session.tag"),
        ({"tag": "user-session", "data": USER, "env": "qa", "product_tag": "shop"}, "env"),
        ({"tag": "user-session", "data": USER, "product_tag": "shop"}, "env"),
        ({"tag": "user-session", "data": USER, "env": "prd", "product_tag": "shop", "colour": 1}, "colour"),
    ],
)
def test_bad_input_to_start_answers_422_naming_the_field(shop: Api, body: dict[str, Any], field: str) -> None:
    assert problems(shop.client().post("/sessions", json=body))[0][0] == field


def test_a_bad_token_answers_422_and_the_right_one_only_in_its_env(shop: Api) -> None:
    c = shop.client()
    made = c.post("/sessions", json={"tag": "user-session", "data": USER, "env": "prd", "product_tag": "shop"})
    session = made.json()["session"]
    tampered = session[:-4] + ("AAAA" if not session.endswith("AAAA") else "BBBB")
    for given, env, field in [
        (tampered, "prd", "session.token"),
        (session, "dev", "session.token"),  # issued for prd
        ("no-colon", "prd", "session"),
        ({"tag": "user-session"}, "prd", "session.token"),
    ]:
        answer = c.post("/sessions/verify", json={"session": given, "env": env, "product_tag": "shop"})
        assert problems(answer)[0][0] == field, (given, answer.text)
    clock = shop.dt.clock
    assert isinstance(clock, FakeClock)
    clock.advance(timedelta(hours=2))
    expired = c.post("/sessions/verify", json={"session": session, "env": "prd", "product_tag": "shop"})
    (field, rule), *_ = problems(expired)
    assert field == "session.token" and rule.startswith("expired at")


def test_a_product_limited_key_starts_and_verifies_only_its_products_sessions(shop: Api) -> None:
    request = {"tag": "user-session", "data": USER, "env": "prd", "product_tag": "shop"}
    blog = shop.client(shop.key(product_tag="blog"))
    refused = blog.post("/sessions", json=request)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "this API key may only start sessions for product_tag 'blog'"
    mine = shop.client(shop.key(product_tag="shop", env="prd", scope="write"))
    made = mine.post("/sessions", json=request)
    assert made.status_code == 201
    check = {"session": made.json()["session"], "env": "prd", "product_tag": "shop"}
    assert blog.post("/sessions/verify", json=check).status_code == 403
    assert mine.post("/sessions/verify", json=check).json() == {"data": USER}
    assert mine.post("/sessions", json={**request, "env": "dev"}).status_code == 403  # its env only
    reader = shop.client(shop.key(scope="read"))
    assert reader.post("/sessions", json=request).status_code == 403  # issuing needs the write scope
    assert reader.post("/sessions/verify", json=check).status_code == 200  # verifying stores nothing: read


def test_a_token_given_as_the_tag_is_not_echoed_in_the_refusal(shop: Api, job: dict[str, Any]) -> None:
    """The tag and token swapped (or ``token:tag``): the refusal named the tag it could not find, and so printed the
    token whole in a 422 body (and the CLI's message)."""
    c = shop.client()
    small = {"user": {"id": 1}}  # a token under the tag's 256 characters (a longer one is refused by its length)
    made = c.post("/sessions", json={"tag": "user-session", "data": small, "env": "prd", "product_tag": "shop"})
    tag, token = made.json()["session"].split(":", 1)
    assert len(token) <= 256
    for session in ({"tag": token, "token": tag}, f"{token}:{tag}"):
        for path, extra in (("/schedule", {**SHOP}), ("/sessions/verify", {"env": "prd", "product_tag": "shop"})):
            refused = c.post(path, json={**extra, "session": session})
            assert refused.status_code == 422 and "has no session" in refused.text, refused.text
            assert token not in refused.text and token.split(".")[2] not in refused.text


def test_data_whose_token_no_call_would_take_is_refused_when_the_session_starts(shop: Api) -> None:
    """``session.start`` took data up to the input bound (256 KiB) while ``schedule()`` and ``verify`` take a token of
    at most ``MAX_SESSION_TOKEN`` characters (a probe: 20 KB of data made a token every call then refused). The
    largest data that fits is issued, and its token is taken."""
    from ductape_jobs.limits import MAX_SESSION_TOKEN

    c = shop.client()

    def start(bio: str) -> Any:
        data = {"user": {"id": 7, "bio": bio}}
        return c.post("/sessions", json={"tag": "user-session", "data": data, "env": "prd", "product_tag": "shop"})

    low, high = 0, 20_000  # the longest bio whose token fits, by bisection (base64 and the claims around it)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if start("x" * mid).status_code == 201 else (low, mid - 1)
    fits = start("x" * low)
    assert fits.status_code == 201 and len(fits.json()["session"].split(":", 1)[1]) <= MAX_SESSION_TOKEN
    verified = c.post("/sessions/verify", json={"session": fits.json()["session"], "env": "prd", "product_tag": "shop"})
    assert verified.status_code == 200, verified.text
    too_long = start("x" * (low + 1))  # a byte more: its token passes the bound
    assert too_long.status_code == 422
    ((field, rule),) = problems(too_long)
    made = re.fullmatch(
        rf"makes a token of ([\d,]+) characters, more than the {MAX_SESSION_TOKEN:,} a session token may hold \(the "
        r"data as JSON, base64-encoded: about 12 KB of ASCII, less of other characters\); keep less in the session",
        rule,
    )
    assert field == "session.data" and made is not None, rule
    assert MAX_SESSION_TOKEN < int(made.group(1).replace(",", "")) <= MAX_SESSION_TOKEN + 4
