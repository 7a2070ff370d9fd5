"""Fixtures of the API tests: ``api`` is the app on a real uvicorn (a thread), on the ``dt`` client (SQLite and
a fake clock, from tests/conftest.py), with an admin key and webhooks allowed to 127.0.0.0/8 (where the tests'
receivers listen); ``api.client(key)`` makes HTTP clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from apikit import JOB, Api, served

from ductape_jobs import Ductape
from support import Recorder


@pytest.fixture
def api(dt: Ductape) -> Iterator[Api]:
    dt.function("report")(lambda input, ctx: {"ok": True, "input": input})
    dt.webhooks.allow = ["127.0.0.0/8"]  # the tests' receivers listen on 127.0.0.1: allowed explicitly
    with served(dt, events_poll=0.05, events_keepalive=0.3) as made:
        yield made


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    """A local HTTP server that records what it is sent (webhook and callback targets)."""
    r = Recorder()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture
def job(api: Api) -> dict[str, Any]:
    """The ``report`` job (a FUNCTION the ``dt`` client runs)."""
    api.dt.job.create(JOB)
    return JOB
