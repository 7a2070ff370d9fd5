"""The client owns what it opens: ``with Ductape(...)`` / ``async with AsyncDuctape(...)`` close the store's
connections (counted on the PostgreSQL server), the executors' HTTP clients (counted as this process's TCP
connections to a keep-alive server) and database pools; each blocking call's event loop closes its own
connections, so none is reused by the next ``asyncio.run``; nothing waits for ``atexit``."""

from __future__ import annotations

import ast
import asyncio
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

import ductape_jobs
from ductape_jobs import AsyncDuctape, Ductape, FakeClock, RunningLoopError, ValidationError
from ductape_jobs.products import Products

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from storekit import PG_URL, pg_admin, require_postgres, with_query


def _wait_for(what: str, cond: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_url() -> Iterator[tuple[str, str]]:
    """A fresh schema, and a URL whose connections carry a unique ``application_name`` to count them by."""
    require_postgres()
    name = f"own_{secrets.token_hex(6)}"
    pg_admin(f"CREATE SCHEMA {name}")
    try:
        yield with_query(PG_URL, schema=name, application_name=name, pool_min=2), name
    finally:
        pg_admin(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _server_connections(name: str) -> int:
    rows = pg_admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name])
    return int(rows[0][0])


def test_with_ductape_closes_its_postgres_pool_on_the_server(pg_url: tuple[str, str]) -> None:
    url, name = pg_url
    with Ductape(url, clock=FakeClock()) as dt:
        dt.job.create({"name": "n", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
        dt.function("noop")(lambda input, ctx: None)
        dt.job.schedule({"event": "noop", "env": "dev", "product_tag": "any"})
        assert dt.drain().completed == 1
        assert _server_connections(name) >= 2  # pool_min=2: the pool is really open
    _wait_for("the server to see the pool's connections end", lambda: _server_connections(name) == 0)


def test_async_with_closes_its_postgres_pool_on_the_server(pg_url: tuple[str, str]) -> None:
    url, name = pg_url

    async def main() -> None:
        async with AsyncDuctape(url, clock=FakeClock()) as dt:
            await dt.job.create({"name": "n", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
            assert _server_connections(name) >= 2

    asyncio.run(main())
    _wait_for("the server to see the pool's connections end", lambda: _server_connections(name) == 0)


def test_a_client_that_fails_to_start_closes_the_store_it_opened(pg_url: tuple[str, str], tmp_path: Path) -> None:
    url, name = pg_url
    with pytest.raises(ValidationError, match="product_file: cannot read"):
        Ductape(url, product_file=str(tmp_path / "missing.yaml"))
    _wait_for("the server to see the pool's connections end", lambda: _server_connections(name) == 0)


# ------------------------------------------------------------------------------------------- HTTP clients


class KeepAlive:
    """An HTTP/1.1 server that keeps connections open (as real APIs do), so a pooled client would reuse one."""

    def __init__(self) -> None:
        self.slow_arrived = threading.Event()  # a request to /slow came, and waits for slow_release
        self.slow_release = threading.Event()
        keep = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/slow":
                    keep.slow_arrived.set()
                    keep.slow_release.wait(10)
                body = json.dumps({"ok": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def open_from_here(self) -> int:
        """This process's established TCP connections to the server (the client's side of each)."""
        own = psutil.Process().net_connections(kind="tcp")
        return sum(1 for c in own if c.raddr and c.raddr[1] == self.port and c.status == psutil.CONN_ESTABLISHED)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[KeepAlive]:
    server = KeepAlive()
    yield server
    server.stop()


def _shop(url: str) -> Products:
    actions = {"ping": {"method": "GET", "path": "/ping"}, "slow": {"method": "GET", "path": "/slow"}}
    app = {"actions": actions, "envs": {"dev": {"base_url": url}}}
    return Products([{"tag": "shop", "envs": {"dev": {}}, "apps": {"api": app}}])  # type: ignore[list-item]


def _schedule_ping(dt: Ductape) -> None:
    dt.job.schedule({"event": "ping", "env": "dev", "product_tag": "shop"})


def test_each_drain_closes_its_http_client_and_the_next_drain_opens_its_own(api: KeepAlive, tmp_path: Path) -> None:
    with Ductape(
        f"sqlite:///{tmp_path / 'j.db'}", clock=FakeClock(), products=_shop(f"http://127.0.0.1:{api.port}")
    ) as dt:
        dt.job.create({"name": "p", "tag": "ping", "event_type": "ACTION", "event_tag": "api:ping"})
        for _ in range(3):  # a client kept from the last drain's (closed) event loop would fail here
            _schedule_ping(dt)
            assert dt.drain().completed == 1
            assert not dt.executors.open
            _wait_for("the client's connection to close", lambda: api.open_from_here() == 0)
        assert {r.phase.value for r in dt.job.runs()} == {"completed"}


def test_async_ductape_closes_the_executors_it_used_when_it_exits(api: KeepAlive, tmp_path: Path) -> None:
    async def main() -> None:
        products = _shop(f"http://127.0.0.1:{api.port}")
        async with AsyncDuctape(f"sqlite:///{tmp_path / 'j.db'}", clock=FakeClock(), products=products) as dt:
            await dt.job.create({"name": "p", "tag": "ping", "event_type": "ACTION", "event_tag": "api:ping"})
            await dt.job.schedule({"event": "ping", "env": "dev", "product_tag": "shop"})
            assert (await dt.drain()).completed == 1
            assert dt.sync.executors.open and api.open_from_here() == 1  # kept alive while the client lives
        assert not dt.sync.executors.open
        await asyncio.to_thread(_wait_for, "the connection to close", lambda: api.open_from_here() == 0)

    asyncio.run(main())


# ------------------------------------------------------------------------------------------- event loops


def test_blocking_calls_inside_a_running_loop_say_to_use_async_ductape(tmp_path: Path) -> None:
    dt = Ductape(f"sqlite:///{tmp_path / 'j.db'}", clock=FakeClock())

    async def inside() -> None:
        for call, name in ((dt.drain, "drain"), (lambda: dt.feature.run("f", env="dev", product_tag="p"), "run")):
            with pytest.raises(RunningLoopError, match=rf"use AsyncDuctape \(await ductape\.(feature\.)?{name}\(\)\)"):
                call()

    asyncio.run(inside())
    dt.close()
    dt.close()  # closing twice is harmless


def test_two_drains_at_once_in_two_threads_each_use_and_close_their_own_http_client(
    api: KeepAlive, tmp_path: Path
) -> None:
    """Each thread's ``drain()`` runs its own event loop: it gets its own HTTP client, and closing it when that
    drain ends leaves the other thread's request in flight untouched."""
    with Ductape(
        f"sqlite:///{tmp_path / 'j.db'}", clock=FakeClock(), products=_shop(f"http://127.0.0.1:{api.port}")
    ) as dt:
        dt.job.create({"name": "p", "tag": "ping", "event_type": "ACTION", "event_tag": "api:ping"})
        dt.job.create({"name": "s", "tag": "slow", "event_type": "ACTION", "event_tag": "api:slow"})
        dt.job.schedule({"event": "slow", "env": "dev", "product_tag": "shop"})
        drained: dict[str, int] = {}
        first = threading.Thread(target=lambda: drained.update(first=dt.drain().completed))
        first.start()
        assert api.slow_arrived.wait(10)  # the first drain's request is in flight, in its own loop
        _schedule_ping(dt)
        second = threading.Thread(target=lambda: drained.update(second=dt.drain().completed))
        second.start()
        second.join(timeout=10)  # it ran the ping, then closed its loop's client
        api.slow_release.set()
        first.join(timeout=10)
        assert drained == {"first": 1, "second": 1}
        assert {r.job_tag: r.phase.value for r in dt.job.runs()} == {"slow": "completed", "ping": "completed"}
        assert not dt.executors.open


def test_nothing_is_left_to_atexit() -> None:
    package = Path(ductape_jobs.__file__).parent
    users = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if any(
            isinstance(node, ast.Import | ast.ImportFrom)
            and "atexit" in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module])
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]
    assert users == []
