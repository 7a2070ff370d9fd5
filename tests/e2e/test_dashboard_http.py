"""The dashboard's HTTP side without a browser: login and logout, the cookie, the headers, and static files that
fetch nothing from elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from e2e_kit import Server

import ductape_jobs.api.dashboard as dashboard

STATIC = Path(dashboard.__file__).with_name("static")


def test_static_files_load_nothing_from_another_origin() -> None:
    files = [p for p in STATIC.rglob("*") if p.suffix in {".html", ".js", ".css", ".svg"}]
    assert {p.name for p in files} >= {"index.html", "login.html", "app.css", "main.js"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{path.name} refers to {urls}"


def test_login_sets_an_http_only_strict_cookie_and_logout_drops_it(server: Server) -> None:
    with httpx.Client(base_url=server.url) as c:
        page = c.get("/")
        assert page.status_code == 200 and 'name="key"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]

        wrong = c.post("/login", data={"key": "dtk_nope"})
        assert wrong.status_code == 401 and "not valid" in wrong.text and 'name="key"' in wrong.text
        assert "set-cookie" not in wrong.headers
        assert c.post("/login", data={"key": "  "}).status_code == 400
        # a key given twice (the valid one among them) is neither taken: which was meant is not known
        for twice in ([server.key, "dtk_nope"], ["dtk_nope", server.key], [server.key, server.key]):
            refused = c.post("/login", data={"key": twice})
            assert refused.status_code == 400 and "more than once" in refused.text, twice
            assert "set-cookie" not in refused.headers

        ok = c.post("/login", data={"key": server.key})
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        cookie = ok.headers["set-cookie"].lower()
        assert cookie.startswith("ductape_session=dts_") and "httponly" in cookie and "samesite=strict" in cookie
        assert server.key.lower() not in cookie  # the cookie holds a session token, never the key
        assert "path=/" in cookie and "secure" not in cookie  # plain http on loopback
        assert '<script type="module" src="static/js/main.js">' in c.get("/").text
        assert c.get("/api/v1/jobs").status_code == 200  # the cookie authenticates the API
        assert c.get("/login").status_code == 303  # already logged in

        out = c.post("/logout")
        assert out.status_code == 303 and 'ductape_session=""' in out.headers["set-cookie"]
        assert c.get("/api/v1/jobs").status_code == 401
        assert 'name="key"' in c.get("/").text


def test_static_files_are_served_with_their_types(server: Server) -> None:
    for path, kind in [
        ("/static/js/main.js", "javascript"),
        ("/static/app.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
    ]:
        answer = httpx.get(server.url + path)
        assert answer.status_code == 200 and kind in answer.headers["content-type"], path
        assert answer.headers["cache-control"] == "no-cache"
    assert httpx.get(server.url + "/static/../dashboard.py").status_code == 404
    # the pages only as / and /login serve them, with their CSP (frame-ancestors 'none'): a security probe framed
    # their copies here, which had none
    for page in ("index.html", "login.html", "INDEX.HTML", "js/../index.html", "./login.html"):
        assert httpx.get(server.url + "/static/" + page).status_code == 404, page
    for page in ("/", "/login"):
        assert "frame-ancestors 'none'" in httpx.get(server.url + page).headers["content-security-policy"]
