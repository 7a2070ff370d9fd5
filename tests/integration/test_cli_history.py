"""``ductape history JOB_ID`` and ``ductape stats``: ``job.history`` and ``job.stats`` from the shell."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import cli, create_job, ok, schedule

from ductape_jobs import Ductape


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A new store, empty (a command that reads refuses a SQLite file that is not there)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    Ductape(url).close()
    return url


def ran(store: str) -> tuple[str, str]:
    """Two schedules of ``hello`` in product p (one run each, the second failing) and a manual run of the first."""
    create_job(store)
    good = schedule(store)["job_id"]
    bad = schedule(store, "--input", '{"fail": true}')["job_id"]
    with Ductape(store) as dt:

        @dt.function("hello")
        def hello(input: dict[str, bool], ctx: object) -> dict[str, str]:
            if input.get("fail"):
                raise RuntimeError("asked to fail")
            return {"hi": "there"}

        dt.drain()
        dt.job.trigger(good)
        dt.drain()
    return good, bad


def test_history_prints_a_schedules_executions(store: str) -> None:
    good, bad = ran(store)
    found = ok("history", good, store=store)
    assert (found["job_id"], found["job_tag"], found["total"], found["successful"], found["failed"]) == (
        good,
        "hello",
        2,
        2,
        0,
    )
    assert [e["number"] for e in found["executions"]] == [2, 1]
    assert {e["triggered_by"] for e in found["executions"]} == {"manual", "schedule"}
    assert found["executions"][0]["result"] == {"hi": "there"} and found["executions"][0]["phase"] == "completed"
    assert [e["number"] for e in ok("history", good, "--limit", "1", store=store)["executions"]] == [2]
    failed = ok("history", bad, store=store)
    assert (failed["failed"], failed["executions"][0]["phase"]) == (1, "failed")
    assert "asked to fail" in failed["executions"][0]["error"]

    table = cli("history", good, store=store)
    assert table.exit_code == 0 and f"History of {good} (hello): 2 runs, 2 successful, 0 failed" in table.stdout


def test_history_of_an_unknown_schedule_or_with_a_bad_limit_fails_with_the_message(store: str) -> None:
    create_job(store)
    job_id = schedule(store)["job_id"]
    missing = cli("history", "job_nope", store=store)
    assert missing.exit_code == 1 and missing.stderr.strip() == "error: schedule 'job_nope' not found"
    bad = cli("history", job_id, "--limit", "0", store=store)
    assert bad.exit_code == 2 and bad.stderr.startswith("error: limit: must be a whole number between 1 and")


def test_stats_print_how_the_runs_went(store: str) -> None:
    ran(store)
    every = ok("stats", store=store)
    assert (every["total"], every["finished"], every["by_phase"]["failed"]) == (3, 3, 1)
    assert (every["completed_first_try"], every["completed_after_retry"]) == (2, 0)
    assert every["success_rate"] == pytest.approx(2 / 3)
    assert ok("stats", "--product", "p", "--env", "prd", store=store)["total"] == 3
    assert ok("stats", "--product-tag", "other", store=store)["success_rate"] is None
    assert ok("stats", "--since", "2100-01-01", store=store)["total"] == 0
    assert ok("stats", "--until", "2000-01-01T00:00:00Z", store=store)["total"] == 0

    table = cli("stats", "--product", "p", store=store)
    assert table.exit_code == 0 and "success rate" in table.stdout and "66.7%" in table.stdout
    # the title on one line, however narrow the table (it was wrapped to the table's width, over three lines)
    window = cli(
        "stats", "--product", "p", "--env", "prd", "--since", "2026-05-01", "--until", "2026-12-31", store=store
    )
    assert window.stdout.splitlines()[0] == (
        "Runs of p / prd, due from 2026-05-01 00:00:00Z before 2026-12-31 00:00:00Z"
    ), window.stdout


def test_stats_with_since_after_until_is_refused_naming_since(store: str) -> None:
    result = cli("stats", "--since", "2026-02-01", "--until", "2026-01-01", store=store)
    assert result.exit_code == 2 and result.stderr.startswith("error: since: ")
