"""``StoreClock``'s detection of a local clock stepped since its offset was measured (an NTP step, a VM resumed,
``date -s``), and of a suspend, which is not a step."""

from __future__ import annotations

import time
import types
from datetime import UTC, datetime, timedelta

import pytest

from ductape_jobs import clock as clock_mod
from ductape_jobs.clock import StoreClock

OFFSET = timedelta(seconds=5)  # the database's clock is 5 s ahead of this node's


class SteppedClock:
    """The machine's clock (a user's ``Clock``: no ``monotonic``), which NTP or an operator may step."""

    def __init__(self) -> None:
        self.step = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.step


def test_a_step_between_the_samples_of_a_resync_is_not_taken_as_the_clocks_own_time() -> None:
    """``sync`` measures the offset over ``samples`` round trips, then takes its anchor (monotonic, local) after
    them: a step that lands after the sample chosen and before the anchor leaves an offset measured before it
    and an anchor after it, so the step is never seen and ``now()`` is off by it until the next resync (30 s):
    what the commit set out to prevent (runs early, live leases rescued)."""
    local = SteppedClock()
    calls = 0

    class Store:
        def server_time(self) -> datetime:
            nonlocal calls
            calls += 1
            if calls == 6:  # the resync's third sample: NTP stepped the node a minute ahead just before it,
                local.step = timedelta(minutes=1)  # and the database is slow to answer it (not the best sample)
                time.sleep(0.05)
            return datetime.now(UTC) + OFFSET

    clock = StoreClock(local, Store(), samples=3)  # samples 1-3
    clock.sync()  # samples 4-6: the step lands during the sixth
    truth = datetime.now(UTC) + OFFSET
    assert abs(clock.now() - truth) < timedelta(seconds=1), f"off by {clock.now() - truth}"


def test_a_suspended_machine_does_not_read_the_time_it_was_suspended_at(monkeypatch: pytest.MonkeyPatch) -> None:
    """A laptop's suspend (or a VM's save/restore): the wall clock goes on across it, ``time.monotonic``
    (CLOCK_MONOTONIC; macOS's too) does not. The StoreClock takes that for a step and counts from its last
    measurement by the monotonic clock: it tells the time the machine was suspended at, an hour behind, until
    the database answers again (on resume the network is often not back for seconds). Meanwhile a run claimed
    ahead is started without asking whether its lease still holds (``Worker._lapsed`` at the stale time), though
    that lease lapsed during the suspend and another worker ran the run. Linux's CLOCK_BOOTTIME counts the
    suspend."""
    suspended = 0.0  # seconds the machine slept
    real_monotonic = time.monotonic

    def boot_time(which: int) -> float:
        assert which == fake.CLOCK_BOOTTIME
        return real_monotonic() + suspended

    fake = types.SimpleNamespace(
        monotonic=real_monotonic,  # stops during a suspend
        clock_gettime=boot_time,  # goes on through it
        CLOCK_BOOTTIME=7,
        perf_counter=time.perf_counter,
    )
    monkeypatch.setattr(clock_mod, "time", fake)
    local = SteppedClock()
    up = True

    class Store:
        def server_time(self) -> datetime:
            if not up:
                raise OSError("network is unreachable")
            return datetime.now(UTC) + local.step + OFFSET

    clock = StoreClock(local, Store(), retry=timedelta(seconds=60))
    up = False  # the machine sleeps an hour; on waking its network is not back yet
    suspended = 3600.0
    local.step = timedelta(hours=1)  # the wall clock went on through the suspend (as the database's did)
    truth = datetime.now(UTC) + local.step + OFFSET
    assert abs(clock.now() - truth) < timedelta(seconds=1), f"off by {clock.now() - truth}"
