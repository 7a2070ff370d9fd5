"""API keys on every ``/api/v1`` route: who calls, what they may do, and what a key limited to one product (and
env) may see.

The key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the dashboard's browser instead sends
its login cookie (``ductape_session``), an opaque session token that stands for the key it was exchanged for
(``ductape_jobs.logins``). No key or a bad (unknown, wrong, revoked) one, or an ended or expired session: 401.

*Scopes* (``KeyScope``): every ``/api/v1`` route declares the one it needs with a dependency (``READ``, ``WRITE``
or ``ADMIN``); a key whose scope does not include it gets 403 naming the scope needed.

*Cross-site requests*: a request that changes state (POST, PUT, PATCH, DELETE) and is authenticated by the cookie
must be ``Content-Type: application/json`` and come from the server's own origin (its ``Origin`` header, or its
``Referer`` when there is no ``Origin``, must be this server's origin or its public URL's); otherwise 403. A
request with a bearer or ``X-API-Key`` header is not a browser's ambient credential and is not checked so.

A limited key sees only its product's schedules, runs, feature runs, stats, events and webhooks (another
product's record answers 404, as if it did not exist, so nothing leaks), may schedule, run features and start or
verify sessions only for its product (403 otherwise), and changes only its own product's job definitions (a
shared one, or another product's: 403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit

import fastapi.routing
from fastapi import Depends, HTTPException, Request
from msgspec import Struct
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.errors import NotFoundError, ValidationError
from ductape_jobs.logins import Logins
from ductape_jobs.models import ApiKey, KeyScope, LoginSession

COOKIE = "ductape_session"  # set by the dashboard's /login (api/dashboard.py): a session token, never a key
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Principal(Struct, frozen=True):
    """Who calls: the API key's record (never the key itself), and the login session when the dashboard's
    cookie authenticated the request."""

    key: ApiKey
    session: LoginSession | None = None

    @property
    def via_cookie(self) -> bool:
        return self.session is not None

    def may(self, needed: KeyScope) -> bool:
        return self.key.scope.allows(needed)

    @property
    def product_tag(self) -> str | None:
        return self.key.product_tag

    @property
    def env(self) -> str | None:
        return self.key.env

    @property
    def limited(self) -> bool:
        return self.key.product_tag is not None or self.key.env is not None

    def scope(self) -> dict[str, str | None]:
        """The ``product_tag``/``env`` filters every list and statistic of this key adds."""
        return {"product_tag": self.key.product_tag, "env": self.key.env}

    def narrowed(self, product_tag: str | None, env: str | None) -> dict[str, str | None]:
        """A list's or a statistic's ``product_tag``/``env`` filters (``None`` or empty: not given), narrowed to what
        this key sees: a limited key's product (env) is the filter; asking for another one answers 403, as
        scheduling for it does."""
        wanted = {"product_tag": product_tag or None, "env": env or None}
        for field, allowed in self.scope().items():
            if allowed is None:
                continue
            given = wanted[field]
            if given is not None and given.strip() != allowed:
                raise HTTPException(403, f"this API key only sees {field} {allowed!r}")
            wanted[field] = allowed
        return wanted

    def sees(self, product_tag: str, env: str) -> bool:
        return (self.key.product_tag is None or self.key.product_tag == product_tag) and (
            self.key.env is None or self.key.env == env
        )

    def check_visible(self, product_tag: str, env: str, kind: str, key: str) -> None:
        """``NotFoundError`` (404) for a record of a product or env this key does not see."""
        if not self.sees(product_tag, env):
            raise NotFoundError(kind, key)

    def check_may_schedule(self, request: dict[str, Any], *, at: str = "", action: str = "schedule") -> None:
        """403 when a limited key asks for another product or env (the rest is validated by the client). ``at``
        names the request in a batch (``[3]``); ``action`` is what the key was asked to do."""
        for field, allowed in (("product_tag", self.key.product_tag), ("env", self.key.env)):
            given = request.get(field)
            if allowed is not None and isinstance(given, str) and given.strip() != allowed:
                where = f"{at}: " if at else ""
                raise HTTPException(403, f"{where}this API key may only {action} for {field} {allowed!r}")

    def check_unlimited(self, what: str) -> None:
        if self.limited:
            raise HTTPException(403, f"{what} needs an API key that is not limited to a product or env")


def origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of ``url`` (default ports left out, lower case), or ``None`` if it has none."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{shown}:{port}"


def own_origins(request: Request) -> set[str]:
    """The origins this server answers as: the one the request was sent to, and the public URL's (if set)."""
    found = {origin_of(f"{request.url.scheme}://{request.url.netloc}"), request.app.state.settings.public_origin}
    return {o for o in found if o}


def check_same_origin(request: Request, *, required: bool = True) -> None:
    """403 unless the request's ``Origin`` (or, without one, its ``Referer``) is this server's origin. Without
    either header: 403 when ``required``, else allowed."""
    given = request.headers.get("origin")
    source = "Origin"
    if given is None:
        given, source = request.headers.get("referer"), "Referer"
    if given is None:
        if required:
            raise HTTPException(
                403,
                "cross-site request refused: a request authenticated by the dashboard's cookie "
                "must carry an Origin or Referer header of this server",
            )
        return
    if origin_of(given) not in own_origins(request):
        raise HTTPException(
            403, f"cross-site request refused: its {source} ({given[:100]}) is not this server's origin"
        )


def check_cookie_write(request: Request) -> None:
    """What a state-changing request authenticated by the cookie must be: JSON, from this server's origin."""
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise HTTPException(
            403,
            "a request authenticated by the dashboard's cookie that changes something must "
            f"be Content-Type: application/json, not {media or 'none'!r}",
        )
    check_same_origin(request)


def presented_key(request: Request) -> str | None:
    """The key a request's headers carry, if any: a bearer token or ``X-API-Key``."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    header = (request.headers.get("x-api-key") or "").strip()
    return header or None


async def authenticate(request: Request) -> Principal:
    """The dependency of every ``/api/v1`` route: the key of the request's header, else its login cookie."""
    key = presented_key(request)
    if key is not None:
        keys: ApiKeys = request.app.state.api_keys
        record = await run_in_threadpool(keys.verify, key)
        if record is None:
            raise HTTPException(401, "the API key is not valid (unknown or revoked)", _CHALLENGE)
        count_request(request, record.id)
        return Principal(record)
    token = request.cookies.get(COOKIE)
    if not token:
        raise HTTPException(401, "an API key is required (Authorization: Bearer <key>, or X-API-Key)", _CHALLENGE)
    logins: Logins = request.app.state.logins
    found = await run_in_threadpool(logins.find, token)
    if found is None:
        raise HTTPException(401, "the session has ended (logged out, expired, or its key revoked)", _CHALLENGE)
    if request.method not in SAFE_METHODS:
        check_cookie_write(request)
    session, record = found
    count_request(request, record.id)  # a login's requests count as its key's
    return Principal(record, session)


def count_request(request: Request, key_id: str) -> None:
    """The request counted against its key's rate (``create_app(rate_limit=...)``): 429 past it. Every ``/api/v1``
    request's (``authenticate``) and a dashboard login's (before its session is made)."""
    limit = request.app.state.rate_limit
    if limit is not None:
        limit.check(key_id)


async def still_authorized(request: Request, me: Principal) -> bool:
    """Whether ``me`` may still call (a long-lived event stream asks at every poll): its session is live, or
    its key is not revoked."""
    if me.session is not None:
        logins: Logins = request.app.state.logins
        return await run_in_threadpool(logins.still_live, me.session)
    keys: ApiKeys = request.app.state.api_keys
    record = await run_in_threadpool(keys.find, me.key.prefix)
    return record is not None and record.id == me.key.id and record.revoked_at is None


Me = Annotated[Principal, Depends(authenticate)]


def _needs(scope: KeyScope) -> Callable[..., Awaitable[Principal]]:
    async def check(request: Request, me: Me) -> Principal:
        if not me.may(scope):
            raise HTTPException(
                403,
                f"this API key has the {me.key.scope.value} scope; {request.method} {request.url.path} needs the "
                f"{scope.value} scope",
            )
        return me

    check.required_scope = scope  # type: ignore[attr-defined]
    check.__name__ = f"needs_{scope.value}_scope"
    return check


READ: Any = Depends(_needs(KeyScope.READ))
"""``dependencies=[READ]``: lists, one record, statistics, events, previews."""
WRITE: Any = Depends(_needs(KeyScope.WRITE))
"""``dependencies=[WRITE]``: scheduling and changing schedules, runs, job definitions, running features."""
ADMIN: Any = Depends(_needs(KeyScope.ADMIN))
"""``dependencies=[ADMIN]``: webhooks."""


def route_scope(route: Any) -> KeyScope | None:
    """The scope a route declares (through ``READ``, ``WRITE`` or ``ADMIN``), if any."""
    dependant = getattr(route, "dependant", None)
    for dependency in getattr(dependant, "dependencies", ()):
        scope = getattr(dependency.call, "required_scope", None)
        if isinstance(scope, KeyScope):
            return scope
    return None


def declared_scopes(routes: Sequence[BaseRoute], prefix: str) -> dict[tuple[str, str], KeyScope | None]:
    """``(METHOD, path) -> scope`` of every route under ``prefix`` (``None``: the route declares none)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI >= 0.165 nests included routers
    found: dict[tuple[str, str], KeyScope | None] = {}
    for route in flatten(routes) if flatten else routes:
        path = getattr(route, "path", None)
        if isinstance(path, str) and path.startswith(prefix):
            for method in getattr(route, "methods", None) or ():
                found[method, path] = route_scope(route)
    return found


async def known_query(request: Request, me: Me) -> None:
    """The dependency of every ``/api/v1`` route after ``authenticate``: a query parameter the route does not take is
    a ``ValidationError`` naming it (422), before anything is read or written; after a key's missing scope (its 403,
    which the route's own dependency answers). It was ignored: a filter spelt wrong
    (``GET /runs?job_tg=x``) answered every run, and ``DELETE /jobs/report?product=shop`` deleted the shared job
    where the shop's own was meant (``product_tag``)."""
    route = request.scope.get("route")
    if route is None or not request.query_params:
        return
    known = _QUERY_NAMES.get((route.path, request.method))
    if known is None:
        known = _QUERY_NAMES[route.path, request.method] = _query_names(route)
    for name in request.query_params:
        given = len(request.query_params.getlist(name))
        if name in known and given == 1:
            continue
        needed = route_scope(route)
        if needed is not None and not me.may(needed):
            return  # the route's scope dependency answers 403 first
        field = name[:100] + "…" if len(name) > 100 else name or "(a parameter with no name)"  # '?=x'
        if name in known:  # ?phase=failed&phase=completed read the last one alone
            raise ValidationError(field, f"is given {given} times; give it once")
        takes = ", ".join(sorted(known)) or "none"
        raise ValidationError(
            field, f"is not a query parameter of {request.method} {request.url.path} (it takes: {takes})"
        )


#: ``_query_names`` by route (its path and method: routes are the same in every app this process makes).
_QUERY_NAMES: dict[tuple[str, str], frozenset[str]] = {}


def _query_names(route: Any) -> frozenset[str]:
    """The query parameters ``route`` takes, its dependencies' too (by the names a URL gives them)."""
    names: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(param.alias for param in dependant.query_params)
        pending.extend(dependant.dependencies)
    return frozenset(names)
