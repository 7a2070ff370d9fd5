"""pytest plugin (registered through the ``pytest11`` entry point): the ``ductape_sandbox`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ductape_jobs.testing import Sandbox


@pytest.fixture
def ductape_sandbox() -> Iterator[Sandbox]:
    """A ``Sandbox``: a Ductape on a temporary SQLite store with a clock moved by ``advance(...)``."""
    sandbox = Sandbox()
    yield sandbox
    sandbox.close()
