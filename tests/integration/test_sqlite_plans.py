"""The hot queries of the SQLite store use their indexes: no tick scans the schedules or runs tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ductape_jobs.store.sqlite.store import Q, SQLiteStore

HOT = ["due_schedules", "acquire_runs", "next_schedule_due", "next_run_due", "next_lease_expiry", "expired_leases"]
PARAMS = {"now": 1, "limit": 10, "worker_id": "w", "lease_until": 2}


@pytest.mark.parametrize("name", HOT)
def test_hot_query_uses_an_index(tmp_path: Path, name: str) -> None:
    store = SQLiteStore(str(tmp_path / "plans.db"))
    store.migrate()
    plan = [row["detail"] for row in store._all("EXPLAIN QUERY PLAN " + Q[name], PARAMS)]
    store.close()
    assert plan, name
    scans = [step for step in plan if step.startswith("SCAN") and "USING" not in step]
    assert not scans, f"{name} scans a table: {plan}"
    assert any("INDEX" in step for step in plan), plan
