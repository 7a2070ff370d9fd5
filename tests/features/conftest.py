"""Feature fixtures: ``make_app(features, ...)`` builds a ``Ductape`` on a fresh SQLite store whose product
``shop`` (env ``dev``) declares ``features``; retries wait through a recording sleeper, never really."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from feature_kit import App, shop

from ductape_jobs import Backoff, Ductape, FakeClock
from ductape_jobs.products import Products


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., App]]:
    made: list[Ductape] = []

    def make(features: dict[str, Any], **extra: Any) -> App:
        clock = FakeClock()
        dt = Ductape(
            f"sqlite:///{tmp_path / f'jobs{len(made)}.db'}",
            clock=clock,
            products=Products([shop(features, **extra)]),  # type: ignore[list-item]
            backoff=Backoff(jitter=0.0),
        )
        made.append(dt)
        app = App(dt, clock)

        async def sleep(seconds: float) -> None:
            app.waits.append(seconds)

        dt.feature.sleep = sleep
        return app

    yield make
    for dt in made:
        dt.close()
