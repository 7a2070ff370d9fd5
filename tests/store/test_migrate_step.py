"""An upgrade as a step of its own: ``ductape migrate`` applies the migrations a store lacks (``--check`` only says
which, exit 1, and writes nothing), and a process told not to migrate (``migrate=False``, ``$DUCTAPE_MIGRATE=0``)
refuses a store that lacks one, naming the command, rather than change the schema as it starts. Both stores."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from storekit import Backend
from typer.testing import CliRunner, Result

from ductape_jobs import Ductape, StoreError, ValidationError
from ductape_jobs.cli.main import app
from ductape_jobs.store.sql import migration_versions

DUCTAPE = str(Path(sys.executable).parent / "ductape")
RELEASE = max(migration_versions("ductape_jobs.store.sqlite.migrations"))
ENV: dict[str, str | None] = {
    "DUCTAPE_APP": None,
    "DUCTAPE_STORE": None,
    "DUCTAPE_PRODUCT_FILE": None,
    "DUCTAPE_MIGRATE": None,
}


def ductape(*args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**ENV, **env})


def versions(backend: Backend) -> list[int]:
    return [row[0] for row in backend.rows("SELECT version FROM schema_migrations ORDER BY version")]


def test_migrate_check_names_what_an_older_store_lacks_and_migrate_applies_it(backend: Backend) -> None:
    backend.migrate_to(RELEASE - 2)
    checked = ductape("migrate", "--check", "--store", backend.url, "--json")
    assert checked.exit_code == 3, checked.stderr  # pending (1: the check failed)
    said = json.loads(checked.stdout)
    assert (said["version"], said["release"], said["pending"]) == (RELEASE - 2, RELEASE, [RELEASE - 1, RELEASE])
    assert versions(backend) == list(range(1, RELEASE - 1))  # --check wrote nothing

    done = ductape("migrate", "--store", backend.url, "--json")
    assert done.exit_code == 0, done.stderr
    said = json.loads(done.stdout)
    assert (said["version"], said["applied"], said["pending"]) == (RELEASE, [RELEASE - 1, RELEASE], [])
    assert versions(backend) == list(range(1, RELEASE + 1))

    again = ductape("migrate", "--check", "--store", backend.url)
    assert again.exit_code == 0, again.stderr
    assert "pending" in again.stdout and "none" in again.stdout
    nothing = ductape("migrate", "--store", backend.url, "--json")
    assert nothing.exit_code == 0 and json.loads(nothing.stdout)["applied"] == []


def test_a_client_that_does_not_migrate_refuses_a_store_that_lacks_a_migration_and_changes_nothing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.migrate_to(RELEASE - 1)
    with pytest.raises(StoreError) as refused:
        Ductape(backend.url, migrate=False)
    assert str(refused.value) == (
        f"the store's schema is at version {RELEASE - 1} and this release's is at {RELEASE}: run `ductape migrate` "
        f"to apply {RELEASE} (this process does not migrate its store: migrate=False)"
    )
    monkeypatch.setenv("DUCTAPE_MIGRATE", "off")
    with pytest.raises(StoreError, match=r"\(this process does not migrate its store: \$DUCTAPE_MIGRATE\)"):
        Ductape(backend.url)
    assert versions(backend) == list(range(1, RELEASE))

    Ductape(backend.url, migrate=True).close()  # the argument over the environment
    assert versions(backend) == list(range(1, RELEASE + 1))
    with Ductape(backend.url) as dt:  # up to date: opens, and works
        dt.job.create({"name": "n", "tag": "t", "event_type": "FUNCTION", "event_tag": "f"})


def test_migrate_returns_the_versions_it_applied_and_none_once_another_applied_them(backend: Backend) -> None:
    backend.migrate_to(RELEASE - 2)
    first, second = backend.open(migrate=False), backend.open(migrate=False)
    assert first.migrate() == (RELEASE - 1, RELEASE)
    assert second.migrate() == ()  # the other process applied them: nothing said twice
    assert second.schema_state().pending == ()


def test_a_store_a_newer_release_upgraded_is_refused_by_the_check_and_by_migrate(backend: Backend) -> None:
    backend.open().close()
    backend.execute("INSERT INTO schema_migrations VALUES (9999, 0)", {})
    for args in (("migrate", "--check"), ("migrate",)):
        refused = ductape(*args, "--store", backend.url)
        assert refused.exit_code == 1 and "schema is at version 9999, newer than this release" in refused.stderr
    with pytest.raises(StoreError, match="newer than this release"):
        Ductape(backend.url, migrate=False)
    assert versions(backend) == [*range(1, RELEASE + 1), 9999]


def test_a_misspelt_ductape_migrate_is_refused_before_anything_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "new.db"
    monkeypatch.setenv("DUCTAPE_MIGRATE", "flase")
    with pytest.raises(ValidationError) as refused:
        Ductape(f"sqlite:///{path}")
    assert refused.value.field == "migrate" and "not 'flase'" in refused.value.rule
    monkeypatch.delenv("DUCTAPE_MIGRATE")
    with pytest.raises(ValidationError, match="migrate: must be True, False or None, not str"):
        Ductape(f"sqlite:///{path}", migrate="no")  # type: ignore[arg-type]
    assert not path.exists()


def test_a_process_that_does_not_migrate_makes_no_store_and_migrate_makes_one(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with pytest.raises(ValidationError) as refused:
        Ductape(f"sqlite:///{path}", migrate=False)
    assert "no SQLite store at" in refused.value.rule and refused.value.rule.endswith(
        "(this process makes none: migrate=False)"
    )
    other = tmp_path / "other.db"  # another program's database: told to check the URL, and left as it was
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    with pytest.raises(ValidationError, match=rf"^store: no ductape-jobs store in '{other}'"):
        Ductape(f"sqlite:///{other}", migrate=False)
    checked = ductape("migrate", "--check", "--store", f"sqlite:///{other}")
    assert checked.exit_code == 2 and "no ductape-jobs store in" in checked.stderr, checked.stderr
    with sqlite3.connect(other) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["notes"]
    with pytest.raises(ValidationError, match=r"^migrate: an in-memory SQLite store is made by the process"):
        Ductape("sqlite:///:memory:", migrate=False)
    checked = ductape("migrate", "--check", "--store", f"sqlite:///{path}")
    assert checked.exit_code == 2 and "no SQLite store at" in checked.stderr
    assert not path.exists()

    made = ductape("migrate", "--store", f"sqlite:///{path}", "--json")
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["applied"] == list(range(1, RELEASE + 1))
    Ductape(f"sqlite:///{path}", migrate=False).close()


def test_a_postgresql_schema_none_was_made_in_is_checked_without_being_made(pg_backend: Backend) -> None:
    checked = ductape("migrate", "--check", "--store", pg_backend.url, "--json")
    assert checked.exit_code == 2, checked.stderr  # a mistyped ?schema= is refused, as a command that reads does
    assert (
        "no ductape-jobs store in postgresql://" in checked.stderr and "`ductape migrate` makes one" in checked.stderr
    )
    assert pg_backend.rows("SELECT to_regclass('schema_migrations') IS NULL") == [(True,)]
    with pytest.raises(ValidationError) as refused:  # a mistyped ?schema= is told to check the URL
        Ductape(pg_backend.url, migrate=False)
    assert refused.value.field == "store" and "no ductape-jobs store in postgresql://" in refused.value.rule
    assert "`ductape migrate` makes one (this process makes none: migrate=False)" in refused.value.rule
    listed = ductape("runs", "--store", pg_backend.url, DUCTAPE_MIGRATE="0")  # a command that reads: exit 2
    assert listed.exit_code == 2 and "no ductape-jobs store" in listed.stderr, listed.stderr

    assert ductape("migrate", "--store", pg_backend.url).exit_code == 0
    assert versions(pg_backend) == list(range(1, RELEASE + 1))


def test_migrate_with_an_app_leaves_the_apps_store_to_the_command(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's own ``Ductape(url)`` would migrate as it is imported: ``--check`` must not, and says what is
    pending; then ``migrate --app`` applies it."""
    backend.migrate_to(RELEASE - 1)
    (tmp_path / "myjobs.py").write_text(
        f"from ductape_jobs import Ductape\nductape = Ductape({backend.url!r})\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    checked = ductape("migrate", "--check", "--app", "myjobs:ductape", "--json")
    assert checked.exit_code == 3, checked.stderr
    assert json.loads(checked.stdout)["pending"] == [RELEASE]
    assert versions(backend) == list(range(1, RELEASE))
    sys.modules.pop("myjobs", None)  # imported again by the next command, as a new process would

    done = ductape("migrate", "--app", "myjobs:ductape", "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["applied"] == [RELEASE]
    sys.modules.pop("myjobs", None)
    assert versions(backend) == list(range(1, RELEASE + 1))


def test_a_worker_process_that_does_not_migrate_exits_naming_the_command_then_starts_once_migrated(
    sqlite_only_backend: Backend, tmp_path: Path
) -> None:
    backend = sqlite_only_backend
    backend.migrate_to(RELEASE - 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCTAPE_")}
    env["DUCTAPE_MIGRATE"] = "0"
    worker = [DUCTAPE, "worker", "--store", backend.url]
    refused = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert f"run `ductape migrate` to apply {RELEASE}" in refused.stderr and "Traceback" not in refused.stderr
    assert versions(backend) == list(range(1, RELEASE))

    migrated = subprocess.run(
        [DUCTAPE, "migrate", "--store", backend.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert migrated.returncode == 0, migrated.stderr
    script = textwrap.dedent(
        f"""
        import sys
        from ductape_jobs import Ductape
        with Ductape({backend.url!r}) as dt:
            sys.exit(0 if dt.store.schema_state().pending == () else 3)
        """
    )
    opened = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert opened.returncode == 0, opened.stderr
