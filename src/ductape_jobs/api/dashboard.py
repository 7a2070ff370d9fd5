"""The dashboard: a single page (static HTML, CSS and JavaScript modules; no build step, nothing fetched from
elsewhere) served by the API's app at ``/`` and ``/static``, and the cookie login the browser uses.

``POST /login`` takes the form field ``key`` (given once), checks it as the API checks keys, and exchanges it for a
login session (``ductape_jobs.logins``: random, server-side, 12 hours by default): the cookie (``ductape_session``;
HttpOnly, SameSite=Strict, the dashboard's path, and Secure over https or with an https public URL) holds the
session's token, never the key. The API accepts the cookie as it accepts ``Authorization: Bearer``, so the
page's ``fetch()`` and ``EventSource`` calls to ``api/v1`` are authenticated (an ``EventSource`` cannot send
headers); what the page sends to change something must be JSON from this origin (``api/auth.py``). A wrong key
gets the login form again with an error. ``POST /logout`` deletes the session in the store and drops the cookie.
Both refuse (403) a form posted from another origin.

Mounted under a prefix (``app.mount("/jobs", create_app(...))``) all of it moves there: the pages refer to their
files, the API and each other relative to themselves, and the redirects and the cookie's path are the mount's.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from ductape_jobs.api.auth import COOKIE, check_same_origin, count_request
from ductape_jobs.logins import Logins

STATIC_DIR = Path(__file__).with_name("static")
MAX_FORM_BYTES = 8192
# Everything comes from this origin; scripts only from files (no inline code), frames refused.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class _StaticFiles(StaticFiles):
    """Static files that browsers revalidate (ETag) instead of caching blindly, so an upgrade shows at once. The
    pages are not among them: ``/`` and ``/login`` serve them with ``PAGE_HEADERS`` (their copies here had none: no
    CSP, so no ``frame-ancestors 'none'``)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.lower().endswith((".html", ".htm")):
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def _page(name: str, *, status_code: int = 200, error: str | None = None) -> HTMLResponse:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    if error:
        notice = f'<p class="form-error" role="alert" id="login-error">{html.escape(error)}</p>'
        text = text.replace("<!--error-->", notice, 1).replace(
            'aria-describedby="key-help"', 'aria-describedby="login-error key-help" aria-invalid="true"', 1
        )
    return HTMLResponse(text, status_code=status_code, headers=PAGE_HEADERS)


def _login_form(error: str | None = None, status_code: int = 200) -> HTMLResponse:
    return _page("login.html", status_code=status_code, error=error)


async def _form_keys(request: Request) -> list[str]:
    """The values of the ``key`` field of an urlencoded form, read without python-multipart (a login form is tiny):
    none for a form past ``MAX_FORM_BYTES`` or a client gone before it sent it."""
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        return []
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return []
    except ClientDisconnect:  # gone before its form was sent: nobody reads the answer (not an error logged)
        return []
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).get("key", [])


def _logins(request: Request) -> Logins:
    logins: Logins = request.app.state.logins
    return logins


def _secure(request: Request) -> bool:
    """Whether the cookie is ``Secure``: the request came over https, or the public URL is https."""
    public: str | None = request.app.state.settings.public_origin
    return request.url.scheme == "https" or (public or "").startswith("https://")


def _root(request: Request) -> str:
    """The dashboard's own path: ``/``, or ``/jobs/`` when its app is mounted at ``/jobs`` (or served behind a proxy
    with that root path). The pages refer to everything relative to it."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + "/"


def dashboard_router() -> APIRouter:
    """``/`` (the page, or the login form without a live session), ``/login`` and ``/logout``."""
    router = APIRouter(include_in_schema=False)

    async def logged_in(request: Request) -> bool:
        token = request.cookies.get(COOKIE)
        return bool(token) and await run_in_threadpool(_logins(request).find, token) is not None

    @router.get("/")
    async def index(request: Request) -> Response:
        if await logged_in(request):
            return _page("index.html")
        return _login_form()

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        if await logged_in(request):
            return RedirectResponse(_root(request), status_code=303)
        return _login_form()

    @router.post("/login")
    async def login(request: Request) -> Response:
        check_same_origin(request, required=False)
        keys = await _form_keys(request)
        if len(keys) > 1:  # which was meant is not known: none is tried (as a query parameter given twice)
            return _login_form("Enter one API key (the form gave key more than once).", status_code=400)
        key = keys[0].strip() if keys else ""
        if not key:
            return _login_form("Enter an API key.", status_code=400)
        logins = _logins(request)
        # 429 past the key's rate, before a session is made
        made = await run_in_threadpool(logins.start, key, lambda record: count_request(request, record.id))
        if made is None:
            return _login_form("That API key is not valid (unknown or revoked).", status_code=401)
        response = RedirectResponse(_root(request), status_code=303)
        response.set_cookie(
            COOKIE,
            made.token,
            max_age=int(logins.lifetime.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path=_root(request),
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        check_same_origin(request, required=False)
        await run_in_threadpool(_logins(request).end, request.cookies.get(COOKIE))
        response = RedirectResponse(_root(request), status_code=303)
        response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=_secure(request), path=_root(request))
        return response

    return router


def add_dashboard(app: FastAPI) -> None:
    """Serve the dashboard from the API's ``app``: the page at ``/``, its files at ``/static``, ``/login`` and
    ``/logout`` (under the app's root path when it is mounted). Keys and sessions are checked with
    ``app.state.logins``, as the API's routes check them."""
    app.include_router(dashboard_router())
    app.mount("/static", _StaticFiles(directory=STATIC_DIR), name="dashboard-static")
