"""The commands of the calls that came to the CLI last: ``schedule-many``, ``drain``, ``session start|verify``,
``webhook create|list|show|delete|deliveries`` and ``feature runs --product-tag/--env``, each driven as a user
would, against a temporary SQLite store (asserting on ``--json``)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ductape_jobs import Ductape
from ductape_jobs.cli.main import app

# DUCTAPE_PRODUCT_FILE is named so that the runner restores it: --product-file sets it for the command
CLEAN_ENV: dict[str, str | None] = {
    "DUCTAPE_APP": None,
    "DUCTAPE_STORE": None,
    "DUCTAPE_PRODUCT_FILE": None,
    "DUCTAPE_WEBHOOK_ALLOW": None,
    "COLUMNS": "200",
}
SESSION_SECRET = "a-session-secret-of-at-least-32-bytes"
PRODUCTS = f"""
[[products]]
tag = "shop"
[products.envs.dev]
session_secret = "{SESSION_SECRET}"
[products.envs.prd]
session_secret = "{SESSION_SECRET}"
[products.sessions.user-session]
name = "User"
schema = {{ user = "object" }}
required = ["user"]
selector = "$Session{{user}}{{id}}"
"""
REQUEST = {"env": "prd", "product_tag": "p", "event": "hello"}


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with Ductape(url) as dt:
        dt.job.create({"name": "Hello", "tag": "hello", "event_type": "FUNCTION", "event_tag": "hello"})
    return url


def cli(*args: str, store: str | None = None, input: str | None = None) -> Result:
    argv = [*args, "--store", store] if store else list(args)
    return CliRunner().invoke(app, argv, env=CLEAN_ENV, input=input)


def ok(*args: str, store: str | None = None, input: str | None = None) -> Any:
    result = cli(*args, "--json", store=store, input=input)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def refused(result: Result, message: str) -> None:
    """Exit 2 (bad input), with ``error: <field>: ...`` on stderr."""
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert result.stderr.startswith(f"error: {message}"), result.stderr


def schedules(store: str) -> list[Any]:
    with Ductape(store) as dt:
        return dt.job.list()


# ------------------------------------------------------------------------------------------ schedule-many


def test_schedule_many_from_a_file_and_from_stdin(store: str, tmp_path: Path) -> None:
    path = tmp_path / "requests.json"
    path.write_text(json.dumps([REQUEST, {**REQUEST, "repeat": {"every": 60_000}, "input": {"n": 1}}]))
    made = ok("schedule-many", "--file", str(path), store=store)
    assert [(m["recurring"], m["status"]) for m in made] == [(False, "queued"), (True, "queued")]
    from_stdin = ok("schedule-many", "--file", "-", store=store, input=json.dumps([REQUEST]))
    assert len(from_stdin) == 1
    assert {s.id for s in schedules(store)} == {m["job_id"] for m in [*made, *from_stdin]}
    table = cli("schedule-many", "--file", "-", store=store, input=json.dumps([REQUEST]))
    assert table.exit_code == 0 and "Scheduled (1)" in table.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (json.dumps([REQUEST, {**REQUEST, "colour": 1}]), "[1].colour: is not a known field"),
        (json.dumps([REQUEST, {**REQUEST, "repeat": {"every": 0}}]), "[1].repeat.every:"),
        (json.dumps({"requests": [REQUEST]}), "file: must hold a JSON array of schedule requests, not a dict"),
        ("[{", "file: is not valid JSON"),
    ],
)
def test_schedule_many_refuses_bad_input_naming_it_and_stores_nothing(store: str, content: str, message: str) -> None:
    refused(cli("schedule-many", "--file", "-", store=store, input=content), message)
    assert schedules(store) == []


def test_schedule_many_of_a_missing_file_exits_2(store: str, tmp_path: Path) -> None:
    refused(cli("schedule-many", "--file", str(tmp_path / "nope.json"), store=store), "file: cannot read")


# ------------------------------------------------------------------------------------------------- drain


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A user's module (``--app name:app``) registering ``hello`` and declaring a feature ``greet`` of ``shop``."""
    name = f"user_calls_{os.getpid()}_{time.monotonic_ns()}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from ductape_jobs import Ductape

            app = Ductape("sqlite:///app.db")
            app.products.add({"tag": "shop", "envs": {"dev": {}}, "features": {"greet": {"sequence": [
                {"sequence_tag": "a", "events": [{"type": "FUNCTION", "event": "hello", "input": {}}]}]}}})

            @app.function("hello")
            def hello(input, ctx):
                if input.get("fail"):
                    raise RuntimeError("asked to fail")
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


def test_drain_runs_what_is_due_and_prints_the_summary(user_module: str, tmp_path: Path) -> None:
    app_store = f"sqlite:///{tmp_path / 'app.db'}"
    with Ductape(app_store) as dt:
        dt.job.create({"name": "Hello", "tag": "hello", "event_type": "FUNCTION", "event_tag": "hello"})
        dt.job.schedule_many([REQUEST, {**REQUEST, "input": {"fail": True}}])
        dt.job.schedule({**REQUEST, "start_at": "2100-01-01T00:00:00Z"})  # not due: not run
    failing = cli("drain", "--app", f"{user_module}:app", "--json")
    assert failing.exit_code == 1, (failing.stdout, failing.stderr, failing.exception)  # a run failed for good
    assert json.loads(failing.stdout) == {
        "created": 0,
        "ran": 2,
        "completed": 1,
        "failed": 1,
        "retried": 0,
        "cancelled": 0,
    }
    assert ok("drain", "--app", f"{user_module}:app")["ran"] == 0  # nothing more is due: exit 0
    line = cli("drain", "--app", f"{user_module}:app")
    assert line.exit_code == 0 and line.stdout.startswith("drained: 0 attempt(s) ran")


def test_drain_exits_0_when_every_run_completed_or_will_be_retried(user_module: str, tmp_path: Path) -> None:
    """Only a run that failed for good fails the drain: an attempt that will be retried is not a failure yet."""
    with Ductape(f"sqlite:///{tmp_path / 'app.db'}") as dt:
        dt.job.create({"name": "Hello", "tag": "hello", "event_type": "FUNCTION", "event_tag": "hello"})
        dt.job.schedule_many([REQUEST, {**REQUEST, "input": {"fail": True}, "retries": 3}])
    summary = ok("drain", "--app", f"{user_module}:app")
    assert (summary["completed"], summary["failed"]) == (1, 0) and summary["retried"] >= 1


def test_drain_help_names_its_exit_codes() -> None:
    shown = cli("drain", "--help")
    assert shown.exit_code == 0 and "1: some runs failed for good" in " ".join(shown.stdout.split())


# ----------------------------------------------------------------------------------------------- sessions


@pytest.fixture
def products(tmp_path: Path) -> str:
    path = tmp_path / "products.toml"
    path.write_text(PRODUCTS)
    return str(path)


def test_session_start_and_verify(products: str) -> None:
    where = ("--env", "prd", "--product-tag", "shop")
    data = json.dumps({"user": {"id": 7}})
    made = ok("--product-file", products, "session", "start", "user-session", "--data", data, *where)
    assert set(made) == {"session", "tag", "expires_at", "subject"}
    assert made["session"].startswith("user-session:") and made["subject"] == "7"
    verified = ok("--product-file", products, "session", "verify", made["session"], *where)
    assert verified == {"data": {"user": {"id": 7}}}  # as POST /sessions/verify answers
    from_stdin = ok("--product-file", products, "session", "verify", "-", *where, input=made["session"] + "\n")
    assert from_stdin == verified
    people = cli("--product-file", products, "session", "start", "user-session", "--data", data, *where)
    assert people.exit_code == 0
    assert "It is a credential" in people.stderr  # what it is goes to standard error: stdout is the token alone
    piped = ok("--product-file", products, "session", "verify", "-", *where, input=people.stdout)
    assert piped == verified  # session start ... | session verify - ...
    assert ok("--product-file", products, "session", "verify", people.stdout.strip(), *where) == verified

    other_env = cli("--product-file", products, "session", "verify", made["session"], "--env", "dev",
                    "--product-tag", "shop")  # fmt: skip
    refused(other_env, "session.token: the token was issued for shop/prd")
    refused(
        cli("--product-file", products, "session", "verify", made["session"][:-3] + "xyz", *where),
        "session.token:",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"user": 5}', "session.data.user: must be an object"),
        ("{}", "session.data.user: is required"),
        ("{not json", "data: is not valid JSON"),
        ("[1]", "data: must be a JSON object"),
    ],
)
def test_session_start_refuses_bad_data_naming_the_field(products: str, data: str, message: str) -> None:
    result = cli("--product-file", products, "session", "start", "user-session", "--data", data, "--env", "prd",
                 "--product-tag", "shop")  # fmt: skip
    refused(result, message)
    assert "user-session:" not in result.stdout  # no token


# ----------------------------------------------------------------------------------------------- webhooks


def test_webhook_create_list_show_deliveries_delete(store: str) -> None:
    made = ok("webhook", "create", "--product-tag", "p", "--url", "http://127.0.0.1:9/hook", "--event", "job.scheduled",
              "--event", "job.failed", "--webhook-allow", "127.0.0.0/8", store=store)  # fmt: skip
    assert made["secret"].startswith("whsec_") and made["events"] == ["job.scheduled", "job.failed"]
    hook_id = made["id"]
    listed = cli("webhook", "list", "--json", store=store)
    assert [w["id"] for w in json.loads(listed.stdout)] == [hook_id] and made["secret"] not in listed.stdout
    assert ok("webhook", "list", "--product-tag", "other", store=store) == []
    shown = cli("webhook", "show", hook_id, "--json", store=store)
    same = ("id", "product_tag", "url", "events")
    assert json.loads(shown.stdout)["secret"] is None  # as GET /webhooks/{id}
    assert set(json.loads(shown.stdout)) == {*same, "created_at", "secret"}
    assert [json.loads(shown.stdout)[k] for k in same] == [made[k] for k in same]
    assert made["secret"] not in shown.stdout + cli("webhook", "show", hook_id, store=store).stdout

    assert ok("webhook", "deliveries", hook_id, store=store) == []
    ok("schedule", "--event", "hello", "--env", "prd", "--product-tag", "p", store=store)  # emits job.scheduled
    (delivery,) = ok("webhook", "deliveries", hook_id, store=store)
    assert (delivery["event"], delivery["status"], delivery["payload"]["data"]["product_tag"]) == (
        "job.scheduled",
        "pending",
        "p",
    )
    assert cli("webhook", "deliveries", hook_id, store=store).stdout.startswith("Deliveries (1)")

    assert ok("webhook", "delete", hook_id, store=store) == {"deleted": hook_id}
    assert ok("webhook", "list", store=store) == []
    missing = cli("webhook", "show", hook_id, store=store)
    assert missing.exit_code == 1 and "webhook" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://127.0.0.1:9/hook", "--event", "job.failed"], "url: 127.0.0.1 is a loopback address"),
        (["--url", "https://example.com/h"], "events: must hold at least 1 item"),
        (["--url", "https://example.com/h", "--event", "job.exploded"], "events: 'job.exploded' is not one of"),
        (["--url", "https://example.com/h", "--event", "job.failed", "--secret", "short"], "secret:"),
    ],
)
def test_webhook_create_refuses_bad_input_naming_the_field(store: str, args: list[str], message: str) -> None:
    refused(cli("webhook", "create", "--product-tag", "p", *args, store=store), message)
    assert ok("webhook", "list", store=store) == []


# ---------------------------------------------------------------------------------------------- features


def test_feature_runs_by_product_and_env(user_module: str) -> None:
    app_ = ("--app", f"{user_module}:app")
    run = ok("feature", "run", "greet", "--env", "dev", "--product-tag", "shop", *app_)
    assert run["status"] == "completed"
    assert [r["id"] for r in ok("feature", "runs", "--product-tag", "shop", "--env", "dev", *app_)] == [run["id"]]
    assert ok("feature", "runs", "--product-tag", "blog", *app_) == []
    assert ok("feature", "runs", "--env", "prd", *app_) == []
    refused(cli("feature", "runs", "--status", "done", *app_), "status: 'done' is not one of")
