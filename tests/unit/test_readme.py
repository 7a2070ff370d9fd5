"""The README is true: its code runs as written (the quickstart and the testing example), and its table of calls
names Python calls, CLI commands and HTTP routes that exist, and all of them."""

from __future__ import annotations

import inspect
import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from ductape_jobs import AsyncDuctape, Ductape, ValidationError
from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.cli.main import app as cli_app
from ductape_jobs.features.api import Features
from ductape_jobs.jobs import Jobs
from ductape_jobs.sessions import Sessions

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_quickstart_app_schedules_and_runs(tmp_path: Path) -> None:
    app = next(b for b in blocks() if "# app.py" in b)
    (tmp_path / "app.py").write_text(app)
    env = {**os.environ, "DUCTAPE_STORE": f"sqlite:///{tmp_path / 'jobs.db'}"}
    out = subprocess.run([sys.executable, "app.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "report for sales" in out.stdout  # the job's cadence: runs now
    assert "completed=1" in out.stdout
    again = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr  # re-running does not trip over the existing job


def test_testing_example_passes() -> None:
    example = next(b for b in blocks() if "Sandbox(" in b)
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    test = namespace["test_report_runs_at_nine_new_york_time"]
    assert callable(test)
    test()


# --------------------------------------------------------------- the table of calls: Python, CLI and HTTP

TABLE_HEADING = "### Python, CLI and HTTP, call by call"
NONE = "\u2013"  # an en dash: the README's "there is none"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CLASSES: dict[str, type] = {"ApiKeys": ApiKeys}  # what a Python cell may start from besides the client
NOT_CALLS = {"products", "function", "product"}  # declarations and a product's view: not awaited themselves


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [part.strip().replace("\\|", "|") for part in parts]


def call_table(text: str | None = None) -> list[list[str]]:
    """The rows of the README's table of calls: ``[python, cli, http]`` each."""
    lines = (text or README.read_text()).split(TABLE_HEADING, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    header, rule, *rows = itertools.takewhile(lambda line: line.startswith("|"), lines[start:])
    assert _cells(header) == ["Python", "CLI", "HTTP"] and set(rule) <= set("|- ")
    table = [_cells(row) for row in rows]
    assert all(len(row) == 3 for row in table), "every row has three cells"
    return table


def _code(cell: str) -> str | None:
    """The call a cell names (its first code span), or ``None`` for a dash (there is none)."""
    if cell.startswith(NONE):
        return None
    found = re.match(r"`([^`]+)`", cell)
    assert found, f"a cell is {NONE!r} or starts with the call in backticks: {cell!r}"
    return found.group(1)


def _dotted(call: str) -> str:
    """``ApiKeys(ductape.store, ductape.clock).create(name, scope=)`` -> ``ApiKeys.create``."""
    while (bare := re.sub(r"\([^()]*\)", "", call)) != call:
        call = bare
    assert re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", call), f"not a Python call: {call!r}"
    return call


def _resolve(root: object, dotted: str) -> Any:
    head, *rest = dotted.split(".")
    target = CLASSES[head] if head in CLASSES else getattr(root, head)
    for part in rest:
        target = getattr(target, part)
    return target


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")  # typer's own click: duck-typed


def _cli_command(spec: str) -> tuple[str, Any]:
    words = list(itertools.takewhile(lambda w: re.fullmatch(r"[a-z][a-z0-9-]*", w) is not None, spec.split()))
    command: Any = typer.main.get_command(cli_app)
    for word in words:
        assert _is_group(command), f"{spec!r}: {command.name!r} has no subcommands"
        found = command.commands.get(word)
        assert found is not None, f"{spec!r}: no command {word!r} (have: {sorted(command.commands)})"
        command = found
    assert words and not _is_group(command), f"{spec!r} does not name a command"
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for option in re.findall(r"(?<![\w-])--?[a-z][a-z0-9-]*", spec):
        assert option in options, f"{spec!r}: the command has no option {option} (it has: {sorted(options)})"
    return " ".join(words), command


def _route(spec: str, openapi: dict[str, Any]) -> tuple[str, str]:
    method, _, target = spec.partition(" ")
    path, _, query = target.partition("?")
    assert method in METHODS and path.startswith("/"), f"a route is 'METHOD /path[?name=...]': {spec!r}"
    operations = openapi["paths"].get(f"/api/v1{path}", {})
    assert method.lower() in operations, f"{spec!r} is not a route of the API ({sorted(operations)} on that path)"
    known = {p["name"] for p in operations[method.lower()].get("parameters", []) if p["in"] == "query"}
    for name in re.findall(r"([A-Za-z_]+)=", query):
        assert name in known, f"{spec!r}: the route has no query parameter {name!r} (it has: {sorted(known)})"
    return method, path


def check_row(row: list[str], sync: Ductape, aio: AsyncDuctape, openapi: dict[str, Any]) -> None:
    python, command, route = (_code(cell) for cell in row)
    assert any((python, command, route)), f"an empty row: {row}"
    if python is not None:
        dotted = _dotted(python)
        for root in (sync, aio):
            target = _resolve(root, dotted)
            assert callable(target), f"{python!r} is not callable on {type(root).__name__}"
        head = dotted.split(".")[0]
        if head not in CLASSES and head not in NOT_CALLS:
            assert inspect.iscoroutinefunction(_resolve(aio, dotted)), f"{python!r} is not awaited on AsyncDuctape"
    if command is not None:
        _cli_command(command)
    if route is not None:
        _route(route, openapi)


@pytest.fixture
def surfaces(dt: Ductape, tmp_path: Path) -> Iterator[tuple[Ductape, AsyncDuctape, dict[str, Any]]]:
    from ductape_jobs.api import create_app

    aio = AsyncDuctape(f"sqlite:///{tmp_path / 'async.db'}")
    try:
        yield dt, aio, create_app(dt).openapi()
    finally:
        aio.sync.close()


def test_every_row_of_the_call_table_is_true(surfaces: tuple[Ductape, AsyncDuctape, dict[str, Any]]) -> None:
    rows = call_table()
    assert len(rows) >= 40
    for row in rows:
        check_row(row, *surfaces)


def test_every_route_and_command_is_in_the_call_table(surfaces: tuple[Ductape, AsyncDuctape, dict[str, Any]]) -> None:
    rows = call_table()
    _, _, openapi = surfaces
    routes = {_route(spec, openapi) for row in rows if (spec := _code(row[2]))}
    api = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in openapi["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
    }
    assert sorted(api - routes) == [], "routes missing from the README's table of calls"
    commands = {_cli_command(spec)[0] for row in rows if (spec := _code(row[1]))}

    def leaves(group: Any, prefix: str = "") -> set[str]:
        found: set[str] = set()
        for name, command in group.commands.items():
            path = f"{prefix}{name}"
            found |= leaves(command, path + " ") if _is_group(command) else {path}
        return found

    assert sorted(leaves(typer.main.get_command(cli_app)) - commands) == [], (
        "commands missing from the README's table of calls"
    )


def test_every_python_call_is_in_the_call_table() -> None:
    named = {_dotted(spec) for row in call_table() if (spec := _code(row[0]))}

    def methods(cls: type) -> set[str]:  # public methods, not the seeds' alias spellings (fetchAll = fetch_all)
        return {
            name
            for name, member in vars(cls).items()
            if not name.startswith("_") and inspect.isfunction(member) and member.__name__ == name
        }

    wanted = (
        {f"job.{m}" for m in methods(Jobs)}
        | {f"feature.{m}" for m in methods(Features)}
        | {f"session.{m}" for m in methods(Sessions)}
        | {f"webhooks.{m}" for m in ("create", "list", "get", "delete", "deliveries")}
        | {f"ApiKeys.{m}" for m in ("create", "list", "revoke")}
        | {"drain", "worker", "products.add"}
    )
    assert sorted(wanted - named) == [], "Python calls missing from the README's table of calls"


def test_a_true_row_passes(surfaces: tuple[Ductape, AsyncDuctape, dict[str, Any]]) -> None:
    check_row(
        ["`job.pause(job_id, reason=)`", "`pause JOB_ID [--reason]`", "`POST /schedules/{job_id}/pause`"], *surfaces
    )


@pytest.mark.parametrize(
    "row",
    [
        ["`job.explode(job_id)`", NONE, NONE],  # no such Python call
        ["`job.pause(job_id)`", "`pause JOB_ID`", "`POST /schedules/{job_id}/pauses`"],  # one wrong cell
        [NONE, "`job destroy TAG`", NONE],  # no such command
        [NONE, "`pause JOB_ID --because`", NONE],  # no such option
        [NONE, "`job`", NONE],  # a group, not a command
        [NONE, NONE, "`DELETE /schedules/{job_id}`"],  # the path exists, not with that method
        [NONE, NONE, "`GET /nowhere`"],
        [NONE, NONE, "`GET /jobs?product=P`"],  # no such query parameter
        ["`product(tag).jobs.explode()`", NONE, NONE],
        ["`ductape.job.create(details)`", NONE, NONE],  # the Python column starts at the client's attributes
        ["`Ductape.job`", NONE, NONE],
        [NONE, NONE, NONE],
    ],
)
def test_a_bogus_row_fails(row: list[str], surfaces: tuple[Ductape, AsyncDuctape, dict[str, Any]]) -> None:
    with pytest.raises((AssertionError, AttributeError, KeyError)):
        check_row(row, *surfaces)


# ------------------------------------------------------------------- "Unknown field names are rejected"

REPORT = {"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"}
REQUEST = {"env": "prd", "product_tag": "shop", "event": "report"}


def test_unknown_fields_are_rejected_as_the_readme_says(dt: Ductape) -> None:
    dt.job.create(REPORT)
    made = dt.job.schedule({**REQUEST, "repeat": {"every": 60_000}})
    hook = {"product_tag": "shop", "url": "https://example.com/h", "events": ["job.failed"]}
    calls: list[tuple[str, Any]] = [
        ("colour", lambda: dt.job.create({**REPORT, "tag": "other", "colour": 1})),
        ("colour", lambda: dt.job.update("report", {"colour": 1})),
        ("colour", lambda: dt.job.schedule({**REQUEST, "colour": 1})),
        ("repeat.colour", lambda: dt.job.schedule({**REQUEST, "repeat": {"every": 60_000, "colour": 1}})),
        ("session.colour", lambda: dt.job.schedule({**REQUEST, "session": {"tag": "s", "token": "t", "colour": 1}})),
        ("[0].colour", lambda: dt.job.schedule_many([{**REQUEST, "colour": 1}])),
        ("repeat.colour", lambda: dt.job.reschedule(made.job_id, {"every": 60_000, "colour": 1})),
        ("repeat.colour", lambda: dt.job.preview({"every": 60_000, "colour": 1})),
        ("colour", lambda: dt.webhooks.create({**hook, "colour": 1})),
        ("product.colour", lambda: dt.products.add({"tag": "shop", "colour": 1})),
    ]
    for field, call in calls:
        with pytest.raises(ValidationError) as caught:
            call()
        assert (caught.value.field, caught.value.rule) == (field, "is not a known field")
    assert len(dt.job.list()) == 1 and [j.tag for j in dt.job.fetch_all()] == ["report"]  # nothing was written
    # the exception the README names: create takes fetch's created_at/updated_at, and the store sets both
    again = dt.job.create({**REPORT, "tag": "copy", "created_at": "2001-01-01T00:00:00Z", "updated_at": 0})
    assert again.created_at is not None and again.created_at.year > 2001
