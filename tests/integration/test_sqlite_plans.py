"""The hot queries of the SQLite store use their indexes: no tick scans the schedules or runs tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ductape_jobs.store.sqlite.dialect import Q, SQLiteDialect

HOT = [
    "due_schedules",
    "acquire_runs",
    "next_wakeup",
    "expired_leases",
    "overlap_state",
    "release_held_runs",
    "list_runs_of_schedule",
    "list_runs_of_job",
    "list_failed_runs",
    "list_feature_runs_of_feature",
    # an operator's reads at a million schedules and runs (a probe: each read and sorted the whole table)
    "list_live_runs",
    "list_runs",  # newest first, from the newest or past a run (after=)
    "list_schedules",
    "list_feature_runs",  # newest first, from the newest or past a feature run (after=)
    "list_deliveries",  # a webhook's, newest first, from the newest or past a delivery (after=)
    "run_stats",
    # under limits (limits_core.py; their partial indexes' terms reordered in migration 16)
    "limited_due",
    "pick_limited_runs",
    "pick_free_runs",
    "claim_picked_runs",
    "waiting_runs",
    "running_limit_keys",
]
# a scan of sets (next_wakeup's recursive CTE), pruned or a subquery (run_stats') reads what the query made itself
_NOT_TABLES = ("SCAN CONSTANT ROW", "SCAN json_each VIRTUAL TABLE", "SCAN sets", "SCAN pruned", "SCAN (subquery")
PARAMS = {
    "now": 1,
    "due_by": 1,
    "limit": 10,
    "worker_id": "w",
    "lease_until": 2,
    "ids": '["s"]',
    "schedule_ids": '["s"]',
    "run_ids": '["r"]',
    "schedule_id": "s",
    "job_tag": "j",
    "job_product": None,
    "product_tag": None,
    "env": None,
    "phase": None,
    "since": None,
    "until": None,
    "offset": 0,
    "after_at": 2**62,  # a page past a run or a schedule: its time and id (list_runs, list_schedules)
    "after_id": "",
    "feature_tag": "f",
    "webhook_id": "w",
    "status": None,
    "blocked": "[]",
    "limit_keys": '["shop/crm-api"]',
    "waiting_on": "w",
    "held_until": 3,
    "max_bytes": 8_000_000,
}


@pytest.mark.parametrize("name", HOT)
def test_hot_query_uses_an_index(tmp_path: Path, name: str) -> None:
    dialect = SQLiteDialect(str(tmp_path / "plans.db"))
    dialect.migrate()
    plan = [row["detail"] for row in dialect._db.execute("EXPLAIN QUERY PLAN " + Q[name], PARAMS)]
    dialect.close()
    assert plan, name
    # a scan of the constant row, of json_each (a list parameter) or of a CTE reads no table
    scans = [s for s in plan if s.startswith("SCAN") and "USING" not in s and not s.startswith(_NOT_TABLES)]
    assert not scans, f"{name} scans a table: {plan}"
    assert any("INDEX" in step for step in plan), plan


def test_a_schedules_history_reads_only_its_own_runs(tmp_path: Path) -> None:
    """``job.history``: both its count and its newest runs search the runs by schedule; no scan of the table
    (the other steps scan the query's own small intermediate results)."""
    dialect = SQLiteDialect(str(tmp_path / "plans.db"))
    dialect.migrate()
    plan = [row["detail"] for row in dialect._db.execute("EXPLAIN QUERY PLAN " + Q["schedule_history"], PARAMS)]
    dialect.close()
    assert [s for s in plan if s.startswith("SEARCH runs")] == [
        "SEARCH runs USING INDEX runs_occurrence (schedule_id=?)"
    ] * 2
    assert not [s for s in plan if s.startswith(("SCAN runs", "SCAN schedules", "SCAN s "))], plan


def test_live_runs_are_read_by_their_partial_index(tmp_path: Path) -> None:
    """A run list of a live phase ("what runs now") took 0.5 s at a million runs: SQLite's planner read every run
    newest first (``runs_time``) to spare sorting the few that match."""
    dialect = SQLiteDialect(str(tmp_path / "plans.db"))
    dialect.migrate()
    plan = [row["detail"] for row in dialect._db.execute("EXPLAIN QUERY PLAN " + Q["list_live_runs"], PARAMS)]
    dialect.close()
    assert plan[0] == "SCAN runs USING INDEX runs_active", plan


def test_a_held_run_is_released_by_its_schedules_live_runs_not_its_history(tmp_path: Path) -> None:
    """release_held_runs asks whether a buffer_one schedule still has a run queued or running: among its live runs
    (runs_active), not through runs_occurrence, which holds every run the schedule ever had (13 ms at 30,000)."""
    dialect = SQLiteDialect(str(tmp_path / "plans.db"))
    dialect.migrate()
    plan = [row["detail"] for row in dialect._db.execute("EXPLAIN QUERY PLAN " + Q["release_held_runs"], PARAMS)]
    dialect.close()
    assert any(step.startswith("SEARCH r USING INDEX runs_active") for step in plan), plan
