"""A missing optional dependency is one line naming the extra to install, wherever it is needed.

Each case runs in a fresh interpreter where the extra's module is made unimportable (``sys.modules[name] =
None``, as for a package that is not installed), so what this process already imported does not hide it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from ductape_jobs.errors import DuctapeError, ValidationError
from ductape_jobs.extras import EXTRAS, MissingExtraError, require, require_extra

ROOT = Path(__file__).resolve().parents[2]


def run_without(modules: list[str], code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter (cwd ``tmp_path``) in which ``modules`` cannot be imported."""
    block = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return subprocess.run(
        [sys.executable, "-c", block + textwrap.dedent(code)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize(
    ("blocked", "command"),
    [
        (["fastapi"], ["serve", "--port", "8765"]),
        (["uvicorn"], ["serve", "--port", "8765"]),
        (["prometheus_client"], ["serve", "--port", "8765", "--no-worker"]),
        (["fastapi"], ["demo", "--serve", "--port", "8765"]),
    ],
)
def test_cli_serve_without_the_api_extra_says_so_in_one_line(
    blocked: list[str], command: list[str], tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    code = f"""
        from ductape_jobs.cli.main import app
        app({[*command, "--store", store]!r}, prog_name="ductape")
    """
    done = run_without(blocked, code, tmp_path)
    assert done.returncode == 1, done.stderr
    assert one_line(done.stderr) == (
        f"error: `ductape serve` needs the api extra: pip install 'ductape-jobs[api]' (no module named {blocked[0]!r})"
    )
    assert not (tmp_path / "jobs.db").exists()  # said before the store was opened


def test_an_api_install_without_limits_serves_and_refuses_only_a_rate_limit(tmp_path: Path) -> None:
    """The api extra gained ``limits`` for ``--rate-limit``: an install made before serves without it, and a rate limit
    asked of it says what to install, in one line, before the store is opened."""
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    code = f"""
        from ductape_jobs import Ductape
        from ductape_jobs.errors import MissingExtraError
        from ductape_jobs.api import create_app
        with Ductape({store!r}) as dt:
            create_app(dt)
            try:
                create_app(dt, rate_limit="5/s")
            except MissingExtraError as exc:
                print(exc)
    """
    done = run_without(["limits"], code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert one_line(done.stdout) == (
        "a rate limit (--rate-limit) needs the api extra: pip install 'ductape-jobs[api]' (no module named 'limits')"
    )
    served = run_without(
        ["limits"],
        f"""
        from ductape_jobs.cli.main import app
        app(["serve", "--rate-limit", "5/s", "--store", {store + "x"!r}], prog_name="ductape")
        """,
        tmp_path,
    )
    assert served.returncode == 1 and one_line(served.stderr).startswith(
        "error: `ductape serve --rate-limit` needs the api extra"
    ), served.stderr
    assert not (tmp_path / "jobs.dbx").exists()


CASES = {
    "create_app": (
        ["fastapi"],
        "from ductape_jobs.api import create_app",
        "ductape_jobs.api needs the api extra: pip install 'ductape-jobs[api]' (no module named 'fastapi')",
    ),
    "postgres store": (
        ["psycopg"],
        "from ductape_jobs import Ductape; Ductape('postgresql://127.0.0.1:1/none')",
        "a postgresql:// store needs the postgres extra: pip install 'ductape-jobs[postgres]' "
        "(no module named 'psycopg')",
    ),
    "postgres pool": (
        ["psycopg_pool"],
        "from ductape_jobs.store import open_store; open_store('postgres://127.0.0.1:1/none')",
        "a postgresql:// store needs the postgres extra: pip install 'ductape-jobs[postgres]' "
        "(no module named 'psycopg_pool')",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_library_raises_missing_extra_error_naming_the_extra(case: str, tmp_path: Path) -> None:
    blocked, statement, message = CASES[case]
    code = f"""
        from ductape_jobs.errors import DuctapeError
        from ductape_jobs.extras import MissingExtraError
        try:
            {statement}
        except MissingExtraError as exc:
            assert isinstance(exc, DuctapeError) and isinstance(exc, ImportError)
            print(exc.extra, exc.module)
            print(exc)
        else:
            raise SystemExit("no MissingExtraError")
    """
    done = run_without(blocked, code, tmp_path)
    assert done.returncode == 0, done.stderr
    extra = message.split(" extra:")[0].rsplit(" ", 1)[1]
    assert done.stdout.splitlines() == [f"{extra} {blocked[0]}", message]


@pytest.mark.parametrize(
    ("url", "module", "extra", "database"),
    [("postgresql://h/db", "psycopg", "postgres", "PostgreSQL"), ("mysql://h/db", "pymysql", "mysql", "MySQL/MariaDB")],
)
def test_database_action_fails_for_good_naming_the_extra(
    url: str, module: str, extra: str, database: str, tmp_path: Path
) -> None:
    code = f"""
        from ductape_jobs.executors.databases.drivers import driver_for
        from ductape_jobs.executors.databases import DatabaseError
        try:
            driver_for({url!r})
        except DatabaseError as exc:
            print(exc.retryable)
            print(exc)
    """
    done = run_without([module], code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "False",
        f"a {database} DATABASE_ACTION needs the {extra} extra: pip install 'ductape-jobs[{extra}]' "
        f"(no module named {module!r})",
    ]


@pytest.mark.parametrize(
    ("url", "module"),
    [
        ("redis://h:6379/0", "redis"),
        ("amqp://h:5672/", "aio_pika"),
        ("nats://h:4222", "nats"),
        ("mqtt://h:1883", "aiomqtt"),
        ("kafka://h:9092", "aiokafka"),
    ],
)
def test_broker_publisher_names_the_brokers_extra(url: str, module: str, tmp_path: Path) -> None:
    code = f"""
        from ductape_jobs.errors import ValidationError
        from ductape_jobs.executors.brokers import open_publisher
        try:
            open_publisher({url!r})
        except ValidationError as exc:
            print(exc)
    """
    done = run_without([module], code, tmp_path)
    assert done.returncode == 0, done.stderr
    scheme = url.partition("://")[0]
    assert one_line(done.stdout) == (
        f"broker: {scheme}:// needs the brokers extra: pip install 'ductape-jobs[brokers]' (no module named {module!r})"
    )


# ------------------------------------------------------------------------------------- the helper itself


def test_require_returns_the_module_when_installed() -> None:
    assert require("json", "api", "x").__name__ == "json"
    require_extra("api", "x")  # the dev install has every extra


def test_require_builds_the_callers_own_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ValidationError) as info:
        require("redis", "brokers", "redis://", error=lambda message: ValidationError("broker", message))
    assert info.value.field == "broker"
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_an_import_error_inside_the_module_is_reported_on_one_line(tmp_path: Path) -> None:
    """A module that is there but fails to load (psycopg without libpq says so over several lines)."""
    (tmp_path / "broken_driver.py").write_text("raise ImportError('no pq wrapper available.\\nAttempts made: ...')\n")
    code = """
        sys.path.insert(0, ".")
        from ductape_jobs.extras import require
        require("broken_driver", "postgres", "a postgresql:// store")
    """
    done = run_without([], code, tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ductape_jobs.errors.MissingExtraError: a postgresql:// store needs the postgres extra: "
        "pip install 'ductape-jobs[postgres]' (no pq wrapper available.)"
    )


def test_a_missing_module_of_this_package_is_not_called_a_missing_extra() -> None:
    with pytest.raises(ModuleNotFoundError) as info:
        require("ductape_jobs.no_such_module", "api", "x")
    assert not isinstance(info.value, MissingExtraError)


def test_missing_extra_error_is_in_the_error_tree() -> None:
    exc = MissingExtraError("`ductape serve`", "api", "fastapi", "no module named 'fastapi'")
    assert isinstance(exc, DuctapeError) and isinstance(exc, ImportError)
    assert (exc.what, exc.extra, exc.module, exc.name) == ("`ductape serve`", "api", "fastapi", "fastapi")


def test_extras_match_pyproject() -> None:
    """Every extra named in ``extras.EXTRAS`` is one of pyproject's, and each of its modules comes from a
    distribution that extra lists (so a message never names the wrong extra)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    providers = metadata.packages_distributions()
    for extra, modules in EXTRAS.items():
        assert extra in declared
        listed = {_name(req) for req in declared[extra]}
        for module in modules:
            assert {_name(d) for d in providers.get(module, [])} & listed, (extra, module, listed)


def _name(requirement: str) -> str:
    for stop in "[<>=!~; ":
        requirement = requirement.split(stop)[0]
    return requirement.lower().replace("_", "-")
