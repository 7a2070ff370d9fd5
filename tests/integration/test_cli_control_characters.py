"""Control characters never reach the operator's terminal through ``ductape``: a name, a reason or a key's name
stored before the rule that refuses them, a run's error (a traceback in ANSI colours) or a run's output are shown
with each control character (C0 but newline and tab, DEL, C1) as its escape (``\\x1b``), never sent raw. rich's
``Text`` drops only BEL, BS, VT, FF and CR: ESC went through, so a job named ``\\x1b]0;owned\\x07`` retitled the
operator's terminal and ``\\x1b[2J`` cleared it. ``--json`` stays valid JSON that writes them as ``\\u001b``."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ductape_jobs import Ductape
from ductape_jobs.cli.main import app

# no colour forced: rich writes no escape sequence of its own, so any control character in the output is data's
CLEAN_ENV: dict[str, str | None] = {
    "DUCTAPE_APP": None,
    "DUCTAPE_STORE": None,
    "COLUMNS": "250",
    "FORCE_COLOR": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
}
#: What must never be written raw: C0 but newline and tab, DEL, C1.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
TITLE = "\x1b]0;owned\x07"  # OSC 0: sets the terminal's title
CLEAR = "\x1b[2J"  # CSI: clears the screen
LINK = "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8: a hyperlink
C1 = "\x9b31m\x85\x90"  # CSI, NEL and DCS as single C1 characters


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def cli(store: str, *args: str) -> Result:
    result = CliRunner().invoke(app, [*args, "--store", store], env=CLEAN_ENV)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def ok(store: str, *args: str) -> Any:
    return json.loads(cli(store, *args, "--json").stdout)


def assert_shown_escaped(result: Result, *escapes: str) -> None:
    for stream in (result.stdout, result.stderr):
        found = RAW_CONTROL.search(stream)
        assert found is None, f"raw U+{ord(found.group()):04X} in {stream!r}"
    for escape in escapes:
        assert escape in result.stdout, result.stdout


def rewrite(store: str, sql: str, *params: str) -> None:
    """A row as an earlier version stored it (before names refused control characters)."""
    with sqlite3.connect(store.removeprefix("sqlite:///")) as db:
        assert db.execute(sql, params).rowcount == 1


def test_names_reasons_and_key_names_are_shown_with_their_control_characters_escaped(store: str) -> None:
    ok(store, "job", "create", "--name", "N", "--tag", "evil", "--event-type", "FUNCTION", "--event-tag", "f")
    job_id = ok(store, "schedule", "--event", "evil", "--env", "prd", "--product-tag", "p", "--cron", "0 9 * * *")[
        "job_id"
    ]
    ok(store, "pause", job_id, "--reason", "stop")
    ok(store, "apikey", "create", "--name", "ops")
    rewrite(store, "UPDATE jobs SET name = ?, event_tag = ? WHERE tag = 'evil'", TITLE + CLEAR, LINK)
    rewrite(store, "UPDATE schedules SET reason = ?, env = ? WHERE id = ?", "paused: " + C1 + CLEAR, "p\x1b[1m", job_id)
    rewrite(store, "UPDATE api_keys SET name = ? WHERE name = 'ops'", "ops\x1b[8m\x07\x7f")
    ok(store, "schedule", "--event", "evil", "--env", "stg", "--product-tag", "p", "--cron", "0 9 * * *")
    rewrite(store, "UPDATE schedules SET env = ? WHERE env = 'stg'", "txt.\u202egpj\u2066\u2028")  # reads "jpg.txt"

    assert_shown_escaped(
        cli(store, "job", "list"), r"\x1b]0;owned\x07\x1b[2J", r"\x1b]8;;http://evil.example/\x1b\click"
    )
    assert_shown_escaped(cli(store, "job", "show", "evil"), r"\x1b]0;owned\x07", r"\x1b]8;;")
    assert_shown_escaped(cli(store, "schedules"), r"paused: \x9b31m", r"p\x1b[1m")
    assert_shown_escaped(cli(store, "show", job_id), r"paused: \x9b31m\x85\x90\x1b[2J", r"p\x1b[1m")
    assert_shown_escaped(cli(store, "stats", "--env", "p\x1b[1m"), r"p\x1b[1m")  # a filter, in a table's title
    assert_shown_escaped(cli(store, "apikey", "list"), r"ops\x1b[8m\x07\x7f")
    assert_shown_escaped(cli(store, "schedules"), r"txt.\u202egpj\u2066\u2028")  # no override reorders a row
    revoked = cli(store, "apikey", "revoke", ok(store, "apikey", "list")[0]["id"])  # a printed message
    assert_shown_escaped(revoked, r"ops\x1b[8m\x07\x7f")

    as_json = cli(store, "job", "show", "evil", "--json")  # valid JSON, every control character escaped in it
    assert RAW_CONTROL.search(as_json.stdout) is None
    assert json.loads(as_json.stdout)["name"] == TITLE + CLEAR


def test_a_runs_error_and_output_are_shown_with_their_control_characters_escaped(store: str) -> None:
    ok(store, "job", "create", "--name", "N", "--tag", "red", "--event-type", "FUNCTION", "--event-tag", "red")
    ok(store, "job", "create", "--name", "N", "--tag", "out", "--event-type", "FUNCTION", "--event-tag", "out")
    for tag in ("red", "out"):
        ok(store, "schedule", "--event", tag, "--env", "prd", "--product-tag", "p")
    with Ductape(store) as dt:

        @dt.function("red")
        def red(input: dict[str, Any], ctx: object) -> None:
            raise RuntimeError("\x1b[31mboom\x1b[0m" + CLEAR + "\x9b2J")

        @dt.function("out")
        def out(input: dict[str, Any], ctx: object) -> dict[str, Any]:
            return {"said": TITLE}

        summary = dt.drain()
    assert (summary.completed, summary.failed) == (1, 1)
    [failed] = ok(store, "runs", "--phase", "failed")
    assert "\x1b[31mboom" in failed["error"]  # stored as it was raised: free-form text

    assert_shown_escaped(cli(store, "runs"), r"\x1b[31mboom\x1b[0m\x1b[2J\x9b2J")
    assert_shown_escaped(cli(store, "run", "show", failed["id"]), r"\x1b[31mboom\x1b[0m\x1b[2J\x9b2J")
    assert_shown_escaped(cli(store, "history", failed["job_id"]), r"\x1b[31mboom")
    [done] = ok(store, "runs", "--phase", "completed")
    assert_shown_escaped(cli(store, "run", "show", done["id"]), r"\u001b]0;owned\u0007")  # output: JSON's escapes


def test_a_log_line_for_a_terminal_shows_control_characters_escaped() -> None:
    """``ductape worker`` and ``serve`` on a terminal write text lines: a run's error quoted in one (a traceback in
    ANSI colours, a name stored before the rule) was written raw. JSON lines escape them already."""
    import logging

    from ductape_jobs import logs

    record = logging.LogRecord(
        "ductape_jobs.worker", logging.WARNING, __file__, 1, "run %s failed: %s", ("r1", TITLE + "boom\n" + C1), None
    )
    text = logs.TextFormatter().format(record)
    found = RAW_CONTROL.search(text)
    assert found is None, f"raw U+{ord(found.group()):04X} in {text!r}"
    assert r"failed: \x1b]0;owned\x07boom" in text and "\n" in text  # a line break is kept
