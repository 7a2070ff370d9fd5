"""Shared fixtures: a fake clock and a ``Ductape`` on a fresh SQLite store driven by it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ductape_jobs import Ductape, FakeClock

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, before the 2026 DST changes


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def dt(tmp_path: Path, clock: FakeClock) -> Iterator[Ductape]:
    d = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock)
    yield d
    d.close()


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
