"""Shared fixtures: a fake clock, a ``Ductape`` on a fresh SQLite store driven by it, and a local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ductape_jobs import Ductape, FakeClock
from support import Recorder

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, before the 2026 DST changes


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def dt(tmp_path: Path, clock: FakeClock) -> Iterator[Ductape]:
    d = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock)
    yield d
    d.close()


@pytest.fixture
def http() -> Iterator[Recorder]:
    """A local HTTP server (``support.Recorder``) that records each request and answers what the test queues."""
    recorder = Recorder()
    recorder.thread.start()
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()
    recorder.thread.join(5)


@pytest.fixture(scope="module")
def tracing_off_afterwards() -> Iterator[None]:
    """For a module whose clients turn tracing on (it is per process): the libraries are uninstrumented when the
    module is done, so the modules after it run untraced (an AMQP message without a ``traceparent`` header)."""
    yield
    from ductape_jobs import tracing

    tracing.disable()
