"""Bad input at the CLI and at a store URL: every JSON option goes through one parse that refuses text nested too
deep for the decoder (``error: input: nests deeper than 32 levels``, exit 2, one line, never a ``RecursionError``),
and a store URL that does not parse, or names a file no OS can hold, is ``ValidationError("store", ...)`` from
``Ductape``, ``AsyncDuctape`` and ``ductape --store`` alike, with its password masked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ductape_jobs import AsyncDuctape, Ductape, ValidationError
from ductape_jobs.cli import batch
from ductape_jobs.cli.main import app
from ductape_jobs.limits import MAX_DEPTH

CLEAN_ENV: dict[str, str | None] = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None, "DUCTAPE_PRODUCT_FILE": None}
#: Deeper than json.loads recurses (a RecursionError past about a thousand levels).
TOO_DEEP = "[" * 50_000 + "]" * 50_000
TOO_DEEP_OBJECT = '{"a": ' * 50_000 + "1" + "}" * 50_000


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=CLEAN_ENV)


def assert_one_line_error(result: Result, message: str) -> None:
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.output and not isinstance(result.exception, RecursionError)


@pytest.mark.parametrize("text", [TOO_DEEP, TOO_DEEP_OBJECT])
@pytest.mark.parametrize(
    ("command", "field"),
    [
        (("schedule", "--event", "x", "--env", "e", "--product-tag", "p", "--input"), "input"),
        (("feature", "run", "f", "--env", "e", "--product-tag", "p", "--input"), "input"),
        (("session", "start", "s", "--env", "e", "--product-tag", "p", "--data"), "data"),
    ],
)
def test_a_json_option_nested_too_deep_to_parse_is_one_line_and_exit_2(
    tmp_path: Path, command: tuple[str, ...], field: str, text: str
) -> None:
    store = [] if command[0] == "session" else ["--store", f"sqlite:///{tmp_path / 'jobs.db'}"]  # it opens none
    result = cli(*command, text, *store)
    assert_one_line_error(result, f"{field}: nests deeper than {MAX_DEPTH} levels")


def test_schedule_many_refuses_the_same_depth_through_the_same_parse(tmp_path: Path) -> None:
    requests = tmp_path / "requests.json"
    requests.write_text(TOO_DEEP)
    result = cli("schedule-many", "--file", str(requests), "--store", f"sqlite:///{tmp_path / 'jobs.db'}")
    assert_one_line_error(result, f"file: nests deeper than {MAX_DEPTH} levels")


def test_schedule_many_stops_reading_a_file_past_its_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--file /dev/zero`` (or a wrong, huge file) was read whole, until memory ran out; now past
    ``MAX_BATCH_FILE_BYTES`` (made small here) it stops and says so, and nothing is stored."""
    monkeypatch.setattr(batch, "MAX_BATCH_FILE_BYTES", 1000)
    db = tmp_path / "jobs.db"
    result = cli("schedule-many", "--file", "/dev/zero", "--store", f"sqlite:///{db}")
    assert_one_line_error(result, "file: '/dev/zero' holds more than 1,000 bytes; split it into several calls")
    requests = tmp_path / "requests.json"
    requests.write_text("[" + ",".join(['{"event": "x"}'] * 100) + "]")  # 1,501 bytes
    result = cli("schedule-many", "--file", str(requests), "--store", f"sqlite:///{db}")
    assert_one_line_error(result, f"file: {str(requests)!r} holds more than 1,000 bytes; split it into several calls")
    assert not db.exists()


def test_a_json_option_that_is_not_json_still_says_so(tmp_path: Path) -> None:
    result = cli("schedule", "--event", "x", "--env", "e", "--product-tag", "p", "--input", "{nope",
                 "--store", f"sqlite:///{tmp_path / 'jobs.db'}")  # fmt: skip
    assert result.exit_code == 2 and result.stderr.startswith("error: input: is not valid JSON: ")


BAD_IPV6 = "postgresql://postgres:hunter2@[::1/postgres"


def test_the_cli_refuses_a_store_url_that_does_not_parse_without_its_password() -> None:
    result = cli("schedules", "--store", BAD_IPV6)
    assert_one_line_error(result, "store: 'postgresql://***@[::1/postgres' is not a valid URL: Invalid IPv6 URL")
    assert "hunter2" not in result.output


def test_ductape_refuses_a_store_url_that_does_not_parse_naming_the_store() -> None:
    with pytest.raises(ValidationError) as err:
        Ductape(BAD_IPV6)
    assert (err.value.field, err.value.rule) == (
        "store",
        "'postgresql://***@[::1/postgres' is not a valid URL: Invalid IPv6 URL",
    )
    assert "hunter2" not in str(err.value)


def test_async_ductape_refuses_it_too() -> None:
    async def open_it() -> None:
        async with AsyncDuctape(BAD_IPV6):
            pass

    with pytest.raises(ValidationError, match=r"^store: .* is not a valid URL: Invalid IPv6 URL$"):
        asyncio.run(open_it())


@pytest.mark.parametrize(
    ("char", "named"),
    [
        ("\x00", "U+0000, NUL"),
        ("\n", "U+000A, newline"),
        ("\x1b", "U+001B, ESC"),
        ("\u202e", "U+202E, RIGHT-TO-LEFT OVERRIDE"),
    ],
)
def test_a_sqlite_url_naming_a_file_with_a_control_character_is_refused_and_nothing_is_created(
    tmp_path: Path, char: str, named: str
) -> None:
    url = f"sqlite:///{tmp_path}/a{char}b.db"
    with pytest.raises(ValidationError) as err:
        Ductape(url)
    assert err.value.field == "store"
    rule = f"holds a control character ({named}); a store's file names are printable text"
    assert err.value.rule == f"{url!r} names a file that {rule}"
    assert list(tmp_path.iterdir()) == []
    with (
        Ductape(f"sqlite:///{tmp_path}/ok.db") as dt,
        pytest.raises(ValidationError, match="holds a control character"),
    ):
        dt.copy_to(url)  # a copy's target too


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--poll", "0.0005", "poll: must be seconds (or a timedelta) from 0.001 to 3600"),
        ("--lease", "0.05", "lease: must be seconds (or a timedelta) from 0.1 to 86400"),
        ("--ahead", "1.5", "ahead: must be seconds (or a timedelta) from 0 to 1"),
        ("--concurrency", "0", "concurrency: must be a whole number >= 1"),
        ("--poll", "nan", "poll: must be seconds (or a timedelta) from 0.001 to 3600"),
    ],
)
def test_a_worker_setting_out_of_its_bound_is_the_engines_rule_and_opens_no_store(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    """``ductape worker`` had bounds of its own: ``--poll`` refused 0.005 (the README and ``Ductape(poll=...)`` take
    1 ms up) in Typer's framed box, not the ``error: poll: ...`` line; ``--concurrency 0`` opened (and made) the
    store before the engine refused it. The engine's rule speaks now, before any store is opened."""
    db = tmp_path / "w.db"
    assert_one_line_error(cli("worker", option, value, "--store", f"sqlite:///{db}"), message)
    assert not db.exists()


def test_the_check_the_worker_command_makes_takes_what_the_readme_says() -> None:
    """README, Limits: ``poll`` 1 ms to 1 hour (the command refused less than 10 ms)."""
    from ductape_jobs.client import worker_options

    assert worker_options(poll=0.001, lease=0.1, ahead=0).poll.total_seconds() == 0.001
    with pytest.raises(ValidationError, match="heartbeat: must be shorter than the lease"):
        worker_options(lease=1, heartbeat=2)


@pytest.mark.parametrize(
    "command",
    [
        ("job", "create", "--name", "n", "--tag", "bad tag", "--event-type", "FUNCTION", "--event-tag", "f"),
        ("feature", "run", "f", "--env", "dev", "--product-tag", "shop"),
        ("webhook", "create", "--url", "ftp://127.0.0.1/x", "--events", "run.completed"),
    ],
)
def test_a_refused_record_leaves_no_store_the_apps_own_client_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """``--app`` alone: the app's own ``Ductape()`` made its SQLite file as it was imported; refused, the record
    leaves no new store there either (only a ``--store`` of the command's own was removed). Made for a record that
    is kept, it stays."""
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    module = f"refused_app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        f'from ductape_jobs import Ductape\nductape = Ductape("sqlite:///{tmp_path}/own.db")\n'
    )
    monkeypatch.delitem(sys.modules, module, raising=False)
    result = cli(*command, "--app", f"{module}:ductape")
    assert result.exit_code == 2, (result.output, result.exception)
    assert not (tmp_path / "own.db").exists()
    monkeypatch.delitem(sys.modules, module, raising=False)
    made = cli("job", "create", "--name", "n", "--tag", "good", "--event-type", "FUNCTION", "--event-tag", "f",
               "--app", f"{module}:ductape")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert (tmp_path / "own.db").exists()
    sys.modules.pop(module, None)


def test_a_product_files_functions_import_from_the_folder_the_command_runs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A product file's ``module:function`` beside it, without ``--app``: imported from the folder the command runs
    in, as an ``--app``'s module is (it failed "No module named ..." unless PYTHONPATH was set)."""
    import json
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    module = f"product_fns_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text("def find(input, ctx):\n    return {'found': input['id']}\n")
    (tmp_path / "products.json").write_text(json.dumps({"products": [{
        "tag": "shop", "envs": {"dev": {}}, "functions": {"find": f"{module}:find"},
        "features": {"lookup": {"sequence": [{"sequence_tag": "a", "events": [
            {"type": "FUNCTION", "event": "find", "input": {"id": "$Input{id}"}, "retries": 0, "allow_fail": False}
        ]}]}},
    }]}))  # fmt: skip
    monkeypatch.delitem(sys.modules, module, raising=False)
    result = cli("--product-file", "products.json", "feature", "run", "lookup", "--env", "dev", "--product-tag", "shop",
                 "--input", '{"id": 7}', "--store", f"sqlite:///{tmp_path / 'f.db'}", "--json")  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    run = json.loads(result.stdout)
    assert run["status"] == "completed" and run["events"][0]["output"] == {"found": 7}
    sys.modules.pop(module, None)
