"""Store fixtures: ``store`` (and ``backend``, to open more store objects on the same database) run every test
once on SQLite and once on PostgreSQL (``storekit.py``). Each PostgreSQL test gets a fresh schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storekit import Backend, postgres_backend, sqlite_backend

from ductape_jobs.store import Store


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    factory = sqlite_backend(tmp_path) if request.param == "sqlite" else postgres_backend()
    with factory as b:
        yield b


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()


@pytest.fixture
def pg_backend() -> Iterator[Backend]:
    with postgres_backend() as b:
        yield b


@pytest.fixture
def sqlite_only_backend(tmp_path: Path) -> Iterator[Backend]:
    with sqlite_backend(tmp_path) as b:
        yield b
