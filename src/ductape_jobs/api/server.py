"""``ductape serve``: the engine (a worker, unless ``worker=False``) and the HTTP API under uvicorn, in one
process and one event loop. SIGTERM/SIGINT stop both: the server stops accepting, event streams end, and the
worker lets in-flight runs finish within its ``shutdown_grace``. Without a worker the process still sends
the webhook deliveries and stores the product file's edited resources (``Ductape.run_services``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import uvicorn

from ductape_jobs.api.app import create_app
from ductape_jobs.client import Ductape
from ductape_jobs.engine.worker import Worker
from ductape_jobs.logins import DEFAULT_LIFETIME
from ductape_jobs.logs import logger

log = logger("ductape_jobs.serve")


class _Server(uvicorn.Server):
    """uvicorn's server whose signal handling also stops the worker, and does not re-raise the signal after."""

    def __init__(self, config: uvicorn.Config, on_exit: Any) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(sig, self._signalled, sig)
                installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _signalled(self, sig: signal.Signals) -> None:
        if self.should_exit:  # a second: the worker gives its runs in flight back now
            log.warning("received %s again: giving the runs in flight back to the queue now", sig.name)
            if sig == signal.SIGINT:
                self.force_exit = True
        else:
            log.info("received %s: stopping", sig.name)
        self.should_exit = True
        self._on_exit()


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` as uvicorn binds one (``SO_REUSEADDR``): ``serve`` listens on it, so that a
    port in use is an ``OSError`` here, before the worker or anything else starts."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


async def serve(
    dt: Ductape,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    sock: socket.socket | None = None,
    worker: bool = True,
    metrics_auth: bool = False,
    public_url: str | None = None,
    session_lifetime: timedelta = DEFAULT_LIFETIME,
    metrics_from: str = "process",
    rate_limit: str | None = None,
    **worker_options: Any,
) -> Worker | None:
    """Serve ``dt``'s API on ``host:port`` (or on ``sock``, bound by ``listen_socket``) with a worker alongside,
    until a signal; returns the worker. ``public_url``, ``session_lifetime``, ``metrics_from`` and ``rate_limit`` go
    to ``create_app``."""
    app = create_app(
        dt,
        metrics_auth=metrics_auth,
        public_url=public_url,
        session_lifetime=session_lifetime,
        metrics_from=metrics_from,
        rate_limit=rate_limit,
    )
    stop = asyncio.Event()
    hurry = asyncio.Event()  # a second signal: the worker's runs in flight go back to the queue at once

    def stopping() -> None:
        stop.set()
        app.state.stopping.set()

    def signalled() -> None:
        if stop.is_set():
            hurry.set()
        stopping()

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our logging (ductape_jobs.logs) formats uvicorn's lines too
        timeout_graceful_shutdown=10,
        server_header=False,
        ws="none",  # the dashboard's live updates are Server-Sent Events
    )
    server = _Server(config, signalled)
    if worker:
        engine: asyncio.Task[Any] = asyncio.create_task(
            dt.run_worker(stop, hurry=hurry, **worker_options), name="ductape-worker"
        )
    else:
        engine = asyncio.create_task(dt.run_services(stop), name="ductape-services")

    def engine_ended(task: asyncio.Task[Any]) -> None:
        if not stop.is_set():  # the worker died: stop serving rather than pretend
            log.error("the engine stopped unexpectedly; stopping the server")
            server.should_exit = True

    engine.add_done_callback(engine_ended)
    try:
        await server.serve(sockets=None if sock is None else [sock])
    finally:
        stopping()
        try:
            with server.capture_signals():  # uvicorn's ended with the server: a signal now hurries the worker
                result = await engine
        finally:  # the executors' connections belong to this event loop: closed before it ends
            await dt.executors.aclose()
    return result if isinstance(result, Worker) else None
