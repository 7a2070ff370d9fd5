"""The ``ductape`` CLI: commands against a temporary SQLite store (asserting on ``--json``), the demo, and one real
``ductape worker`` process stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from ductape_jobs import Ductape, RunPhase
from ductape_jobs.cli.main import app
from support import require_service

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))

# --product-file sets $DUCTAPE_PRODUCT_FILE for the Ductape objects a command opens: restored after each command
CLEAN_ENV: dict[str, str | None] = {
    "DUCTAPE_APP": None,
    "DUCTAPE_STORE": None,
    "DUCTAPE_PRODUCT_FILE": None,
    "COLUMNS": "200",
}


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A new store, empty (a command that reads refuses a SQLite file that is not there)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    Ductape(url).close()
    return url


def cli(*args: str, store: str | None = None) -> Result:
    argv = [*args, "--store", store] if store else list(args)
    return CliRunner().invoke(app, argv, env=CLEAN_ENV)


def ok(*args: str, store: str | None = None) -> Any:
    """Run a command with ``--json``; it must succeed; its parsed output."""
    result = cli(*args, "--json", store=store)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def create_job(store: str, tag: str = "hello", *extra: str) -> Any:
    return ok(
        "job", "create", "--name", "Hello", "--tag", tag, "--event-type", "FUNCTION", "--event-tag", tag, *extra,
        store=store,
    )  # fmt: skip


def schedule(store: str, *extra: str, tag: str = "hello") -> Any:
    return ok("schedule", "--event", tag, "--env", "prd", "--product-tag", "p", *extra, store=store)


# ------------------------------------------------------------------------------------------------ jobs


def test_job_create_list_show_delete(store: str) -> None:
    job = create_job(store, "hello", "--executions", "3", "--intervals", "60000")
    assert job["tag"] == "hello" and job["event_type"] == "function" and job["intervals"] == 60000
    assert [j["tag"] for j in ok("job", "list", store=store)] == ["hello"]
    shown = ok("job", "show", "hello", store=store)
    assert shown["executions"] == 3 and shown["created_at"].endswith("Z")

    once = create_job(store, "once")  # executions 0, no intervals: a schedule of it runs once
    table = cli("job", "list", store=store).stdout
    header = next(line for line in table.splitlines() if "intervals" in line)
    row = next(line for line in table.splitlines() if "once" in line and "FUNCTION" in line)
    assert once["executions"] == 0 and "runs" in header and "executions" not in header  # it read "executions 1"
    assert " 1 " in row and " once " in row
    assert ok("job", "delete", "once", store=store) == {"deleted": "once"}

    assert ok("job", "delete", "hello", store=store) == {"deleted": "hello"}
    assert ok("job", "list", store=store) == []


def test_a_list_cut_at_its_limit_says_there_may_be_more(store: str) -> None:
    """A new-user probe: ``Schedules (100)`` on a store of 105 read as the whole count."""
    create_job(store, "hello")
    with Ductape(store) as dt:
        dt.job.schedule_many([{"env": "prd", "product_tag": "p", "event": "hello"}] * 3)
    for command in ("schedules", "runs"):
        title = cli(command, "--limit", "2", store=store).stdout.splitlines()[0]
        assert "(2, newest first; --limit for more)" in title, title
        assert cli(command, "--limit", "5", store=store).stdout.splitlines()[0].strip().endswith("(3)")


def test_jobs_of_a_product(store: str) -> None:
    assert create_job(store, "sync", "--product", "shop")["product_tag"] == "shop"
    assert create_job(store, "sync", "--product", "blog")["product_tag"] == "blog"  # the same tag, another product
    assert [j["product_tag"] for j in ok("job", "list", "--product", "shop", store=store)] == ["shop"]
    assert len(ok("job", "list", store=store)) == 2
    assert ok("job", "update", "sync", "--name", "S", "--product", "blog", store=store)["name"] == "S"
    assert ok("job", "show", "sync", "--product", "shop", store=store)["name"] == "Hello"
    ambiguous = cli("job", "show", "sync", store=store)
    assert ambiguous.exit_code == 2 and "name one" in ambiguous.stderr
    ok("job", "delete", "sync", "--product", "blog", store=store)
    assert [j["product_tag"] for j in ok("job", "list", store=store)] == ["shop"]


def test_job_listing_renders_a_table_for_people(store: str) -> None:
    create_job(store)
    result = cli("job", "list", store=store)
    assert result.exit_code == 0
    assert "hello" in result.stdout and "FUNCTION" in result.stdout


LONG_TAG = "quarterly-revenue-report-for-every-region-and-every-product-line-of-the-company"  # 80 characters
LONG_NAME = "The quarterly revenue report, for every region and every product line of the whole company"


def listed(store: str, columns: str | None) -> dict[str, list[str]]:
    """The lines of each listing's table, printed to a captured stream (not a terminal), ``$COLUMNS`` as given."""
    env = {**CLEAN_ENV, "COLUMNS": columns}
    with Ductape(store) as dt:
        job_id = dt.job.list()[0].id
    shown = {}
    for argv in (["runs"], ["schedules"], ["job", "list"], ["history", job_id]):
        result = CliRunner().invoke(app, [*argv, "--store", store], env=env)
        assert result.exit_code == 0, (argv, result.stdout, result.stderr)
        shown[argv[0]] = result.stdout.splitlines()
    return shown


@pytest.mark.parametrize("columns", [None, "60"])
def test_ids_printed_to_a_pipe_are_whole_on_one_line(store: str, columns: str | None) -> None:
    """``ductape runs | cat``: a script copies an id from the table. Not a terminal and no $COLUMNS: no cell is cut
    or wrapped (rich drew 80 columns: ids cut with an ellipsis, or wrapped over lines); at any width ($COLUMNS=60)
    the ids and tags stay whole, on one line."""
    create_job(store, LONG_TAG, "--name", LONG_NAME)
    job_id = schedule(store, tag=LONG_TAG)["job_id"]
    with Ductape(store) as dt:
        dt.drain()  # no function registered: the run fails, at once
        (run,) = dt.job.runs()
    shown = listed(store, columns)
    for listing, whole in (
        ("runs", [run.id, LONG_TAG]),
        ("schedules", [job_id, LONG_TAG]),
        ("job", [LONG_TAG]),
        ("history", [run.id]),
    ):
        for value in whole:
            assert any(value in line for line in shown[listing]), (listing, value, "\n".join(shown[listing]))
    if columns is None:  # not narrowed at all: the name and the error's first line are whole too
        assert any(LONG_NAME in line and LONG_TAG in line for line in shown["job"])
        assert any(run.id in line and "ExecutorNotFoundError: FUNCTION" in line for line in shown["runs"])


def test_in_a_narrow_console_every_column_keeps_its_header_and_values(store: str) -> None:
    """Where the ids take most of the width, the other columns keep their headers and longest words and wrap: they
    shrank to nothing (the schedules' env, status, cadence and runs, the runs' phase and error) or cut a time, a
    phase or a word with an ellipsis when the ids took the width."""
    create_job(store, "nightly-invoice-reconciliation")
    schedule(store, tag="nightly-invoice-reconciliation")
    with Ductape(store) as dt:
        dt.drain()
        (run,) = dt.job.runs()
    at = run.scheduled_at.strftime("%Y-%m-%d %H:%M:%S")
    for columns in ("60", "80"):
        env = {**CLEAN_ENV, "COLUMNS": columns}
        for argv, shown in (
            (["schedules"], ["env", "status", "runs", "prd", "completed"]),
            (["runs"], ["phase", "attempt", "error", "failed", at, "Exec"]),  # an error is cut to fit
            (["job", "list"], ["event", "updated", "FUNCTION", "nightly-invoice-reconciliation"]),
        ):
            result = CliRunner().invoke(app, [*argv, "--store", store], env=env)
            assert result.exit_code == 0, (argv, result.stdout, result.stderr)
            for text in shown:
                assert text in result.stdout, (columns, argv, text, result.stdout)


def test_at_80_columns_the_listings_cut_no_time_and_no_word(store: str) -> None:
    """The schedules', webhooks' and dispatches' tables folded their columns at 80: ``2026-12-0`` over ``5``,
    ``product`` over ``ion``, ``job.sched`` over ``uled,``, a time zone a few letters a line. A column now wraps at
    spaces only (a time: its date over its time of day); only a webhook's URL folds. The webhooks' table fits."""
    create_job(store)
    made = schedule(store, "--cron", "0 9 * * *", "--tz", "America/Argentina/Buenos_Aires", "--env", "production")
    ok("pause", made["job_id"], "--reason", "waiting-for-sign-off", store=store)
    with Ductape(store) as dt:
        dt.webhooks.create({"product_tag": "p", "url": "https://hooks.example.com/services/T0/B0/secret",
                            "events": ["job.scheduled", "job.completed", "job.failed"]})  # fmt: skip
        shown_at = dt.job.get(made["job_id"]).next_run_at
        hook = dt.webhooks.list()[0]
    assert shown_at is not None
    env = {**CLEAN_ENV, "COLUMNS": "80"}
    for argv, whole in (
        (["schedules"], ["production", "(America/Argentina/Buenos_Aires)", "waiting-for-sign-off", "paused",
                         f"{shown_at:%Y-%m-%d}", f"{shown_at:%H:%M:%S}Z"]),
        (["webhook", "list"], ["job.scheduled,", "job.completed,", "job.failed", f"{hook.created_at:%Y-%m-%d}",
                               f"{hook.created_at:%H:%M:%S}Z"]),
    ):  # fmt: skip
        result = CliRunner().invoke(app, [*argv, "--store", store], env=env)
        assert result.exit_code == 0, (argv, result.stdout, result.stderr)
        for text in whole:
            assert any(text in line for line in result.stdout.splitlines()), (argv, text, result.stdout)
        if argv[0] == "webhook":
            assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
        assert not [line for line in result.stdout.splitlines() if line.endswith(" ")]  # a title was padded


def test_a_run_with_attempts_fits_an_80_column_terminal(store: str) -> None:
    """Rich shrinks a table's widest wrapping columns and then widens back any below its floor: ``run show`` drew
    its attempts 82 columns wide in an 80-column terminal (the right border on a line of its own). Its floors fit,
    so it is laid out again narrower until it does."""
    create_job(store)
    schedule(store)
    with Ductape(store) as dt:
        dt.function("hello")(lambda input, ctx: 1 / 0)

        def drain() -> None:  # under a worker id of a set length: a host's name and pid would move the floors
            worker = dt.new_worker()
            worker.id = "worker-1"
            asyncio.run(worker.run_until_idle())

        drain()  # the first attempt fails for good; job.retry queues it again, and it fails once more
        (run,) = dt.job.runs()
        dt.job.retry(run.id)
        drain()
        run_id = run.id
        assert len(dt.job.run(run_id).attempts) == 2
    for columns in ("80", "90", "120"):
        result = CliRunner().invoke(
            app, ["run", "show", run_id, "--store", store], env={**CLEAN_ENV, "COLUMNS": columns}
        )
        assert result.exit_code in (0, 1), result.stdout
        widths = [len(line) for line in result.stdout.splitlines()]
        assert "Attempts" in result.stdout and max(widths) <= int(columns), (columns, max(widths), result.stdout)


def test_run_show_prints_the_start_of_a_large_output_and_json_prints_it_whole(store: str) -> None:
    """A run's output of 1 MiB was drawn whole, folded into the table: 3 MB of box lines."""
    create_job(store)
    schedule(store, "--input", json.dumps({f"k{n}": "i" * 60_000 for n in range(4)}))
    with Ductape(store) as dt:
        dt.function("hello")(lambda input, ctx: {"big": "o" * 1_000_000})
        asyncio.run(dt.new_worker().run_until_idle())
        (run,) = dt.job.runs()
    shown = cli("run", "show", run.id, store=store)
    assert shown.exit_code == 0, shown.stdout
    assert len(shown.stdout) < 20_000, len(shown.stdout)
    assert "the first 2,000 of 1,000,011 characters; --json prints it whole" in shown.stdout
    assert "the first 2,000 of 240,040 characters" in shown.stdout  # the input too
    assert ok("run", "show", run.id, store=store)["output"] == {"big": "o" * 1_000_000}


def test_job_update_sets_a_jobs_limits_and_priority_and_job_show_shows_them(store: str) -> None:
    """``job create`` took --priority, --concurrency and --rate, ``job update`` none of them (the Python API and
    ``PATCH /jobs`` do); ``job show`` showed none."""
    create_job(store)
    updated = ok("job", "update", "hello", "--priority", "7", "--concurrency", "2", "--rate", "5/s", store=store)
    assert (updated["priority"], updated["concurrency"], updated["rate"]) == (7, 2, "5/s")
    refused = cli("job", "update", "hello", "--priority", "101", store=store)
    assert refused.exit_code == 2 and refused.stderr.startswith("error: priority:"), refused.stderr
    shown = cli("job", "show", "hello", store=store)
    assert shown.exit_code == 0, shown.stdout
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in shown.stdout.splitlines() if "│" in line}
    assert (rows["priority"], rows["concurrency"], rows["rate"]) == ("7", "2", "5/s"), shown.stdout


def test_names_and_reasons_are_shown_as_written_never_as_console_markup(store: str) -> None:
    """A job's name, a pause's reason, an API key's name: data that anyone with a write key can set. ``[/]`` made
    rich fail the command (MarkupError) and ``[link=...]`` drew a link."""
    ok("job", "create", "--name", "[/]", "--tag", "m1", "--event-type", "FUNCTION", "--event-tag", "[b]f", store=store)
    ok("job", "create", "--name", "[link=http://x]y[/link]", "--tag", "m2", "--event-type", "FUNCTION", "--event-tag",
       "f", store=store)  # fmt: skip
    listed = cli("job", "list", store=store)
    assert listed.exit_code == 0, listed.stdout
    assert "[/]" in listed.stdout and "[b]f" in listed.stdout and "[link=http://x]y[/link]" in listed.stdout
    job_id = ok("schedule", "--event", "m1", "--env", "prd", "--product-tag", "p", "--cron", "0 9 * * *", store=store)[
        "job_id"
    ]
    ok("pause", job_id, "--reason", "[/] stop", store=store)
    schedules = cli("schedules", store=store)
    assert schedules.exit_code == 0 and "[/] stop" in schedules.stdout, schedules.stdout
    deleted = cli("job", "delete", "m2", store=store)
    assert deleted.exit_code == 0 and "deleted job m2" in deleted.stdout
    titled = cli("stats", "--env", "[/]", store=store)  # a filter in a table's title
    assert titled.exit_code == 0 and "[/]" in titled.stdout, titled.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--event-type", "TELEPATHY", "--tag", "ok"], "event_type"),
        (["--event-type", "FUNCTION", "--tag", "not a tag"], "tag"),
        (["--event-type", "FUNCTION", "--tag", "ok", "--intervals", "-5"], "intervals"),
    ],
)
def test_job_create_validation_error_exits_2_and_writes_nothing(store: str, args: list[str], field: str) -> None:
    result = cli("job", "create", "--name", "x", "--event-tag", "f", *args, store=store)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {field}:")
    assert "Traceback" not in result.output and result.stdout == ""
    assert ok("job", "list", store=store) == []


def test_not_found_and_conflict_exit_1(store: str) -> None:
    create_job(store)
    job_id = schedule(store, "--every", "60000")["job_id"]
    for args in (["job", "show", "nope"], ["run", "show", "run_nope"], ["pause", "job_nope"]):
        result = cli(*args, store=store)
        assert result.exit_code == 1, args
        assert "not found" in result.stderr and "Traceback" not in result.output
    (queued,) = ok("runs", "--job-id", job_id, store=store)
    busy = cli("run", "retry", queued["id"], store=store)  # only a failed or cancelled run is retried
    assert busy.exit_code == 1 and "Traceback" not in busy.output, busy.output
    assert ok("job", "delete", "hello", store=store) == {"deleted": "hello"}  # cancels its live schedules
    assert [s["status"] for s in ok("schedules", store=store) if s["job_id"] == job_id] == ["cancelled"]


def test_runs_and_schedules_after_show_the_next_page_and_an_unknown_one_exits_2(store: str) -> None:
    create_job(store)
    for _ in range(3):
        schedule(store)
    whole = [r["id"] for r in ok("runs", store=store)]
    assert len(whole) == 3
    assert [r["id"] for r in ok("runs", "--limit", "2", store=store)] == whole[:2]
    assert [r["id"] for r in ok("runs", "--limit", "2", "--after", whole[1], store=store)] == whole[2:]
    refused = cli("runs", "--after", "run_gone", store=store)
    assert refused.exit_code == 2 and refused.stderr.startswith("error: after: no run with id 'run_gone'")
    made = [s["job_id"] for s in ok("schedules", store=store)]
    assert [s["job_id"] for s in ok("schedules", "--limit", "1", "--after", made[0], store=store)] == made[1:2]
    refused = cli("schedules", "--after", "job_gone", store=store)
    assert refused.exit_code == 2 and refused.stderr.startswith("error: after: no schedule with id 'job_gone'")
    assert [r["id"] for r in ok("runs", "--after", "", store=store)] == whole  # an empty cursor: none, as over HTTP


def test_runs_and_schedules_filter_by_product_env_and_due_time(store: str) -> None:
    """What ``job.runs`` and ``job.list`` (and HTTP) filter by, the command line does too."""
    create_job(store)
    for product, env in (("p", "prd"), ("q", "prd"), ("p", "dev")):
        ok("schedule", "--event", "hello", "--env", env, "--product-tag", product, store=store)

    def runs(*args: str) -> list[tuple[str, str]]:
        return sorted((r["product_tag"], r["env"]) for r in ok("runs", *args, store=store))

    assert runs("--product-tag", "p") == [("p", "dev"), ("p", "prd")]
    assert runs("--env", "prd") == [("p", "prd"), ("q", "prd")]
    assert runs("--product-tag", "p", "--env", "dev") == [("p", "dev")]
    assert len(runs("--product-tag", "", "--env", "")) == 3  # an empty filter is none, as over HTTP
    assert len(runs("--since", "2000-01-01", "--until", "2999-01-01")) == 3  # due now: within
    assert runs("--since", "2999-01-01") == [] and runs("--until", "2000-01-01") == []
    listed = ok("schedules", "--product-tag", "p", "--env", "dev", store=store)
    assert [(s["product_tag"], s["env"]) for s in listed] == [("p", "dev")]
    refused = cli("runs", "--since", "2030-01-03", "--until", "2030-01-01", store=store)
    assert refused.exit_code == 2 and refused.stderr.startswith("error: since: "), refused.stderr


# ------------------------------------------------------------------------------------------- schedules


def test_schedule_pause_resume_cancel(store: str) -> None:
    create_job(store)
    result = schedule(store, "--every", "60000", "--start-at", "2999-01-01T00:00:00Z", "--retries", "2")
    job_id = result["job_id"]
    assert result["status"] == "scheduled" and result["recurring"] is True
    assert result["scheduled_at"] == result["next_run_at"] == "2999-01-01T00:00:00Z"

    [listed] = ok("schedules", "--status", "active", "--job", "hello", store=store)
    assert listed["job_id"] == job_id and listed["every"] == 60000 and listed["retries"] == 2

    assert ok("pause", job_id, store=store)["status"] == "paused"
    again = cli("pause", job_id, store=store)
    assert again.exit_code == 1 and "only an active one pauses" in again.stderr  # a conflict, not bad input
    assert ok("resume", job_id, store=store)["status"] == "active"
    cancelled = ok("cancel", job_id, "--reason", "no longer needed", store=store)
    assert cancelled["status"] == "cancelled" and cancelled["reason"] == "cancelled: no longer needed"
    assert ok("schedules", "--status", "active", store=store) == []
    assert [s["job_id"] for s in ok("schedules", "--status", "cancelled", store=store)] == [job_id]


def test_show_trigger_and_reschedule_a_schedule(store: str) -> None:
    create_job(store)
    job_id = schedule(store, "--every", "60000", "--start-at", "2999-01-01T00:00:00Z", "--input", '{"n": 1}')["job_id"]
    shown = ok("show", job_id, store=store)  # job.get
    assert (shown["job_id"], shown["status"], shown["every"], shown["input"]) == (job_id, "active", 60000, {"n": 1})
    human = cli("show", job_id, store=store)
    assert human.exit_code == 0 and job_id in human.stdout

    paused = ok("pause", job_id, "--reason", "maintenance", store=store)
    assert (paused["status"], paused["reason"]) == ("paused", "paused: maintenance")
    ok("resume", job_id, store=store)

    run = ok("trigger", job_id, store=store)  # one run now, outside the cadence
    assert (run["job_id"], run["phase"], run["triggered_by"]) == (job_id, "queued", "manual")
    assert run["input"] == {"n": 1}

    moved = ok("reschedule", job_id, "--cron", "0 9 * * *", "--tz", "Europe/Paris", "--limit", "3", store=store)
    assert (moved["cron"], moved["tz"], moved["every"], moved["limit"]) == ("0 9 * * *", "Europe/Paris", None, 3)
    assert moved["next_run_at"].endswith(("08:00:00Z", "07:00:00Z"))  # 9:00 in Paris

    both = cli("reschedule", job_id, "--cron", "0 9 * * *", "--every", "60000", store=store)
    assert both.exit_code == 2 and "repeat" in both.stderr  # bad input: nothing changed
    assert ok("show", job_id, store=store)["cron"] == "0 9 * * *"
    cancelled = ok("cancel", job_id, store=store)["status"]
    assert cancelled == "cancelled"
    for args in (["trigger", job_id], ["reschedule", job_id, "--every", "60000"]):
        refused = cli(*args, store=store)
        assert refused.exit_code == 1 and "cancelled" in refused.stderr, args  # a conflict
    missing = cli("show", "job_nope", store=store)
    assert missing.exit_code == 1 and "not found" in missing.stderr


def test_schedule_cron_in_a_time_zone_with_input(store: str) -> None:
    create_job(store)
    result = schedule(
        store, "--cron", "0 9 * * *", "--tz", "America/New_York", "--input", '{"user": 42}', "--limit", "3"
    )
    assert result["status"] == "scheduled" and result["recurring"] is True
    [s] = ok("schedules", store=store)
    assert (s["cron"], s["tz"], s["limit"], s["input"]) == ("0 9 * * *", "America/New_York", 3, {"user": 42})
    human = cli("schedules", store=store)
    assert human.exit_code == 0 and "America/New_York" in human.stdout


def test_schedule_with_a_key_is_made_once(store: str) -> None:
    create_job(store)
    first = schedule(store, "--key", "daily-hello", "--cron", "0 9 * * *")
    assert schedule(store, "--key", "daily-hello", "--every", "60000") == first
    [s] = ok("schedules", store=store)
    assert (s["job_id"], s["key"], s["cron"]) == (first["job_id"], "daily-hello", "0 9 * * *")
    shown = cli("show", first["job_id"], store=store)
    assert shown.exit_code == 0 and "daily-hello" in shown.stdout, shown.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--input", "{not json"], "input: is not valid JSON"),
        (["--input", "[1, 2]"], "input: must be a JSON object"),
        (["--cron", "0 9 * * *", "--every", "1000"], "exactly one of cron or every"),
        (["--cron", "0 9 * * *", "--tz", "Mars/Olympus"], "unknown time zone"),
        (["--event", "missing"], "no job with tag 'missing'"),
    ],
)
def test_schedule_validation_errors_exit_2(store: str, extra: list[str], message: str) -> None:
    create_job(store)
    args = ["schedule", "--event", "hello", "--env", "prd", "--product-tag", "p", *extra]
    result = cli(*args, store=store)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert ok("schedules", store=store) == []


def test_bad_filter_exits_2(store: str) -> None:
    result = cli("runs", "--phase", "exploded", store=store)
    assert result.exit_code == 2 and "phase:" in result.stderr


# ------------------------------------------------------------------------------------------------ runs


def test_runs_show_and_retry_after_draining(store: str) -> None:
    create_job(store, "hello")
    create_job(store, "broken")
    schedule(store, "--input", '{"name": "cli"}', tag="hello")
    broken_id = schedule(store, tag="broken")["job_id"]
    with Ductape(store) as dt:

        @dt.function("hello")
        def hello(input: dict[str, Any], ctx: object) -> dict[str, Any]:
            return {"hello": input["name"]}

        @dt.function("broken")
        def broken(input: dict[str, Any], ctx: object) -> None:
            raise RuntimeError("boom")

        summary = dt.drain()
    assert (summary.completed, summary.failed) == (1, 1)

    [done] = ok("runs", "--phase", "completed", store=store)
    assert done["job_tag"] == "hello" and done["output"] == {"hello": "cli"}
    [failed] = ok("runs", "--phase", "failed", "--job-id", broken_id, store=store)
    assert "RuntimeError: boom" in failed["error"]
    assert [r["id"] for r in ok("runs", "--job", "broken", store=store)] == [failed["id"]]
    assert len(ok("runs", "--limit", "1", store=store)) == 1

    shown = ok("run", "show", failed["id"], store=store)
    assert [a["attempt"] for a in shown["attempts"]] == [1]
    assert "boom" in shown["attempts"][0]["error"]
    human = cli("run", "show", failed["id"], store=store)
    assert human.exit_code == 0 and "Attempts (1)" in human.stdout

    retried = ok("run", "retry", failed["id"], store=store)
    assert retried["phase"] == "queued"
    assert ok("runs", "--phase", "failed", store=store) == []


# --------------------------------------------------------------------------------------------- preview


def test_preview_across_the_dst_change() -> None:
    rows = ok(
        "preview", "--cron", "0 9 * * *", "--tz", "America/New_York", "-n", "4", "--start", "2026-03-06T00:00:00Z"
    )
    assert [r["utc"] for r in rows] == [
        "2026-03-06T14:00:00Z",
        "2026-03-07T14:00:00Z",
        "2026-03-08T13:00:00Z",  # clocks went forward: 09:00 EDT is 13:00 UTC
        "2026-03-09T13:00:00Z",
    ]
    assert {r["local"][11:] for r in rows} == {"09:00:00-05:00", "09:00:00-04:00"}
    human = cli("preview", "--cron", "0 9 * * *", "--tz", "America/New_York", "-n", "3", "--start", "2026-03-07")
    assert human.exit_code == 0 and "EDT" in human.stdout and "13:00:00Z" in human.stdout
    # a zone with spaces around it, as schedule and the API take it: it was taken and then crashed the table
    spaced = cli("preview", "--cron", "0 9 * * *", "--tz", " America/New_York ", "-n", "1", "--start", "2026-03-07")
    assert spaced.exit_code == 0 and "Next fire time of" in spaced.stdout and "EST" in spaced.stdout, spaced.stderr


def test_preview_every_and_errors() -> None:
    rows = ok("preview", "--every", "1500", "-n", "3", "--start", "2026-01-01T00:00:00Z")
    assert [r["utc"] for r in rows] == [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:01.500000Z",
        "2026-01-01T00:00:03Z",
    ]
    assert cli("preview", "--cron", "61 * * * *").exit_code == 2
    assert cli("preview").exit_code == 2
    # --limit, as repeat.limit takes it in Python and REST (the option did not exist)
    limited = ok("preview", "--every", "60000", "--limit", "2", "-n", "5", "--start", "2026-01-01T00:00:00Z")
    assert [r["utc"] for r in limited] == ["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"]
    assert cli("preview", "--every", "60000", "--limit", "0").exit_code == 2


# -------------------------------------------------------------------------------------- --app and demo


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A user's module in the current directory, named uniquely, importable as ``--app name:app``."""
    name = f"user_jobs_{os.getpid()}_{time.monotonic_ns()}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from ductape_jobs import Ductape

            app = Ductape("sqlite:///app.db")

            @app.function("hello")
            def hello(input, ctx):
                return {"hello": input.get("name")}
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield name
    module = sys.modules.pop(name, None)
    if module is not None:
        module.app.close()


SCHEDULE = ("schedule", "--event", "hello", "--env", "prd", "--product-tag", "p")


@pytest.mark.parametrize(
    "command",
    [("schedules",), ("runs",), ("job", "list"), ("show", "job_x"), ("cancel", "job_x"), ("stats",), ("prune",),
     ("backup", "copy.db"), ("drain",), ("migrate", "--check"), SCHEDULE],
)  # fmt: skip
def test_a_command_on_a_sqlite_file_that_is_not_there_says_so_and_makes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """``ductape schedules --store sqlite:///typo.db`` made and migrated an empty file and listed nothing (a backup
    copied it, a cancel said the schedule was not found): a mistyped path, or a command run in the wrong directory
    with the default store, looked like an empty store and left one behind. (``schedule`` too: it needs a job the
    store holds.) The message says where the path came from."""
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "typo.db"
    result = cli(*command, store=f"sqlite:///{typo}")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"error: store: no SQLite store at {str(typo)!r}: check the path"), result.stderr
    default = cli(*command)  # no --store: the default, ./ductape.db
    assert default.exit_code == 2 and "no SQLite store at './ductape.db' (the default): " in default.stderr
    monkeypatch.setenv("DUCTAPE_STORE", f"sqlite:///{typo}")
    from_env = CliRunner().invoke(app, list(command), env={"DUCTAPE_APP": None, "DUCTAPE_PRODUCT_FILE": None})
    assert from_env.exit_code == 2 and f"no SQLite store at {str(typo)!r} (from $DUCTAPE_STORE): " in from_env.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing made: no store, no copy


@pytest.mark.parametrize(
    "command",
    [("job", "create", "--name", "H", "--tag", "hello", "--event-type", "FUNCTION", "--event-tag", "hello"),
     ("apikey", "create", "--name", "ci"), ("schedule-many", "--file", "requests.json")],
)  # fmt: skip
def test_a_command_that_makes_the_first_record_makes_the_file(tmp_path: Path, command: tuple[str, ...]) -> None:
    (tmp_path / "requests.json").write_text("[]")
    command = tuple(str(tmp_path / a) if a == "requests.json" else a for a in command)
    fresh = tmp_path / "fresh.db"
    result = cli(*command, store=f"sqlite:///{fresh}")
    if command[0] == "schedule-many":  # a batch schedules jobs the store holds: it needs one already
        assert result.exit_code == 2 and not fresh.exists()
        return
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert fresh.exists()


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (("job", "create", "--name", "H", "--tag", "bad tag!", "--event-type", "FUNCTION", "--event-tag", "h"), "tag"),
        (("job", "create", "--name", "H", "--tag", "h", "--event-type", "FUNCTION", "--event-tag", "h",
          "--product", "p1", "--resource", "r1"), "resources[0]"),
        (("webhook", "create", "--product-tag", "p", "--url", "notaurl", "--event", "job.completed"), "url"),
        (("apikey", "create", "--name", ""), "name"),
    ],
)  # fmt: skip
def test_a_record_refused_for_bad_input_leaves_no_new_store(
    tmp_path: Path, command: tuple[str, ...], field: str
) -> None:
    """A command that makes a store to hold the record it makes: ``job create --tag 'bad tag!'``, a ``webhook
    create`` or an ``apikey create`` refused exited 2 and left a new, migrated, empty store behind (two reviews)."""
    fresh = tmp_path / "fresh.db"
    bad = cli(*command, store=f"sqlite:///{fresh}")
    assert bad.exit_code == 2 and bad.stderr.startswith(f"error: {field}: "), bad.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    Ductape(f"sqlite:///{fresh}").close()
    again = cli(*command, store=f"sqlite:///{fresh}")  # a store that was there stays
    assert again.exit_code == 2 and fresh.exists()


def test_a_missing_store_is_refused_before_the_app_is_imported(tmp_path: Path, user_module: str) -> None:
    """``--app m:app --store sqlite:///typo.db``: the app's own ``Ductape("sqlite:///app.db")`` made its file before
    the typo was refused. A SQLite URI (``file:...``) is refused: a store is named by its path."""
    result = cli("schedules", "--app", f"{user_module}:app", store=f"sqlite:///{tmp_path / 'typo.db'}")
    assert result.exit_code == 2 and "no SQLite store at" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == []
    uri = cli("schedules", store="sqlite:///file:uri.db")  # made silently (0644), by any command: one way, a path
    assert uri.exit_code == 2 and "is a SQLite URI; name the file: sqlite:///path/to/jobs.db" in uri.stderr
    assert not (tmp_path / "uri.db").exists()


def test_app_alone_in_a_folder_without_its_store_is_refused_and_makes_none(tmp_path: Path, user_module: str) -> None:
    """``--app m:app`` alone, where the app's ``Ductape("sqlite:///app.db")`` has no store yet (the wrong folder):
    its import made an empty one, ``runs`` listed "Runs (0)" and ``copy`` said "Copied" (a probe as a new user). A
    command that makes a store still makes it there, and an app already imported (its store made, holding a job) is
    taken as it is: nothing of it is removed."""
    spec = f"{user_module}:app"
    for command in (("runs",), ("schedules",), ("copy", "--to", f"sqlite:///{tmp_path / 'copy.db'}")):
        refused = cli(*command, "--app", spec)
        assert refused.exit_code == 2, (command, refused.stdout, refused.stderr)
        assert refused.stderr.startswith("error: store: no SQLite store at 'app.db'"), refused.stderr
        assert refused.stderr.rstrip().endswith(f"(the store --app {spec} opens)"), refused.stderr
        assert sorted(p.name for p in tmp_path.iterdir() if ".db" in p.name) == [], command
    ok("job", "create", "--name", "Hello", "--tag", "hello", "--event-type", "FUNCTION", "--event-tag", "hello",
       "--app", spec)  # fmt: skip
    assert [j["tag"] for j in ok("job", "list", "--app", spec)] == ["hello"]  # the module as imported: kept
    assert (tmp_path / "app.db").exists()


def test_app_alone_whose_postgresql_schema_holds_no_store_is_refused_and_makes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PostgreSQL case of the test above (an earlier note said it was untested): the app's
    ``Ductape("postgresql://...?schema=<new>")``, imported for a command that makes no store, neither makes the
    schema nor migrates it, and the refusal names the store ``--app`` opens."""
    from storekit import PG_URL, pg_admin, require_postgres, with_query

    require_postgres()
    monkeypatch.chdir(tmp_path)
    schema = f"cli_app_{os.getpid()}_{time.monotonic_ns()}"
    name = f"pg_app_{os.getpid()}_{time.monotonic_ns()}"
    url = with_query(PG_URL, schema=schema)
    (tmp_path / f"{name}.py").write_text(f"from ductape_jobs import Ductape\napp = Ductape({url!r})\n")
    try:
        for command in (("runs",), ("schedules",)):
            refused = cli(*command, "--app", f"{name}:app")
            assert refused.exit_code == 2, (command, refused.stdout, refused.stderr)
            assert refused.stderr.startswith(f"error: store: no ductape-jobs store in schema '{schema}'"), (
                refused.stderr
            )
            assert refused.stderr.rstrip().endswith(f"(the store --app {name}:app opens)"), refused.stderr
            assert pg_admin("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [schema]) == [(0,)]
        made = cli("job", "create", "--name", "H", "--tag", "h", "--event-type", "FUNCTION", "--event-tag", "h",
                   "--app", f"{name}:app")  # fmt: skip
        assert made.exit_code == 0, made.stderr  # a command that makes a store makes it there
        assert pg_admin("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [schema]) == [(1,)]
    finally:
        pg_admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_session_commands_with_app_open_its_store_as_it_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``session start --app`` needs the app's products and secrets, not a store: it is not refused where the app's
    store is not made yet (the app makes it, as it says)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "products.toml").write_text(
        '[[products]]\ntag = "shop"\n[products.envs.prd]\nsession_secret = "0123456789abcdef0123456789abcdef"\n'
        '[products.sessions.user]\nname = "User"\nschema = { id = "integer" }\nselector = "$Session{id}"\n'
    )
    name = f"sess_app_{os.getpid()}_{time.monotonic_ns()}"
    (tmp_path / f"{name}.py").write_text(
        'from ductape_jobs import Ductape\napp = Ductape("sqlite:///app.db", product_file="products.toml")\n'
    )
    where = ("--env", "prd", "--product-tag", "shop", "--app", f"{name}:app")
    made = cli("session", "start", "user", "--data", '{"id": 7}', *where, "--json")
    assert made.exit_code == 0, (made.stdout, made.stderr)
    assert json.loads(made.stdout)["session"]


def test_session_commands_need_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A session is signed with its product's secret and nothing is stored: ``session start`` made ./ductape.db,
    and ``session verify`` refused to run where there was none."""
    monkeypatch.chdir(tmp_path)
    products = tmp_path / "products.toml"
    products.write_text(
        '[[products]]\ntag = "shop"\n[products.envs.prd]\nsession_secret = "0123456789abcdef0123456789abcdef"\n'
        '[products.sessions.user]\nname = "User"\nschema = { id = "integer" }\nselector = "$Session{id}"\n'
    )
    where = ("--env", "prd", "--product-tag", "shop")
    made = cli("--product-file", str(products), "session", "start", "user", "--data", '{"id": 7}', *where, "--json")
    assert made.exit_code == 0, (made.stdout, made.stderr)
    token = json.loads(made.stdout)["session"]
    verified = cli("--product-file", str(products), "session", "verify", token, *where, "--json")
    assert verified.exit_code == 0 and json.loads(verified.stdout) == {"data": {"id": 7}}, verified.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["products.toml"]


def test_app_option_uses_the_apps_store_unless_store_overrides(tmp_path: Path, user_module: str) -> None:
    create_job(f"sqlite:///{tmp_path / 'app.db'}", "in-app")
    assert [j["tag"] for j in ok("job", "list", "--app", f"{user_module}:app")] == ["in-app"]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    Ductape(other).close()
    assert ok("job", "list", "--app", f"{user_module}:app", store=other) == []

    missing = cli("job", "list", "--app", "no_such_module_here:app")
    assert missing.exit_code == 2 and "cannot import module 'no_such_module_here'" in missing.stderr
    for path in ("./app.py", ".app:ductape", "jobs/app.py"):  # importlib raised TypeError: a traceback, exit 1
        given = cli("job", "list", "--app", path)
        assert given.exit_code == 2 and "is a file's path, not MODULE:ATTR" in given.stderr, (path, given.stderr)
    not_a_client = cli("job", "list", "--app", f"{user_module}:Ductape")
    assert not_a_client.exit_code == 2 and "not a Ductape" in not_a_client.stderr


def test_app_option_takes_an_async_client_and_passes_over_a_web_app(tmp_path: Path, user_module: str) -> None:
    """A FastAPI module (docs/how-to/fastapi.md) holds an ``AsyncDuctape`` named ``ductape`` beside its ``app``:
    ``--app main:ductape`` said "is a AsyncDuctape, not a Ductape", and ``--app main`` named ``main:app``, a FastAPI
    app, which the user never typed."""
    (tmp_path / "web_main.py").write_text(
        "from ductape_jobs import AsyncDuctape\n"
        "class FastAPI: ...\n"
        "app = FastAPI()\n"
        f"ductape = AsyncDuctape('sqlite:///{tmp_path / 'web.db'}')\n"
    )
    create_job(f"sqlite:///{tmp_path / 'web.db'}", "in-web")
    for spec in ("web_main:ductape", "web_main"):
        assert [j["tag"] for j in ok("job", "list", "--app", spec)] == ["in-web"], spec
    (tmp_path / "web_only.py").write_text("class FastAPI: ...\napp = FastAPI()\n")
    refused = cli("job", "list", "--app", "web_only")
    assert refused.exit_code == 2, refused.stderr
    assert "web_only:app is a FastAPI, not a Ductape or an AsyncDuctape" in refused.stderr
    sys.modules.pop("web_only", None)
    sys.modules.pop("web_main").ductape.sync.close()


def test_demo_runs_for_n_seconds_and_is_idempotent(store: str) -> None:
    first = cli("demo", "--seconds", "4", store=store)  # its one-off is due at 3 s
    assert first.exit_code == 0, (first.output, first.exception)
    assert "Recent runs" in first.stdout

    ticks = ok("runs", "--job", "demo.tick", "--phase", "completed", store=store)
    assert ticks and all(r["output"]["tick"] for r in ticks)
    flaky = ok("runs", "--job", "demo.flaky", store=store)
    assert flaky[-1]["phase"] == "completed" and flaky[-1]["retry_count"] == 1
    attempts = ok("run", "show", flaky[-1]["id"], store=store)["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert "first attempt always fails" in attempts[0]["error"] and attempts[1]["error"] is None

    again = cli("demo", "--seconds", "0.5", store=store)
    assert again.exit_code == 0, again.output
    # a stopped demo leaves no schedule live: a worker started on this store later, without the demo's functions,
    # failed their runs for ever (found by a new-user probe)
    assert ok("schedules", "--status", "active", store=store) == [] and "its schedules cancelled" in again.stdout
    stopped = [s for s in ok("schedules", "--status", "cancelled", store=store) if s["job_tag"] == "demo.tick"]
    assert [s["reason"] for s in stopped] == ["cancelled: demo stopped"] * 2
    # a one-off that ran is left completed, not relabelled cancelled (a review)
    ran = {r["job_id"] for r in ok("runs", "--job", "demo.once", "--phase", "completed", store=store)}
    statuses = {s["job_id"]: s["status"] for s in ok("schedules", store=store) if s["job_tag"] == "demo.once"}
    assert ran and all(statuses[job_id] == "completed" for job_id in ran), (ran, statuses)


def test_each_served_demo_key_revokes_the_ones_printed_before(tmp_path: Path) -> None:
    """``demo --serve`` prints a new admin key at each start; the keys of earlier starts stop working, and a key
    of another name is left alone."""
    from ductape_jobs.apikeys import ApiKeys
    from ductape_jobs.cli.demo import demo_key

    with Ductape(f"sqlite:///{tmp_path / 'demo.db'}") as dt:
        keys = ApiKeys(dt.store, dt.clock)
        mine = keys.create("ops").key
        first, second = demo_key(dt), demo_key(dt)
        assert keys.verify(first) is None and keys.verify(second) is not None and keys.verify(mine) is not None
        assert sorted((k.name, k.revoked_at is None) for k in keys.list()) == [
            ("demo", False),
            ("demo", True),
            ("ops", True),
        ]


# ------------------------------------------------------------------------------------ a real process


def test_a_call_builds_only_the_command_it_names(capsys: pytest.CaptureFixture[str]) -> None:
    def names(cli_app: Any) -> list[str]:
        return [c.name or c.callback.__name__ for c in cli_app.registered_commands] + [
            g.name for g in cli_app.registered_groups
        ]

    assert names(app.narrowed(["worker", "--app", "m:app"])) == ["worker"]
    assert names(app.narrowed(["job", "list", "--json"])) == ["job"]
    assert names(app.narrowed(["schedule-many", "--help"])) == ["schedule-many"]
    assert app.narrowed(["worker"]).registered_callback is app.registered_callback  # --product-file still applies
    for argv in ([], ["--help"], ["--product-file", "p.yaml", "worker"], ["wrker"]):  # no command first: all of them
        assert app.narrowed(argv) is app
    assert len(names(app)) > 10  # the app itself keeps every command
    with pytest.raises(SystemExit) as stopped:
        app(["worker", "--help"])
    assert stopped.value.code == 0 and "--concurrency" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:
        app(["wrker"])
    assert stopped.value.code == 2 and "worker" in capsys.readouterr().err


def test_a_commands_help_names_only_options_it_takes() -> None:
    """``demo`` and ``apikey`` take no --app: their --help (the --store default) does not send a user to it."""

    def leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
        for name, sub in getattr(command, "commands", {}).items():
            yield from leaves(sub, (*path, name)) if hasattr(sub, "commands") else [((*path, name), sub)]

    without = [
        path for path, c in leaves(typer.main.get_command(app)) if "--app" not in {o for p in c.params for o in p.opts}
    ]
    assert ("demo",) in without and ("apikey", "list") in without
    for path in without:
        shown = cli(*path, "--help")
        assert shown.exit_code == 0 and not re.search(r"--app(?![\w-])", shown.stdout), (path, shown.stdout)


def test_every_option_naming_a_product_takes_both_spellings(store: str) -> None:
    """A new-user probe: ``ductape runs --product`` and ``ductape resources --product-tag`` were "No such option" (one
    command spelt it one way, the next the other). Every option naming a product takes both."""

    def leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
        for name, sub in getattr(command, "commands", {}).items():
            yield from leaves(sub, (*path, name)) if hasattr(sub, "commands") else [((*path, name), sub)]

    named = {
        path: set(p.opts)
        for path, c in leaves(typer.main.get_command(app))
        for p in c.params
        if {"--product", "--product-tag"} & set(p.opts)
    }
    assert len(named) > 15 and ("runs",) in named and ("resources",) in named and ("job", "list") in named
    assert {path: opts for path, opts in named.items() if not {"--product", "--product-tag"} <= opts} == {}
    for spelling in ("--product", "--product-tag"):
        shown = cli("runs", spelling, "nope", "--json", "--store", store)
        assert shown.exit_code == 0 and json.loads(shown.stdout) == [], shown.output
        shown = cli("resources", spelling, "nope", "--json", "--store", store)
        assert shown.exit_code == 0, shown.output


def test_every_number_option_takes_ascii_digits_only(store: str) -> None:
    """A review: typer's INT and FLOAT read an option with ``int()`` and ``float()``, which take any Unicode digit
    (``--every ٦٠٠٠٠`` was 60,000; the API refuses it). Every number option is read by ``integer`` or
    ``decimal`` (or ``port``)."""

    def leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
        for name, sub in getattr(command, "commands", {}).items():
            yield from leaves(sub, (*path, name)) if hasattr(sub, "commands") else [((*path, name), sub)]

    params = [(path, p) for path, c in leaves(typer.main.get_command(app)) for p in c.params]
    numbers = [(path, p.opts) for path, p in params if type(p.type).__name__ in ("FuncParamType",)]
    assert len(numbers) >= 25 and (("preview",), ["--every"]) in numbers
    plain = [(path, p.opts) for path, p in params if "Int" in type(p.type).__name__ or "Float" in type(p.type).__name__]
    assert plain == []
    arabic = "\u0666\u0660\u0660\u0660\u0660"  # 60000
    refused = cli("preview", "--every", arabic, "-n", "3", "--start", "1800000000")
    assert refused.exit_code == 2 and "is not a whole number" in refused.output
    refused = cli("runs", "--limit", "\uff15", "--store", store)
    assert refused.exit_code == 2 and "is not a whole number" in refused.output
    refused = cli("serve", "--port", "70000", "--store", store)
    assert refused.exit_code == 2 and "is not a port" in refused.output
    assert cli("preview", "--every", "60000", "-n", "3", "--start", "1800000000").exit_code == 0


def test_a_flags_help_shows_no_value_to_give_it() -> None:
    """A new-user probe: ``--help`` showed ``--json <bool>`` (typer 0.29 gives every boolean option a type column),
    and ``ductape runs --json true`` then failed: a flag takes no value."""

    def paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from paths(sub, (*path, name))

    shown = {path: cli(*path, "--help").stdout.splitlines() for path in paths(typer.main.get_command(app))}
    assert len(shown) > 30 and any("--json" in line for line in shown[("runs",)])
    said = [line for lines in shown.values() for line in lines if "<bool>" in line]
    assert all("--help" in line for line in said)  # typer 0.29's own --help keeps its <bool>: not ours to set
    # nor a docstring's markup (a new-user probe: job update's help showed ``--keep-completed default``)
    assert [line for lines in shown.values() for line in lines if "``" in line] == []


def test_version_prints_the_packages_version_without_building_a_command() -> None:
    from ductape_jobs._version import __version__
    from ductape_jobs.store.sql import migration_versions, release_version

    shown = cli("--version")
    assert (shown.exit_code, shown.stdout) == (0, f"ductape-jobs {__version__} (schema {release_version()})\n")
    for store in ("sqlite", "postgres"):  # one numbering: the release's schema version is either store's
        assert release_version() == max(migration_versions(f"ductape_jobs.store.{store}.migrations"))
    narrow = app.narrowed(["--version"])
    assert (narrow.registered_commands, narrow.registered_groups) == ([], [])  # none is built: it answers at once
    assert narrow.registered_callback is app.registered_callback
    assert "--version" in cli("--help").stdout


def test_version_as_an_options_value_is_that_value(store: str) -> None:
    """``--version`` anywhere in the line narrowed the app to no command: ``job create --name --version`` answered
    "No such command 'job'" after an option (``ductape`` narrows the app to the command named first; CliRunner
    does not)."""
    job = ["job", "create", "--name", "--version", "--tag", "v", "--event-type", "FUNCTION", "--event-tag", "f"]
    argv = ["--product-file", "", *job]  # an option first: the whole app
    narrow = app.narrowed(argv)
    assert "job" in [g.name for g in narrow.registered_groups]
    made = CliRunner().invoke(narrow, [*argv, "--store", store, "--json"], env=CLEAN_ENV)
    assert made.exit_code == 0, (made.stdout, made.stderr)
    assert json.loads(made.stdout)["name"] == "--version"


@pytest.mark.slow
def test_worker_process_runs_a_job_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "myjobs.py").write_text(
        textwrap.dedent(
            """
            from ductape_jobs import Ductape

            app = Ductape("sqlite:///module-default.db")  # the command's --store overrides this

            @app.function("hello")
            def hello(input, ctx):
                return {"hello": input["name"], "attempt": ctx.attempt}
            """
        )
    )
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("DUCTAPE_APP", "DUCTAPE_STORE")}
    exe = Path(sys.executable).parent / "ductape"
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(exe), "worker", "--app", "myjobs:app", "--store", url, "--poll", "0.05"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        with Ductape(url) as dt:
            dt.job.create({"name": "Hello", "tag": "hello", "event_type": "FUNCTION", "event_tag": "hello"})
            job_id = dt.job.schedule({"event": "hello", "env": "prd", "product_tag": "p", "input": {"name": "cli"}})
            deadline = time.monotonic() + 20
            while True:
                runs = dt.job.runs(job_id=job_id.job_id)
                if runs and runs[0].phase is RunPhase.COMPLETED:
                    break
                assert proc.poll() is None, f"worker exited early:\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"run not completed in time: {runs}\n{log_path.read_text()}"
                time.sleep(0.05)
            assert runs[0].output == {"hello": "cli", "attempt": 1}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, log_path.read_text()
        logs = log_path.read_text()
        assert "functions: hello" in logs and "received SIGTERM" in logs and "Traceback" not in logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_webhook_allowlists_and_store_urls_exit_2_and_open_nothing(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'cli.db'}"
    for command in ("worker", "serve"):
        result = cli(command, "--webhook-allow", "127.0.0.0/8", "--webhook-allow", "intranet", store=store)
        assert result.exit_code == 2 and "webhook_allow: 'intranet' is not a network" in result.stderr
    unknown = cli("job", "list", store=store + "?mode=ro")
    assert unknown.exit_code == 2 and "unknown parameter 'mode'" in unknown.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_store_urls_password_the_driver_quotes_is_not_printed() -> None:
    """``error: cannot connect ... invalid percent-encoded token: "<password>"``: the store's URL, masked where the
    CLI names it, was printed whole in libpq's reason."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    url = "postgresql://postgres:Sup3r%zzStoreSecret@127.0.0.1:5432/postgres?pool_timeout=1"
    result = cli("schedules", store=url)  # (a variable: a logging error's traceback would quote this line)
    assert result.exit_code == 1
    assert "Sup3r%zzStoreSecret" not in result.output + result.stderr
    assert "error: cannot connect to PostgreSQL at postgresql://postgres:***@" in result.stderr
    assert 'invalid percent-encoded token: "[secret]"' in result.stderr


def test_job_update_and_the_seed_fields_of_schedule(store: str) -> None:
    refused = cli("job", "create", "--name", "x", "--tag", "x", "--event-type", "FUNCTION", "--event-tag", "x",
                  "--intervals", "5000", store=store)  # fmt: skip
    assert refused.exit_code == 2 and "error: executions: is required with intervals" in refused.stderr
    create_job(store)
    updated = ok("job", "update", "hello", "--name", "Hi", "--intervals", "5000", store=store)
    assert (updated["name"], updated["intervals"], updated["tag"]) == ("Hi", 5000, "hello")
    missing = cli("job", "update", "nope", "--name", "x", store=store)
    assert missing.exit_code == 1 and "not found" in missing.stderr
    made = schedule(store, "--every", "60000", "--overlap", "skip", "--misfire", "skip", "--pause-on-failure")
    (shown,) = [s for s in ok("schedules", store=store) if s["job_id"] == made["job_id"]]
    assert (shown["overlap"], shown["misfire"], shown["pause_on_failure"]) == ("skip", "skip", True)
    for option, field in (("--cache", "cache"), ("--session", "session")):
        refused = cli("schedule", "--event", "hello", "--env", "prd", "--product-tag", "p", option, "x:y", store=store)
        assert refused.exit_code == 2 and f"{field}:" in refused.stderr, refused.stderr


def _printed(renderable: Any, width: int) -> list[str]:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable, crop=False)
    return out.getvalue().splitlines()


def test_a_table_is_widened_only_for_what_it_would_cut() -> None:
    """A text made to be cut (an error's first line), or a value that folds (a detail view's), does not widen a
    table past the console; a value that is not to be cut (an id, a time, a word) does; a render leaves the table as
    it was (a second one, narrower, laid out as a fresh table)."""
    from ductape_jobs.cli import render

    table = render.new_table("Runs")
    render.id_column(table, "run_id")
    table.add_column("at", no_wrap=True)
    table.add_column("error", max_width=60)
    table.add_row(
        "run_1", "2026-12-05 10:21:01Z", render.squeeze("HTTPSConnectionPool(host='billing.internal.example.com'")
    )
    assert max(map(len, _printed(table, 60))) <= 60  # the error is cut to fit
    assert any("2026-12-05 10:21:01Z" in line for line in _printed(table, 30))  # the time is not

    detail = render.fields("Run", [("output", "x" * 1000)])
    assert max(map(len, _printed(detail, 80))) <= 80  # folded, as before

    words = render.new_table("Words")
    words.add_column("name")
    words.add_row("word " * 10 + "averyveryverylongwordthatislong")
    first, again = _printed(words, 100), _printed(words, 20)
    fresh = render.new_table("Words")
    fresh.add_column("name")
    fresh.add_row("word " * 10 + "averyveryverylongwordthatislong")
    assert again == _printed(fresh, 20) and first != again
    assert any("averyveryverylongwordthatislong" in line for line in again)  # a word is not cut


def test_job_list_and_show_say_the_same_of_its_executions(store: str) -> None:
    """A job with no intervals runs once, whatever its executions: list said 1 where show said 0."""
    create_job(store, "once")
    create_job(store, "every", "--intervals", "60000", "--executions", "0")
    create_job(store, "thrice", "--executions", "3", "--intervals", "60000")
    shown = {tag: cli("job", "show", tag, store=store).stdout for tag in ("once", "every", "thrice")}
    assert "0 (no intervals: a schedule without repeat runs once)" in shown["once"]
    assert "0 (unlimited)" in shown["every"]
    assert "3 (a schedule without repeat runs 3 times)" in shown["thrice"]
    lines = cli("job", "list", store=store).stdout.splitlines()
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    assert {row[0]: row[4] for row in cells} == {"once": "1", "every": "∞", "thrice": "3"}


def test_a_starting_worker_names_the_functions_its_products_map_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker whose FUNCTIONs come from a product file logged "functions: none (start with --app)", and then ran
    them."""
    from ductape_jobs.cli.common import log_started, started_line

    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}") as dt:
        assert started_line(dt).endswith("functions: none (start with --app, or map them in a product's functions)")
        with caplog.at_level(logging.INFO, logger="ductape_jobs.cli"):  # a worker without any: a warning
            log_started(dt)
            log_started(dt, worker=False)  # ductape serve --no-worker: only what it is
        assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
        assert "a FUNCTION run this worker claims fails that attempt" in caplog.records[0].getMessage()
        dt.products.add({"tag": "shop", "envs": {"prd": {}}, "functions": {"slow": "fns:slow", "fast": "fns:fast"}})
        dt.function("report")(lambda input, ctx: None)
        assert (
            started_line(dt) == f"store sqlite:///{tmp_path / 'jobs.db'}; functions: report, fast (shop), slow (shop)"
        )


def test_a_starting_worker_names_its_sqlite_file_by_its_whole_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker started in another directory than its app's made a ./ductape.db of its own and said only "store
    sqlite:///./ductape.db" (an async web-app probe): the path it names is the file's, whole."""
    from ductape_jobs.cli.common import started_line

    monkeypatch.chdir(tmp_path)
    with Ductape("sqlite:///./ductape.db") as dt:
        assert started_line(dt).startswith(f"store sqlite:///{tmp_path / 'ductape.db'}; ")


def test_a_starting_worker_names_its_postgresql_store_by_its_url_without_the_password() -> None:
    """On PostgreSQL a worker logged ``store PostgresStore``: not which database or schema (a newcomer's probe)."""
    from storekit import PG_URL, pg_admin, require_postgres, with_query

    from ductape_jobs.cli.common import started_line

    require_postgres()
    schema = f"cli_label_{os.getpid()}_{time.monotonic_ns()}"
    url = with_query(PG_URL, schema=schema)
    secret = url.replace("postgresql://postgres@", "postgresql://postgres:hunter2-pw@", 1)
    assert secret != url
    try:
        with Ductape(url) as dt:
            assert started_line(dt).startswith(f"store {url}; ")
        from ductape_jobs.store.postgres.store import PostgresStore

        store = PostgresStore(secret)  # trust auth: the password is not needed, and never shown
        try:
            shown = store.label
        finally:
            store.close()
        assert "hunter2-pw" not in shown and shown.startswith("postgresql://postgres:") and schema in shown
    finally:
        pg_admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_command_named_first_is_built_alone() -> None:
    """``ductape copy ...`` builds the copy command only, and imports its module only (in a fresh interpreter: this
    one's ``app`` has them all); a group its group only; the whole app (``--help``, an option first) has them all, in
    the order its help always had."""
    code = """
import json, sys
from ductape_jobs.cli.main import cli
copy, hooks = cli.narrowed(["copy", "--help"]), cli.narrowed(["webhook", "list"])
print(json.dumps({
    "copy": [[c.name for c in copy.registered_commands], [g.name for g in copy.registered_groups]],
    "hooks": [[c.name for c in hooks.registered_commands], [g.name for g in hooks.registered_groups]],
    "loaded": sorted(m for m in sys.modules if m.startswith("ductape_jobs.cli.")),
}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    shown = json.loads(done.stdout)
    assert shown["copy"] == [["copy"], []] and shown["hooks"] == [[], ["webhook"]]
    assert {"ductape_jobs.cli.transfer", "ductape_jobs.cli.webhooks"} <= set(shown["loaded"])
    assert not {"ductape_jobs.cli.serve", "ductape_jobs.cli.demo", "ductape_jobs.cli.features"} & set(shown["loaded"])
    from ductape_jobs.cli.main import PARTS

    whole = app.narrowed(["--store", "x.db"])
    assert whole is app
    names = [c.name or c.callback.__name__ for c in whole.registered_commands if c.callback is not None]
    groups = [g.name for g in whole.registered_groups]
    assert names[: names.index("resources") + 1] == [n for n in PARTS if n not in groups]
    assert groups == ["job", "run", "feature", "apikey", "session", "webhook"]
    assert "worker" in names and "schedule" in names


def test_a_starting_worker_warns_of_a_product_function_whose_module_is_not_found(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A product file's ``module:function`` is imported when first run: a module that is not there (a typo, a folder
    not on the path) failed every run of it while the worker's start said nothing. Looked up, never imported, at
    the start; a function registered under that tag, or a module that is there, says nothing."""
    from ductape_jobs.cli.common import log_started

    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}") as dt:
        mapped = {"lost": "no_such_module_anywhere.tasks:run", "there": "json:dumps", "mine": "nowhere_either:f"}
        dt.products.add({"tag": "shop", "envs": {"prd": {}}, "functions": mapped})
        dt.function("mine")(lambda input, ctx: None)
        with caplog.at_level(logging.INFO, logger="ductape_jobs.cli"):
            log_started(dt)
            log_started(dt, worker=False)  # ductape serve --no-worker claims no run: nothing to warn of
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and "FUNCTION lost (shop) maps to 'no_such_module_anywhere.tasks:run'" in warned[0]
        assert "no_such_module_anywhere" not in sys.modules
