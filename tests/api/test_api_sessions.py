"""The dashboard's login: the key is exchanged for an opaque, expiring, server-side session; the cookie holds its
token, never the key. Logout and the key's revocation end it. Changes made with the cookie must be JSON from this
server's origin. Event streams end with their key or session."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from apikit import SHOP, Api, LiveServer, wait_for

from ductape_jobs import Ductape, FakeClock
from ductape_jobs.api import create_app
from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.errors import ValidationError
from ductape_jobs.logins import token_hash
from ductape_jobs.models import ScheduleStatus

COOKIE = "ductape_session"


def log_in(url: str, key: str, **headers: str) -> httpx.Client:
    """A client logged in through the form (as a browser is), with the cookie and nothing else."""
    c = httpx.Client(base_url=url, timeout=10)
    answer = c.post("/login", data={"key": key}, headers=headers)
    assert answer.status_code == 303, answer.text
    return c


def browser(c: httpx.Client, url: str) -> dict[str, str]:
    """What a browser adds to the dashboard's own JSON writes."""
    return {"Origin": url, "Content-Type": "application/json"}


@pytest.fixture
def schedule_id(api: Api, job: dict[str, Any]) -> str:
    return api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id


def test_the_cookie_holds_a_session_token_never_the_key(api: Api, tmp_path: Path) -> None:
    c = log_in(api.url, api.admin_key)
    token = c.cookies[COOKIE]
    assert token.startswith("dts_") and api.admin_key not in token and api.admin_key[4:16] not in token
    assert "ductape_key" not in c.cookies
    found = api.dt.store.find_login_session(token_hash(token))
    assert found is not None and found[1].name == "admin"
    assert found[0].expires_at - found[0].created_at == timedelta(hours=12)
    store_files = b"".join(p.read_bytes() for p in Path(tmp_path).glob("jobs.db*"))
    assert token.encode() not in store_files  # only its hash is stored
    assert c.get("/api/v1/jobs").status_code == 200
    me = c.get("/api/v1/me").json()
    assert (me["name"], me["via"], me["scope"]) == ("admin", "session", "admin")
    c.close()


def test_the_cookie_is_http_only_strict_and_secure_over_https(api: Api, dt: Ductape) -> None:
    with httpx.Client(base_url=api.url) as c:
        cookie = c.post("/login", data={"key": api.admin_key}).headers["set-cookie"].lower()
        assert cookie.startswith(f"{COOKIE}=dts_")
        for flag in ("httponly", "samesite=strict", "path=/", "max-age=43200"):
            assert flag in cookie
        assert "secure" not in cookie  # plain http on loopback
        proxied = c.post("/login", data={"key": api.admin_key}, headers={"X-Forwarded-Proto": "https"})
        assert "secure" in proxied.headers["set-cookie"].lower()  # came over https (a proxy on loopback says so)

    server = LiveServer(create_app(dt, public_url="https://jobs.example.com", dashboard=True)).start()
    try:
        with httpx.Client(base_url=server.url) as c:
            answer = c.post("/login", data={"key": api.admin_key})
            assert answer.status_code == 303 and "secure" in answer.headers["set-cookie"].lower()
    finally:
        server.stop()
    with pytest.raises(ValidationError, match="public_url"):
        create_app(dt, public_url="jobs.example.com")


def test_a_session_expires(api: Api, clock: FakeClock) -> None:
    c = log_in(api.url, api.admin_key)
    clock.advance(hours=11, minutes=59)
    assert c.get("/api/v1/jobs").status_code == 200
    clock.advance(minutes=1)
    answer = c.get("/api/v1/jobs")
    assert answer.status_code == 401 and "session has ended" in answer.json()["detail"]
    assert 'name="key"' in c.get("/").text  # the login form again
    c.close()


def test_the_session_lifetime_can_be_set(dt: Ductape, clock: FakeClock) -> None:
    server = LiveServer(create_app(dt, session_lifetime=timedelta(minutes=30))).start()
    try:
        key = ApiKeys(dt.store, dt.clock).create("k").key
        c = log_in(server.url, key)
        assert c.get("/api/v1/jobs").status_code == 200
        clock.advance(minutes=30)
        assert c.get("/api/v1/jobs").status_code == 401
        c.close()
    finally:
        server.stop()


def test_logout_ends_the_session_in_the_store(api: Api) -> None:
    c = log_in(api.url, api.admin_key)
    token = c.cookies[COOKIE]
    out = c.post("/logout", headers={"Origin": api.url})
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]
    assert api.dt.store.find_login_session(token_hash(token)) is None
    with httpx.Client(base_url=api.url, cookies={COOKIE: token}, timeout=10) as replay:  # the old cookie again
        assert replay.get("/api/v1/jobs").status_code == 401
        assert 'name="key"' in replay.get("/").text
    c.close()


def test_revoking_the_key_ends_its_sessions(api: Api) -> None:
    made = api.keys.create("ops")
    first, second = log_in(api.url, made.key), log_in(api.url, made.key)
    other = log_in(api.url, api.admin_key)
    api.keys.revoke(made.record.id)
    assert first.get("/api/v1/jobs").status_code == 401
    assert second.get("/api/v1/jobs").status_code == 401
    assert api.dt.store.find_login_session(token_hash(first.cookies[COOKIE])) is None  # deleted too
    assert other.get("/api/v1/jobs").status_code == 200

    # even a revocation that did not delete the sessions (another release, a manual UPDATE) ends them
    third = log_in(api.url, api.admin_key)
    admin = api.keys.verify(api.admin_key)  # by its key: two keys made in one millisecond list in either order
    assert admin is not None
    api.dt.store.revoke_api_key(admin.id, api.dt.clock.now())
    try:
        assert third.get("/api/v1/jobs").status_code == 401
    finally:
        for c in (first, second, other, third):
            c.close()


def test_a_cookie_write_must_be_json(api: Api, schedule_id: str) -> None:
    c = log_in(api.url, api.admin_key)
    pause = f"/api/v1/schedules/{schedule_id}/pause"
    for content_type, body in [
        ("text/plain", "{}"),
        ("application/x-www-form-urlencoded", "reason=x"),
        ("multipart/form-data; boundary=b", "--b--"),
        (None, ""),
    ]:
        headers = {"Origin": api.url, **({"Content-Type": content_type} if content_type else {})}
        answer = c.post(pause, content=body, headers=headers)
        assert answer.status_code == 403, (content_type, answer.text)
        assert "Content-Type: application/json" in answer.json()["detail"]
    assert api.dt.job.get(schedule_id).status is ScheduleStatus.ACTIVE  # nothing happened
    ok = c.post(pause, json={}, headers={"Origin": api.url, "Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200 and api.dt.job.get(schedule_id).status is ScheduleStatus.PAUSED
    c.close()


def test_a_cookie_write_must_come_from_this_origin(api: Api, schedule_id: str) -> None:
    c = log_in(api.url, api.admin_key)
    pause = f"/api/v1/schedules/{schedule_id}/pause"
    port = api.server.port
    for headers in [
        {"Origin": f"http://127.0.0.1:{port + 1}"},  # another port on the same host: same site, other origin
        {"Origin": f"http://localhost:{port}"},
        {"Origin": f"https://127.0.0.1:{port}"},
        {"Origin": "null"},
        {"Referer": f"http://127.0.0.1:{port + 1}/page"},
        {},  # neither Origin nor Referer
    ]:
        answer = c.post(pause, json={}, headers=headers)
        assert answer.status_code == 403, (headers, answer.text)
        assert "cross-site request refused" in answer.json()["detail"]
        assert (
            c.delete("/api/v1/jobs/report", headers={**headers, "Content-Type": "application/json"}).status_code == 403
        )
    assert api.dt.job.get(schedule_id).status is ScheduleStatus.ACTIVE
    assert api.dt.job.fetch("report") is not None
    assert c.post(pause, json={}, headers={"Referer": f"{api.url}/#/schedules"}).status_code == 200  # no Origin
    resume = c.post(f"/api/v1/schedules/{schedule_id}/resume", json={}, headers={"Origin": api.url})
    assert resume.status_code == 200
    assert c.get("/api/v1/jobs", headers={"Origin": "http://evil.example"}).status_code == 200  # reads are fine
    c.close()


def test_a_public_url_is_this_servers_origin_too(dt: Ductape) -> None:
    server = LiveServer(create_app(dt, public_url="https://jobs.example.com:8443/ductape")).start()
    key = ApiKeys(dt.store, dt.clock).create("k").key
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            set_cookie = c.post("/login", data={"key": key}).headers["set-cookie"]
            token = set_cookie.split(";", 1)[0].split("=", 1)[1]  # (Secure: a client sends it over https only)
            c.headers["Cookie"] = f"{COOKIE}={token}"  # as the proxy in front passes it on
            body = {"repeat": {"every": 60_000}, "count": 1}
            assert c.post("/api/v1/preview", json=body, headers={"Origin": "https://jobs.example.com:8443"}).is_success
            assert c.post("/api/v1/preview", json=body, headers={"Origin": server.url}).is_success
            refused = c.post("/api/v1/preview", json=body, headers={"Origin": "https://jobs.example.com"})
            assert refused.status_code == 403
    finally:
        server.stop()


def test_header_keys_are_not_held_to_the_cookie_rules(api: Api, schedule_id: str) -> None:
    c = api.client(None, Origin="http://evil.example")
    answer = c.post(f"/schedules/{schedule_id}/pause", content="{}", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200, answer.text


def test_login_and_logout_refuse_a_form_from_another_origin(api: Api) -> None:
    with httpx.Client(base_url=api.url) as c:
        foreign = {"Origin": f"http://127.0.0.1:{api.server.port + 1}"}
        assert c.post("/login", data={"key": api.admin_key}, headers=foreign).status_code == 403
        assert COOKIE not in c.cookies
        assert c.post("/login", data={"key": api.admin_key}, headers={"Origin": api.url}).status_code == 303
        assert c.post("/logout", headers=foreign).status_code == 403
        assert c.get("/api/v1/jobs").status_code == 200  # still logged in


def listen(url: str, lines: list[str], **kwargs: Any) -> threading.Thread:
    def run() -> None:
        with httpx.stream("GET", f"{url}/api/v1/events", timeout=10, **kwargs) as response:
            assert response.status_code == 200
            lines.extend(response.iter_lines())
        lines.append("<closed>")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: any(line.startswith("data: ") for line in lines), what="the first event")
    return thread


def test_an_event_stream_ends_when_its_key_is_revoked(api: Api) -> None:
    made = api.keys.create("watcher", scope="read")
    lines: list[str] = []
    listener = listen(api.url, lines, headers={"Authorization": f"Bearer {made.key}"})
    api.dt.store.revoke_api_key(made.record.id, api.dt.clock.now())
    listener.join(timeout=5)
    assert not listener.is_alive() and lines[-1] == "<closed>"


def test_an_event_stream_ends_with_its_session(api: Api, clock: FakeClock) -> None:
    for end in ("logout", "expiry", "revocation"):
        made = api.keys.create(f"browser-{end}")
        c = log_in(api.url, made.key)
        lines: list[str] = []
        listener = listen(api.url, lines, cookies={COOKIE: c.cookies[COOKIE]})
        if end == "logout":
            c.post("/logout", headers={"Origin": api.url})
        elif end == "expiry":
            clock.advance(hours=12)
        else:
            api.keys.revoke(made.record.id)
        listener.join(timeout=5)
        assert not listener.is_alive() and lines[-1] == "<closed>", end
        c.close()


def test_a_login_token_never_reaches_a_log_line() -> None:
    from ductape_jobs import logs

    token = "dts_Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTAxMjM0NTY3"
    masked = logs.redact(f"Cookie: ductape_session={token}; other=1")
    assert token not in masked and token[4:] not in masked and "dts_" in masked
