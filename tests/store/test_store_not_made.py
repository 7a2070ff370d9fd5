"""A store that only reads is never made by a tool pointed at a mistyped URL: ``ductape schedules`` on PostgreSQL
with ``?schema=typo`` made and migrated that schema and listed nothing (the SQLite file had the same refusal; the
schema had none); on a SQLite file of another program it added ductape-jobs' tables to it. ``Ductape(...,
create_store=False)`` (and every CLI command that reads) refuses a store none was made in, naming ``store``."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import psycopg
import pytest
from storekit import PG_URL, require_postgres
from typer.testing import CliRunner

from ductape_jobs import Ductape, ValidationError
from ductape_jobs.cli.main import app

ENV: dict[str, str | None] = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None, "DUCTAPE_PRODUCT_FILE": None}


def test_a_sqlite_file_none_was_made_in_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(ValidationError) as refused:
        Ductape(f"sqlite:///{missing}", create_store=False)
    assert refused.value.field == "store" and "no SQLite store at" in refused.value.rule
    assert not missing.exists()

    other = tmp_path / "other.db"  # another program's database
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    listed = CliRunner().invoke(app, ["schedules", "--store", f"sqlite:///{other}"], env=ENV)
    assert listed.exit_code == 2 and "holds no ductape-jobs store" in listed.stderr, listed.stderr
    with sqlite3.connect(other) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["notes"]

    with pytest.raises(ValidationError) as refused:
        Ductape(f"sqlite:///{missing}", create_store="no")  # type: ignore[arg-type]
    assert str(refused.value) == "create_store: must be True or False, not str"
    assert not missing.exists()

    Ductape(f"sqlite:///{missing}").close()  # made by a client that may make it
    Ductape(f"sqlite:///{missing}", create_store=False).close()  # then opened


def test_a_postgresql_schema_none_was_made_in_is_refused_and_not_made() -> None:
    require_postgres()
    schema = f"typo_{secrets.token_hex(4)}"
    url = f"{PG_URL}?schema={schema}"
    try:
        with pytest.raises(ValidationError) as refused:
            Ductape(url, create_store=False)
        assert refused.value.field == "store" and f"no ductape-jobs store in schema {schema!r}" in refused.value.rule
        listed = CliRunner().invoke(app, ["schedules", "--store", url], env=ENV)
        assert listed.exit_code == 2 and f"no ductape-jobs store in schema {schema!r}" in listed.stderr
        assert not _schema_exists(schema)
        Ductape(url).close()  # a client that may make it (a worker, job create) does
        Ductape(url, create_store=False).close()
        assert CliRunner().invoke(app, ["schedules", "--store", url], env=ENV).exit_code == 0
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _schema_exists(schema: str) -> bool:
    with psycopg.connect(PG_URL) as conn:
        return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone() is not None
