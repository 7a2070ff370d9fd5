"""``ductape serve``: the engine and the HTTP API (and the dashboard) in one process."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from ductape_jobs import logs
from ductape_jobs.cli.common import (
    AppOpt,
    StoreOpt,
    WebhookAllowOpt,
    allow_webhooks_to,
    check_networks,
    client,
    decimal_between,
    fail,
    flag,
    integer,
    log_started,
    user_errors,
)
from ductape_jobs.client import Ductape
from ductape_jobs.extras import require, require_extra
from ductape_jobs.logs import logger

log = logger("ductape_jobs.serve")


class MetricsFrom(StrEnum):
    """``--metrics-from``: create_app's ``metrics_from`` (api/ops.py)."""

    process = "process"
    store = "store"


HostOpt = Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: every one).")]


def port(value: str | int) -> int:
    """``--port``: a whole number (``integer``'s digits) from 1 to 65535."""
    number = integer(value)
    if not 1 <= number <= 65535:
        raise typer.BadParameter(f"{number} is not a port: from 1 to 65535")
    return number


PortOpt = Annotated[int, typer.Option(parser=port, help="Port to listen on.")]


def need_api() -> None:
    """Exit with one line naming the api extra when FastAPI, uvicorn or prometheus-client is missing."""
    require_extra("api", "`ductape serve`", error=lambda message: fail(message, 1))


def run_server(
    dt: Ductape,
    host: str,
    port: int,
    *,
    worker: bool = True,
    metrics_auth: bool = False,
    public_url: str | None = None,
    session_hours: float = 12.0,
    metrics_from: str = "process",
    rate_limit: str | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (needs the api extra)."""
    need_api()
    from ductape_jobs.api.server import listen_socket
    from ductape_jobs.api.server import serve as serve_api

    try:  # before anything starts: a port in use is one line, not a worker started and stopped
        sock = listen_socket(host, port)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1) from None
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    log_started(dt, worker=worker)
    log.info(
        "serving http://%s:%d (dashboard /, API /api/v1, docs /docs, metrics /metrics)%s",
        shown,
        port,
        "" if worker else "; no worker in this process",
    )
    if public_url:
        log.info("public URL %s (the dashboard's cookie is Secure when it is https)", public_url)
    done = asyncio.run(
        serve_api(
            dt,
            host=host,
            port=port,
            sock=sock,
            worker=worker,
            metrics_auth=metrics_auth,
            public_url=public_url,
            session_lifetime=timedelta(hours=session_hours),
            metrics_from=metrics_from,
            rate_limit=rate_limit,
        )
    )
    if done is not None and done.abandoned:
        log.warning("exiting with %d run(s) still executing in threads (released to other workers)", done.abandoned)
        logging.shutdown()
        os._exit(0)


def serve(
    app_: AppOpt = None,
    store: StoreOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    no_worker: Annotated[bool, flag("--no-worker", help="Serve the API only (workers run elsewhere).")] = False,
    metrics_auth: Annotated[bool, flag("--metrics-auth", help="/metrics needs an API key too.")] = False,
    metrics_from: Annotated[
        MetricsFrom,
        typer.Option(
            "--metrics-from",
            help="Where /metrics' run series come from: this process's workers (process), or every worker's runs "
            "as the store's outbox records them (store; use it with --no-worker).",
        ),
    ] = MetricsFrom.process,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Where browsers reach the server (https://jobs.example.com behind a proxy): the dashboard's "
            "same-origin check accepts it, and an https URL makes the login cookie Secure.",
        ),
    ] = None,
    session_hours: Annotated[
        float,
        typer.Option(
            "--session-hours", parser=decimal_between(0.02, 720), help="How long a dashboard login lasts (hours)."
        ),
    ] = 12.0,
    rate_limit: Annotated[
        str | None,
        typer.Option(
            "--rate-limit",
            metavar="RATE",
            help="At most so many requests of one API key (a dashboard login counts as its key) in a window of "
            "whole seconds, e.g. 100/s or 600/min; past it, 429 with Retry-After. Counted by each server process.",
        ),
    ] = None,
    quiet: Annotated[bool, flag("--quiet", "-q", help="Log only warnings and errors.")] = False,
    webhook_allow: WebhookAllowOpt = None,
) -> None:
    """Run the engine (unless --no-worker) and the HTTP API with its dashboard: http://HOST:PORT/ (API at /api/v1,
    docs at /docs). Create a key with `ductape apikey create --name NAME`."""
    need_api()  # before the store is opened
    if rate_limit is not None:
        require("limits", "api", "`ductape serve --rate-limit`", error=lambda message: fail(message, 1))
        from ductape_jobs.api.ratelimit import RateLimit

        with user_errors():
            RateLimit(rate_limit)  # a bad rate: exit 2 before anything is opened
    logs.setup(logging.WARNING if quiet else logging.INFO)
    if public_url is not None:
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise fail(f"--public-url must be an http:// or https:// URL with a host, not {public_url!r}", 2)
    settings: dict[str, Any] = {}
    check_networks(webhook_allow)
    with client(store, app_, creates=True, **settings) as dt:
        allow_webhooks_to(dt, webhook_allow)
        run_server(
            dt,
            host,
            port,
            worker=not no_worker,
            metrics_auth=metrics_auth,
            public_url=public_url,
            session_hours=session_hours,
            metrics_from=metrics_from.value,
            rate_limit=rate_limit,
        )
