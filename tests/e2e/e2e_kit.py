"""What the dashboard's browser tests share: the app module the server loads, the running server, the page."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ductape_jobs import Ductape

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
PRODUCT = {"env": "prd", "product_tag": "shop"}

APP_MODULE = """
    import os
    from pathlib import Path

    from ductape_jobs import Ductape

    ductape = Ductape(os.environ["DUCTAPE_STORE"])
    HEALED = Path(__file__).with_name("healed")


    @ductape.function("ok")
    def ok(input, ctx):
        return {"ok": True, "attempt": ctx.attempt}


    @ductape.function("flaky")
    def flaky(input, ctx):
        if not HEALED.exists():
            raise RuntimeError("the export service is down (503)")
        return {"healed": True, "attempt": ctx.attempt}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextlib.contextmanager
def healthy_server(proc: subprocess.Popen[bytes], url: str, log: Path) -> Iterator[None]:
    """Wait until the server ``proc`` answers ``url``/healthz (its ``log`` in the error if it exits first); stop it
    (SIGTERM, then SIGKILL) when the block ends."""

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 30.0, f"the server to answer {url}/healthz")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class Server:
    """A running ``ductape serve``: where it listens, a key for it, and a client on its store."""

    url: str
    store: str
    key: str
    workdir: Path
    client: Ductape

    def heal_flaky(self) -> None:
        (self.workdir / "healed").touch()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "a condition") -> Any:
        return wait_until(predicate, timeout, what)


@dataclass
class Ui:
    """The dashboard in a browser page, for one server."""

    page: Page
    server: Server

    def open(self, route: str = "") -> None:
        """Go to a hash route (``#/runs``) of the dashboard."""
        self.page.goto(f"{self.server.url}/{route}")

    def log_in(self, key: str | None = None) -> None:
        self.open()
        self.page.get_by_label("API key").fill(key or self.server.key)
        self.page.get_by_role("button", name="Log in").click()
        if key is None:
            self.page.get_by_role("navigation", name="Main").wait_for()

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        """Save a screenshot (of the whole page, or of the window) as test-artifacts/e2e/<name>.png."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path
