"""``ductape serve``: the engine and the HTTP API (and the dashboard) in one process."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Annotated, Any

import typer

from ductape_jobs import logs
from ductape_jobs.cli.common import (
    AppOpt,
    StoreOpt,
    WebhookAllowOpt,
    allow_webhooks_to,
    check_networks,
    client,
    fail,
    store_label,
)
from ductape_jobs.client import Ductape

log = logging.getLogger("ductape_jobs.serve")

HostOpt = Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: every one).")]
PortOpt = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]


def run_server(dt: Ductape, host: str, port: int, *, worker: bool = True, metrics_auth: bool = False) -> None:
    """Serve until SIGTERM/SIGINT (needs the api extra)."""
    try:
        from ductape_jobs.api.server import serve as serve_api
    except ImportError as exc:
        raise fail(f"ductape serve needs the api extra: pip install 'ductape-jobs[api]' ({exc})", 1) from exc
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    log.info("store %s; functions: %s", store_label(dt), ", ".join(dt.functions.tags()) or "none (start with --app)")
    log.info(
        "serving http://%s:%d (dashboard /, API /api/v1, docs /docs, metrics /metrics)%s",
        shown,
        port,
        "" if worker else "; no worker in this process",
    )
    done = asyncio.run(serve_api(dt, host=host, port=port, worker=worker, metrics_auth=metrics_auth))
    if done is not None and done.abandoned:
        log.warning("exiting with %d run(s) still executing in threads (released to other workers)", done.abandoned)
        logging.shutdown()
        os._exit(0)


def serve(
    app_: AppOpt = None,
    store: StoreOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Serve the API only (workers run elsewhere).")] = False,
    metrics_auth: Annotated[bool, typer.Option("--metrics-auth", help="/metrics needs an API key too.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log only warnings and errors.")] = False,
    webhook_allow: WebhookAllowOpt = None,
) -> None:
    """Run the engine (unless --no-worker) and the HTTP API with its dashboard: http://HOST:PORT/ (API at /api/v1,
    docs at /docs). Create a key with `ductape apikey create --name NAME`."""
    logs.setup(logging.WARNING if quiet else logging.INFO)
    settings: dict[str, Any] = {}
    check_networks(webhook_allow)
    with client(store, app_, **settings) as dt:
        allow_webhooks_to(dt, webhook_allow)
        run_server(dt, host, port, worker=not no_worker, metrics_auth=metrics_auth)
