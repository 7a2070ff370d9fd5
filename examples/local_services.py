"""What the seed examples share: the store they run on, and local stand-ins for the services that a product's
events reach: an HTTP server that records every request (apps' actions, push and SMS providers, callbacks) and
an SMTP server that keeps every message (aiosmtpd, from the ``dev`` extra). Both listen on 127.0.0.1, on a
free port, for as long as their ``with`` block lasts."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def store_url() -> str:
    """``$DUCTAPE_STORE`` (give a fresh store: the examples create their jobs), else a new temporary file."""
    given = os.environ.get("DUCTAPE_STORE")
    if given:
        return given
    folder = tempfile.mkdtemp(prefix="ductape-example-")
    return f"sqlite:///{folder}/jobs.db"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class HttpRecorder:
    """An HTTP server that answers every request ``200 {"ok": true}`` and records it in ``requests``."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                requests.append(Request(self.command, self.path, headers, body))
                reply = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> HttpRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Keep:
    def __init__(self, messages: list[EmailMessage]) -> None:
        self.messages = messages

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


class MailServer:
    """An SMTP server that accepts every message and keeps it, parsed, in ``messages``."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller  # the dev extra: pip install -e '.[dev]'

        self.messages: list[EmailMessage] = []
        self.port = _free_port()
        self._controller = Controller(_Keep(self.messages), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> MailServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
