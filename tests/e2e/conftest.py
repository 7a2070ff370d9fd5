"""Browser tests of the dashboard: Playwright (sync API) with Debian's Chromium against a real ``ductape serve``.

Each test gets its own server process on a fresh SQLite store, with an app module (written to ``tmp_path``)
that registers an ``ok`` function and a ``flaky`` one that fails until the test "heals" it, an API key made
through the store, and a ``Ductape`` client on the same store to schedule jobs and check what the UI did.
Without ``/usr/bin/chromium`` the tests skip (``make test`` installs it when it can); under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from e2e_kit import APP_MODULE, CHROMIUM, CHROMIUM_ARGS, Server, Ui, free_port, healthy_server

from ductape_jobs import Ductape
from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.clock import SystemClock

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext


@pytest.fixture(scope="module")  # stopped when its module ends: Playwright holds an event loop meanwhile
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium package (make test does, as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI the browser tests must run", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _start(workdir: Path, store: str, port: int) -> subprocess.Popen[bytes]:
    ductape = Path(sys.executable).parent / "ductape"
    env = {**os.environ, "DUCTAPE_STORE": store, "PYTHONPATH": str(workdir)}
    env.pop("DUCTAPE_APP", None)
    argv = [str(ductape), "serve", "--store", store, "--app", "e2e_app:ductape", "--host", "127.0.0.1"]
    with (workdir / "serve.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*argv, "--port", str(port)], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "e2e_app.py").write_text(textwrap.dedent(APP_MODULE))
    store = f"sqlite:///{tmp_path / 'e2e.db'}"
    client = Ductape(store)
    key = ApiKeys(client.store, SystemClock()).create("e2e").key
    for tag, fn in (("ok-job", "ok"), ("flaky-job", "flaky")):
        client.job.create(
            {"name": tag.replace("-", " ").title(), "tag": tag, "event_type": "FUNCTION", "event_tag": fn}
        )
    port = free_port()
    proc = _start(tmp_path, store, port)
    url = f"http://127.0.0.1:{port}"

    try:
        with healthy_server(proc, url, tmp_path / "serve.log"):
            yield Server(url, store, key, tmp_path, client)
    finally:
        client.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def ui(context: BrowserContext, server: Server) -> Ui:
    return Ui(context.new_page(), server)
