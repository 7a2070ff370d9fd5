"""``wake_in``: when a worker told by another process that something falls due looks for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ductape_jobs.engine.wakeup import wake_in

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
AHEAD = timedelta(milliseconds=20)
HORIZON = timedelta(milliseconds=400)  # a worker's twice its poll


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (None, 0.0),  # said as now (a trigger, a retry, an older release's empty payload)
        (NOW - timedelta(seconds=5), 0.0),  # due already: at once
        (NOW, 0.0),
        (NOW + timedelta(milliseconds=20), 0.0),  # within the worker's lead: it ticks that far ahead
        (NOW + timedelta(milliseconds=120), 0.1),  # before its next read: a poke then, its lead early
        (NOW + timedelta(milliseconds=420), 0.4),  # at the horizon: still a poke
        (NOW + timedelta(milliseconds=421), None),  # past it: the worker's own next read sees it
        (NOW + timedelta(days=3), None),
    ],
)
def test_a_worker_looks_at_once_at_the_due_time_or_at_its_own_next_read(
    due: datetime | None, expected: float | None
) -> None:
    got = wake_in(due, NOW, AHEAD, HORIZON)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_a_worker_without_a_lead_looks_when_due() -> None:
    assert wake_in(NOW + timedelta(milliseconds=1), NOW, timedelta(0), HORIZON) == pytest.approx(0.001)
