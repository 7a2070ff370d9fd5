"""The dashboard mounted under a prefix of the user's own FastAPI app (``app.mount("/jobs", create_app(...))``), in
Chromium: its pages, files, API calls, event stream, login and logout all stay under ``/jobs``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_kit import PRODUCT, Server, Ui, free_port, healthy_server

from ductape_jobs import Ductape
from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.clock import SystemClock

MOUNTED_APP = """
    import os

    from fastapi import FastAPI

    from ductape_jobs import Ductape
    from ductape_jobs.api import create_app

    ductape = Ductape(os.environ["DUCTAPE_STORE"])
    app = FastAPI()
    app.mount("/jobs", create_app(ductape))


    @app.get("/")
    def home() -> dict[str, str]:
        return {"app": "the user's own"}
"""


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "mounted_app.py").write_text(textwrap.dedent(MOUNTED_APP))
    store = f"sqlite:///{tmp_path / 'e2e.db'}"
    client = Ductape(store)
    key = ApiKeys(client.store, SystemClock()).create("e2e").key
    client.job.create({"name": "Ok job", "tag": "ok-job", "event_type": "FUNCTION", "event_tag": "ok"})
    port = free_port()
    env = {**os.environ, "DUCTAPE_STORE": store, "PYTHONPATH": str(tmp_path)}
    argv = [sys.executable, "-m", "uvicorn", "mounted_app:app", "--host", "127.0.0.1", "--port", str(port)]
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/jobs"

    try:
        with healthy_server(proc, url, tmp_path / "serve.log"):
            yield Server(url, store, key, tmp_path, client)
    finally:
        client.close()


def test_the_login_files_and_cookie_stay_under_the_mount(mounted: Server) -> None:
    with httpx.Client(base_url=mounted.url.removesuffix("/jobs")) as c:
        form = c.get("/jobs/")
        assert form.status_code == 200 and 'action="login"' in form.text and 'href="static/app.css"' in form.text
        assert c.get("/jobs/static/app.css").status_code == 200 and c.get("/static/app.css").status_code == 404
        ok = c.post("/jobs/login", data={"key": mounted.key})
        assert ok.status_code == 303 and ok.headers["location"] == "/jobs/"
        assert "path=/jobs/" in ok.headers["set-cookie"].lower()
        assert c.get("/jobs/api/v1/jobs").status_code == 200  # the cookie reaches the mounted API
        out = c.post("/jobs/logout")
        assert out.status_code == 303 and out.headers["location"] == "/jobs/"
        assert c.get("/jobs/api/v1/jobs").status_code == 401
        assert c.get("/").json() == {"app": "the user's own"}


def test_the_dashboard_works_under_the_mount(context: object, mounted: Server) -> None:
    from playwright.sync_api import BrowserContext, expect

    assert isinstance(context, BrowserContext)
    ui = Ui(context.new_page(), mounted)
    page = ui.page
    ui.log_in()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    assert page.url.startswith(mounted.url + "/")
    ui.open("#/runs")
    expect(page.get_by_role("table", name="Runs")).to_contain_text("No run matches")
    mounted.client.job.schedule({**PRODUCT, "event": "ok-job"})
    expect(page.locator("tr", has_text="ok-job")).to_have_count(1, timeout=30_000)  # the API, at /jobs/api/v1
    expect(page.locator("#live")).to_have_text("live")  # the event stream, at /jobs/api/v1/events
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.url == mounted.url + "/"
