"""What the API tests share: the app served by a real uvicorn on a free port (in a thread), clients with keys."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from ductape_jobs import Ductape
from ductape_jobs.api import create_app
from ductape_jobs.apikeys import ApiKeys
from support import free_port

JOB = {"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"}
SHOP = {"env": "prd", "product_tag": "shop", "event": "report"}
BLOG = {"env": "prd", "product_tag": "blog", "event": "report"}


class LiveServer:
    """``app`` under uvicorn on 127.0.0.1:<free port>, in a background thread, until ``stop()``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            ws="none",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.app.state.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Api:
    """The running server, the client it serves, and a way to make HTTP clients with keys."""

    server: LiveServer
    dt: Ductape
    keys: ApiKeys
    admin_key: str
    clients: list[httpx.Client]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        """An HTTP client on the server; ``key`` as a bearer token (the admin key by default; ``""``: none)."""
        given = self.admin_key if key is None else key
        sent = {**({"Authorization": f"Bearer {given}"} if given else {}), **headers}
        c = httpx.Client(base_url=self.url + "/api/v1", headers=sent, timeout=10)
        self.clients.append(c)
        return c

    def key(self, name: str = "k", **scope: Any) -> str:
        return self.keys.create(name, **scope).key

    def raw(self) -> httpx.Client:
        """A client on the server's root (``/healthz``, ``/metrics``, ``/docs``), without a key."""
        c = httpx.Client(base_url=self.url, timeout=10)
        self.clients.append(c)
        return c


@contextmanager
def served(dt: Ductape, **options: Any) -> Iterator[Api]:
    """``create_app(dt, **options)`` on a live server, with an admin key; after: its clients closed, the server
    stopped."""
    keys = ApiKeys(dt.store, dt.clock)
    server = LiveServer(create_app(dt, **options)).start()
    made = Api(server, dt, keys, keys.create("admin").key, [])
    try:
        yield made
    finally:
        for c in made.clients:
            c.close()
        server.stop()


def problems(response: httpx.Response) -> list[tuple[str, str]]:
    """The (field, rule) pairs of a 422, after checking its shape."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    for item in detail:
        assert set(item) == {"field", "rule", "message"}
        assert item["message"] == f"{item['field']}: {item['rule']}"
    return [(item["field"], item["rule"]) for item in detail]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "a condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
