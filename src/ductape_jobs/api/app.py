"""``create_app(ductape)``: the HTTP API (``/api/v1``, documented at ``/docs``), ``/metrics``, ``/healthz``,
``/readyz`` and the dashboard, on a ``Ductape`` client. ``ductape serve`` runs it under uvicorn with a worker.

Routes go through the client (``ductape.job``, ``ductape.webhooks``) and the store's API methods, never SQL.
Errors answer as the Python API raises them: ``ValidationError`` -> 422 ``{"detail": [{field, rule,
message}]}`` (FastAPI's own request checks take the same shape; nothing is written), ``NotFoundError`` ->
404, ``ConflictError`` -> 409, a failing store -> 503.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from msgspec import Struct

from ductape_jobs._version import __version__
from ductape_jobs.api import (
    docs_page,
    events,
    features,
    jobs,
    me,
    ops,
    resources,
    runs,
    schedules,
    sessions,
    stats,
    webhooks,
)
from ductape_jobs.api.auth import authenticate, declared_scopes, known_query, origin_of
from ductape_jobs.api.common import (
    BodyLimit,
    add_body_schemas,
    on_ductape_error,
    on_request_validation,
)
from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.client import Ductape
from ductape_jobs.errors import DuctapeError, ValidationError
from ductape_jobs.extras import require
from ductape_jobs.logins import DEFAULT_LIFETIME, Logins

if TYPE_CHECKING:
    from ductape_jobs.api.ratelimit import RateLimit
    from ductape_jobs.resources import Rate

API_PREFIX = "/api/v1"
DESCRIPTION = """The HTTP API of ductape-jobs: job definitions, scheduling (one or a batch), schedule control,
run history, features, session tokens, statistics, live events and lifecycle webhooks.

Every `/api/v1` route needs an API key (`ductape apikey create --name NAME [--scope read|write|admin]`), sent as
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Each route needs a scope (`x-required-scope`: `read` for
reads, `write` for changes, `admin` for webhooks; `admin` includes `write`, which includes `read`); a key without
it gets 403. A key limited to a product sees only that product.
Bad input answers 422 with `{"detail": [{"field", "rule", "message"}]}` and writes nothing."""


MAX_LEASE_SECONDS = 86_400  # a stream's lease: a day at most


class ApiSettings(Struct, frozen=True):
    metrics_auth: bool = False
    events_poll: float = 1.0
    events_keepalive: float = 15.0
    public_origin: str | None = None  # the origin of --public-url: accepted as same-origin, https -> Secure
    events_lease: float = 30.0  # seconds a live stream's place in the outbox is kept (api/events.py)


def create_app(
    ductape: Ductape,
    *,
    metrics_auth: bool = False,
    dashboard: bool = True,
    events_poll: float = 1.0,
    events_keepalive: float = 15.0,
    events_lease: float = 30.0,
    public_url: str | None = None,
    session_lifetime: timedelta = DEFAULT_LIFETIME,
    metrics_from: str = "process",
    metrics_lease: float = 300.0,
    rate_limit: Rate | str | None = None,
) -> Any:
    """The ASGI app (a ``FastAPI``) serving ``ductape``. ``metrics_auth``: ``/metrics`` needs an API key too.
    ``events_poll``/``events_keepalive``: seconds between the event stream's looks at the store, and between
    its keep-alive comments. ``events_lease``: seconds a stream's place in the outbox is kept after its last
    renewal (renewed every third of it; a browser reconnecting within it resumes). ``public_url``: where
    browsers reach the server (``https://jobs.example.com``) when a proxy stands in front: its origin counts as
    this server's for the cookie's same-origin rule, and an ``https`` one makes the login cookie ``Secure``.
    ``session_lifetime``: how long a dashboard login lasts. ``metrics_from``: ``process`` (the runs' series count
    what this process's workers do) or ``store`` (they count every run, from the store's outbox, read at each
    scrape through a live stream kept for ``metrics_lease`` seconds after the last scrape; api/ops.py).
    ``rate_limit``: at most so many requests of one API key in a window of whole seconds (``"100/s"``, ``"600/min"``;
    429 past it, ``api/ratelimit.py``); ``None``: no limit."""
    for name, seconds in (("events_lease", events_lease), ("metrics_lease", metrics_lease)):
        if not (isinstance(seconds, int | float) and 0 < seconds <= MAX_LEASE_SECONDS):
            raise ValidationError(name, f"must be a number of seconds above 0 and at most {MAX_LEASE_SECONDS}")
    limiter = None if rate_limit is None else _rate_limit(rate_limit)
    public_origin = origin_of(public_url) if public_url else None
    if public_url and public_origin is None:
        raise ValidationError("public_url", f"must be an http:// or https:// URL with a host, not {public_url!r}")
    app = FastAPI(
        title="ductape-jobs",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # /docs: api/docs_page.py (its scripts pinned and checked)
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.rate_limit = limiter
    app.state.ductape = ductape
    app.state.api_keys = ApiKeys(ductape.store, ductape.clock)
    app.state.logins = Logins(ductape.store, ductape.clock, app.state.api_keys, session_lifetime)
    app.state.metrics, app.state.metrics_feed = ops.metrics_for(ductape, metrics_from, timedelta(seconds=metrics_lease))
    app.state.settings = ApiSettings(metrics_auth, events_poll, events_keepalive, public_origin, events_lease)
    app.state.stopping = threading.Event()  # set when the server stops: event streams end
    app.state.open_streams = events.OpenStreams()  # 429 past limits.MAX_STREAMS (MAX_STREAMS_PER_KEY a key)
    app.state.forecasts = stats.Forecasts()  # one made at a time, each kept 30 s

    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authenticate), Depends(known_query)])
    for module in (jobs, schedules, runs, stats, events, webhooks, features, sessions, me, resources):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(ops.router)
    app.include_router(docs_page.router)
    app.add_middleware(BodyLimit)  # 413 over limits.MAX_BODY_BYTES, before any route reads the body
    app.add_exception_handler(DuctapeError, on_ductape_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)

    if dashboard:  # the page at /, its files at /static, /login and /logout (api/dashboard.py)
        from ductape_jobs.api.dashboard import add_dashboard

        add_dashboard(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            scopes = {
                (path, method.lower()): scope
                for (method, path), scope in declared_scopes(app.routes, API_PREFIX).items()
            }
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            add_body_schemas(schema)
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            for path, operations in schema.get("paths", {}).items():
                if path.startswith(API_PREFIX):
                    for method, operation in operations.items():
                        operation["security"] = [{"bearer": []}, {"apiKey": []}]
                        if scope := scopes.get((path, method)):
                            operation["x-required-scope"] = scope.value
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _rate_limit(rate: Rate | str) -> RateLimit:
    require("limits", "api", "a rate limit (--rate-limit)")  # an install of the api extra before it had none
    from ductape_jobs.api.ratelimit import RateLimit  # the limits library loads only where a limit is set

    return RateLimit(rate)
