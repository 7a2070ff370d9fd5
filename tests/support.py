"""Helpers the tests import (``from support import require_service``); tests/ is on sys.path."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from ductape_jobs.executors.notify import SmtpSettings


def require_service(name: str, host: str, port: int) -> None:
    """Skip (on a laptop without the service) or fail (under CI=true) when ``host:port`` does not answer."""
    import os
    import socket

    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        reason = f"{name} is not reachable on {host}:{port} ({exc})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; under CI every service must be up", pytrace=False)
    pytest.skip(reason)


PG_URL = os.environ.get("DUCTAPE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL on the test server (``PG_URL``) in a schema of its own, dropped afterwards; skipped without the
    server (failed under CI=true)."""
    import psycopg

    require_service("PostgreSQL", "127.0.0.1", 5432)
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?schema={schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# ------------------------------------------------------------------- a local HTTP server that records


@dataclass
class Seen:
    method: str
    target: str  # the raw request target: path and query as sent
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0


class Recorder:
    """A local HTTP server that records every request and answers with queued replies (default 200 JSON)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.replies: list[Reply] = []
        self.on_request: Callable[[Seen], None] | None = None  # called with each request before it is answered
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder.seen.append(Seen(self.command, self.path, headers, body))
                if recorder.on_request is not None:
                    recorder.on_request(recorder.seen[-1])
                reply = recorder.replies.pop(0) if recorder.replies else Reply()
                time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and went away

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def reply(self, status: int = 200, body: bytes | str | Any = b'{"ok": true}', **kw: Any) -> None:
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        self.replies.append(Reply(status, body.encode() if isinstance(body, str) else body, **kw))

    @property
    def last(self) -> Seen:
        return self.seen[-1]


# ------------------------------------------------------------------------------- a local SMTP server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------------------------------------- SMTP server


class Mailbox:
    """aiosmtpd handler: keeps delivered envelopes; recipients starting with "bad" get 550, "later" 450."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("bad"):
            return "550 5.1.1 no such user"
        if address.startswith("later"):
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK queued"

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)

    def message(self, index: int = -1) -> EmailMessage:
        content = self.envelopes[index].original_content
        assert content is not None
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Smtp:
    mailbox: Mailbox
    port: int

    def settings(self, **kw: Any) -> SmtpSettings:
        return SmtpSettings(**{"host": "127.0.0.1", "port": self.port, "sender": "Jobs <jobs@example.com>", **kw})


def start_smtp(**kw: Any) -> tuple[Controller, Smtp]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    return controller, Smtp(mailbox, port)


# ------------------------------------------------------------------- spans (the otel extra's SDK, in memory)

_EXPORTER: list[Any] = []


def span_exporter() -> Any:
    """The process's ``InMemorySpanExporter``, behind the SDK's global ``TracerProvider`` (set once: OpenTelemetry
    allows one per process); cleared by each caller."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if not _EXPORTER:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _EXPORTER.append(exporter)
    _EXPORTER[0].clear()
    return _EXPORTER[0]


def recorded_batches(dt: Any) -> list[set[str]]:
    """The run ids of each batch of outcomes ``dt``'s worker records (``finish_and_acquire``), in order, from now on
    (the store's method is wrapped in place)."""
    batches: list[set[str]] = []
    real = dt.store.finish_and_acquire

    def spy(outcomes: Any, *args: Any) -> Any:
        batches.append({o.run_id for o in outcomes})
        return real(outcomes, *args)

    dt.store.finish_and_acquire = spy
    return batches
