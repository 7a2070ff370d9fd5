"""A rate limit holds for a claim whose ``now`` is older than another claim's: a worker reads its clock, then
waits (for the writer, for a core) while another worker claims with a later clock. The later claim must not
delete the starts the earlier one still counts (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

from test_contract import LEASE, T0
from test_limits_store import backlog

from ductape_jobs.store import Store

MS = timedelta(milliseconds=1)


def test_a_claim_with_an_older_clock_still_counts_the_starts_of_its_window(store: Store) -> None:
    starts: list[datetime] = []

    def claim(worker: str, now: datetime) -> None:
        starts.extend(now for _ in store.acquire_runs(worker, 10, LEASE, now))

    backlog(store, "ping", 4, rate="3/s")
    claim("w1", T0)  # 3 start at T0
    claim("w2", T0 + 1001 * MS)  # a second later: the last one due
    backlog(store, "ping", 5)
    claim("w3", T0 + 999 * MS)  # a clock read before w2's claim: T0's starts are still in its window
    assert len(starts) == 4
    for t in starts:  # never more than 3 in any window of one second
        assert sum(1 for s in starts if t <= s < t + timedelta(seconds=1)) <= 3
