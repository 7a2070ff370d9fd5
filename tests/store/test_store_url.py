"""A PostgreSQL store URL reaches libpq as the user wrote it: ``split_url`` takes out our own options (``schema``,
``pool_*``) and keeps libpq's parameters in their own encoding. It decoded and encoded them again with
``urlencode``, which writes a space as ``+``; libpq reads ``%20`` as a space and ``+`` as a plus, so
``options=-c%20statement_timeout%3D5000`` failed every connection (``FATAL: unrecognized configuration parameter
"+statement_timeout"``)."""

from __future__ import annotations

import psycopg
import pytest
from storekit import PG_URL, Backend, require_postgres, with_query

from ductape_jobs.errors import ValidationError
from ductape_jobs.store import open_store
from ductape_jobs.store.postgres.connection import split_url

OPTIONS = "-c%20statement_timeout%3D5000"


def _show(conninfo: str, setting: str) -> str:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(f"SHOW {setting}").fetchone()
    assert row is not None
    return str(row[0])


def test_libpq_options_with_an_encoded_space_reach_the_server() -> None:
    require_postgres()
    url = with_query(PG_URL, options=OPTIONS, application_name="nightly%20sync", pool_max="2")
    conninfo, ours = split_url(url)
    assert conninfo == with_query(PG_URL, options=OPTIONS, application_name="nightly%20sync")
    assert ours == {"pool_max": "2"}
    assert _show(conninfo, "statement_timeout") == "5s"
    assert _show(conninfo, "application_name") == "nightly sync"


def test_a_store_opened_on_such_a_url_works(pg_backend: Backend) -> None:
    store = open_store(with_query(pg_backend.url, options=OPTIONS))
    try:
        store.migrate()
        assert store.list_schedules() == []
    finally:
        store.close()


def test_a_plus_stays_a_plus_and_our_options_are_still_taken_out() -> None:
    conninfo, ours = split_url("postgresql://u:pw@db/x?application_name=a+b&pool_max=3&sslmode=disable&schema=jobs")
    assert conninfo == "postgresql://u:pw@db/x?application_name=a+b&sslmode=disable"
    assert ours == {"pool_max": "3", "schema": "jobs"}


def test_a_password_libpq_quotes_is_not_in_the_store_errors_traceback() -> None:
    """The ``StoreError``'s message was masked, but its ``__cause__`` (libpq's own error, printed with it by any
    traceback) quoted the password: ``invalid percent-encoded token: "<password>"``."""
    import traceback

    import pytest

    from ductape_jobs.errors import StoreError

    require_postgres()
    url = PG_URL.replace("postgresql://postgres@", "postgresql://postgres:Sup3r%zzTraceSecret@", 1)
    assert url != PG_URL
    with pytest.raises(StoreError) as err:
        open_store(with_query(url, pool_timeout="1"))
    printed = "".join(traceback.format_exception(err.value))
    assert "invalid percent-encoded token" in printed and "Sup3r%zzTraceSecret" not in printed


@pytest.mark.parametrize("query", ["schema=", "schema=&pool_max=3", "pool_max=3&schema="])
def test_an_empty_schema_is_refused_rather_than_taken_as_the_default_one(query: str) -> None:
    # ?schema=$SCHEMA with the variable unset: the store (or a copy) went into the database's public schema
    with pytest.raises(ValidationError) as err:
        split_url(f"postgresql://postgres@127.0.0.1/test?{query}")
    assert err.value.field == "schema"
    assert err.value.rule.startswith("is empty: name one")
