"""A failure that repeats while the database is away is logged once, then once each 30 s, then once when it works
again (``logs.Repeats``); psycopg_pool's lines about failed tries to connect likewise (``_PoolLines``)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ductape_jobs import Ductape, logs
from ductape_jobs.logs import Repeats
from ductape_jobs.store.postgres.connection import POOL_LINES_EVERY, _PoolLines

log = logging.getLogger("tests.repeats")


class Seconds:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == log.name]


def test_a_repeated_failure_is_logged_once_then_each_30_s_then_once_when_it_works_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Seconds()
    repeats = Repeats(log, "listening for changes", clock=clock)
    with caplog.at_level(logging.INFO, logger=log.name):
        repeats.ok()  # worked all along: nothing said
        for _ in range(45):  # one try a second
            repeats.failed("connection refused", "; trying again in 1s")
            clock.now += 1
        repeats.ok()
        repeats.ok()
        repeats.failed("timeout")  # a new outage: said again at once
    assert messages(caplog) == [
        ("WARNING", "listening for changes failed (connection refused); trying again in 1s"),
        (
            "WARNING",
            "listening for changes still failing after 30 s, 30 more time(s) (connection refused); trying again in 1s",
        ),
        ("INFO", "listening for changes works again, after failing for 45 s"),
        ("WARNING", "listening for changes failed (timeout)"),
    ]


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("psycopg.pool", logging.WARNING, "pool.py", 1, msg, args, None)


def test_psycopg_pools_lines_about_failed_connects_are_let_through_once_each_30_s_a_pool() -> None:
    clock = Seconds()
    lines = _PoolLines(clock)
    refused = "error connecting in %r: %s"
    gave_up = "reconnection attempt in pool %r failed after %s sec"
    assert lines.filter(record(refused, "ductape-jobs-7", "refused"))
    assert not lines.filter(record(refused, "ductape-jobs-7", "refused"))
    assert lines.filter(record(gave_up, "ductape-jobs-7", 10.0))  # the other kind: once too
    assert not lines.filter(record(gave_up, "ductape-jobs-7", 10.0))
    assert lines.filter(record(refused, "ductape-jobs-8", "refused"))  # another pool: its own
    assert lines.filter(record(refused, "the-apps-own-pool", "refused"))  # a pool not ours: left alone
    assert lines.filter(record(refused, "the-apps-own-pool", "refused"))
    assert lines.filter(record("discarding closed connection: %s", "conn"))  # other lines: left alone
    clock.now += POOL_LINES_EVERY
    assert lines.filter(record(refused, "ductape-jobs-7", "refused"))


def test_a_probe_that_succeeded_leaves_no_access_line_and_one_that_failed_does() -> None:
    """A pod's liveness and readiness probes and Prometheus's scrapes, every few seconds each, made thousands of
    uvicorn access lines a day that said nothing; a failed readiness (the store away) must still say so."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    access = logging.getLogger("uvicorn.access")
    try:
        logs.setup(logging.INFO, stream=stream, json_lines=False)
        logs.setup(logging.INFO, stream=stream, json_lines=False)  # again: one filter still
        line = '%s - "%s %s HTTP/%s" %d'
        for path, status in (("/healthz", 200), ("/metrics?x=1", 200), ("/readyz", 503), ("/api/v1/schedules", 200)):
            access.info(line, "10.0.0.7:5120", "GET", path, "1.1", status)
        said = stream.getvalue()
        assert "/healthz" not in said and "/metrics" not in said
        assert '"GET /readyz HTTP/1.1" 503' in said and '"GET /api/v1/schedules HTTP/1.1" 200' in said
        assert sum(isinstance(f, logs._Probes) for f in access.filters) == 1
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjoidTkifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


def test_an_engine_record_is_masked_where_it_is_made_whatever_writes_it(caplog: pytest.LogCaptureFixture) -> None:
    """Not only by ``setup()``'s formatters: a process that never called it (``ductape drain``, a user's script)
    wrote a session token whole through Python's last-resort handler."""
    log = logs.logger("ductape_jobs.worker")
    with caplog.at_level(logging.WARNING, logger="ductape_jobs.worker"):
        log.warning("run %s failed for good: %s", "run_1", {"tok": f"user-session:{TOKEN}"})
        try:
            raise ValueError(f"bad token {TOKEN}")
        except ValueError:
            log.exception("it failed")
    text = caplog.text + "".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert TOKEN not in text and "user-session:eyJhbG***" in caplog.records[0].getMessage()
    assert "bad token eyJhbG***" in (caplog.records[1].exc_text or "")


def test_ductape_drain_masks_a_session_token_in_a_failure_it_logs(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from ductape_jobs import Ductape\n"
        f"app = Ductape('sqlite:///{tmp_path / 'jobs.db'}')\n"
        "@app.function('boom')\n"
        "def boom(input, ctx):\n"
        "    raise RuntimeError(f\"refused {input['tok']}\")\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DUCTAPE_STORE": "", "DUCTAPE_APP": ""}
    ductape = [sys.executable, "-m", "ductape_jobs.cli.main"]
    made = subprocess.run(
        [*ductape, "job", "create", "--app", "app:app", "--name", "B", "--tag", "boom", "--event-type", "FUNCTION",
         "--event-tag", "boom"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0
    subprocess.run(
        [*ductape, "schedule", "--app", "app:app", "--env", "prd", "--product-tag", "p", "--event", "boom",
         "--input", json.dumps({"tok": f"user-session:{TOKEN}"})],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    drained = subprocess.run(
        [*ductape, "drain", "--app", "app:app"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert drained.returncode == 1 and "failed for good" in drained.stderr, drained.stderr
    assert TOKEN not in drained.stderr and "eyJhbG***" in drained.stderr


@pytest.mark.parametrize(
    "line",
    [
        "GET /api/v1/runs?job_tag=dtk%5F5190808bcf3d%5FBpwa7E2cgHzLb1rY48rQ9Ykdifc8b HTTP/1.1 401",
        "GET /api/v1/runs/dtk%5F5190808bcf3d%5FBpwa7E2cgHzLb1rY48rQ9Ykdifc8b HTTP/1.1 404",
        "GET /api/v1/runs?to%6Ben=Bpwa7E2cgHzLb1rY48rQ9Ykdifc8b HTTP/1.1 422",
    ],
)
def test_a_key_that_percent_encoding_hides_is_masked_too(line: str) -> None:
    """uvicorn's access line is the request as sent: ``dtk_`` written ``dtk%5F`` passed the shape check whole."""
    masked = logs.redact(line)
    assert "Bpwa7E2cgHzLb1rY48rQ9Ykdifc8b" not in masked and "***" in masked


def test_a_line_with_nothing_hidden_keeps_its_encoding() -> None:
    line = "GET /api/v1/runs?job_tag=a%20b&token=dts_abc HTTP/1.1 200"
    assert logs.redact(line) == "GET /api/v1/runs?job_tag=a%20b&token=*** HTTP/1.1 200"


def test_masking_twice_changes_nothing_and_a_decoded_line_gets_no_new_line() -> None:
    """A record is masked where it is made and again by setup()'s formatter: ``dts_ab***`` became ``dts_ab******``.
    A line decoded to find a hidden key kept a ``%0A`` of its own as a real newline (a forged log line)."""
    once = logs.redact("login dts_abcdef123456 ok")
    assert logs.redact(once) == once == "login dts_ab*** ok"
    forged = logs.redact("GET /x?job_tag=dtk%5Fabc123%5FSecretPart%0A2026-12-06 INFO forged HTTP/1.1")
    assert "\n" not in forged and "SecretPart" not in forged and "%0A" in forged


@pytest.mark.parametrize("command", [("drain",), ("feature", "run", "f", "--env", "dev", "--product-tag", "p")])
def test_a_command_that_runs_events_shows_control_characters_of_their_errors_as_escapes(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A security probe: ``ductape drain`` and ``feature run`` never set up logging, so a run's failure went out
    through Python's last-resort handler, raw: an input that a function put into its exception retitled the
    terminal, cleared it, reversed its text. ``worker`` and ``serve`` wrote them as escapes, as every command now
    does."""
    hostile = "\x1b]0;PWNED\x07\x1b[2J\u202eRLO\x9bC1"
    (tmp_path / "app.py").write_text(
        "from ductape_jobs import Ductape\n"
        f"app = Ductape('sqlite:///{tmp_path / 'jobs.db'}')\n"
        "event = {'type': 'FUNCTION', 'event': 'boom', 'input': {'a': '$Input{a}'}}\n"
        "feature = {'sequence': [{'sequence_tag': 's', 'events': [event]}], 'input': {'a': 'string'}}\n"
        "app.products.add({'tag': 'p', 'envs': {'dev': {}}, 'features': {'f': feature}})\n"
        "@app.function('boom')\n"
        "def boom(input, ctx):\n"
        "    raise RuntimeError(input['a'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DUCTAPE_STORE": "", "DUCTAPE_APP": ""}
    ductape = [sys.executable, "-m", "ductape_jobs.cli.main"]
    if command == ("drain",):
        for step in (
            ["job", "create", "--name", "B", "--tag", "boom", "--event-type", "FUNCTION", "--event-tag", "boom"],
            [
                "schedule",
                "--env",
                "dev",
                "--product-tag",
                "p",
                "--event",
                "boom",
                "--input",
                json.dumps({"a": hostile}),
            ],
        ):
            subprocess.run(
                [*ductape, *step, "--app", "app:app"], env=env, capture_output=True, check=True, cwd=tmp_path
            )
        argv = [*command, "--app", "app:app"]
    else:
        argv = [*command, "--input", json.dumps({"a": hostile}), "--app", "app:app"]
    ran = subprocess.run([*ductape, *argv], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 1 and "failed for good" in ran.stderr, ran.stderr
    assert not any(c in ran.stderr for c in "\x1b\x07\u202e\x9b"), repr(ran.stderr)
    assert r"\x1b]0;PWNED\x07\x1b[2J\u202eRLO\x9bC1" in ran.stderr


def test_an_apps_own_logging_is_kept_by_the_commands_that_import_it(tmp_path: Path) -> None:
    """A review: the escapes above came from a handler set on the root logger for the whole command, so an app's
    ``logging.basicConfig`` (run when ``--app`` imports it) did nothing. Only records nothing else takes get them."""
    (tmp_path / "app.py").write_text(
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='MYAPP %(levelname)s %(message)s')\n"
        "from ductape_jobs import Ductape\n"
        f"app = Ductape('sqlite:///{tmp_path / 'jobs.db'}')\n"
        "logging.getLogger('app').info('loaded')\n"
    )
    Ductape(f"sqlite:///{tmp_path / 'jobs.db'}").close()  # drain opens a store, it makes none
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DUCTAPE_STORE": "", "DUCTAPE_APP": ""}
    ran = subprocess.run(
        [sys.executable, "-m", "ductape_jobs.cli.main", "drain", "--app", "app:app"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0 and "MYAPP INFO loaded" in ran.stderr, ran.stderr


def test_a_command_run_in_process_leaves_logging_as_it_found_it(tmp_path: Path) -> None:
    """A review: a CliRunner call left a handler on the closed stream of its capture (every later line: "I/O
    operation on closed file") and the root logger's level at WARNING."""
    probe = (
        "import logging, sys\n"
        "from typer.testing import CliRunner\n"
        "from ductape_jobs.cli.main import app\n"
        "assert CliRunner().invoke(app, ['preview', '--cron', '0 * * * *', '-n', '1', '--json']).exit_code == 0\n"
        "assert logging.getLogger().handlers == [] and logging.getLogger().level == logging.WARNING\n"
        "logging.getLogger('user').warning('after the command')\n"
        "logging.basicConfig(level=logging.INFO, format='USER %(message)s')\n"
        "logging.getLogger('user').info('configured')\n"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "after the command" in ran.stderr and "USER configured" in ran.stderr
    assert "Logging error" not in ran.stderr and "closed file" not in ran.stderr
