"""DATABASE_ACTION execution (``ductape_jobs.executors.databases``).

The tokenizer, binding and value tests need no database. The suite parametrised by ``db`` runs against the
real local servers: PostgreSQL (``$DUCTAPE_TEST_POSTGRES_URL``, default postgres@127.0.0.1:5432/test),
MariaDB/MySQL (``$DUCTAPE_TEST_MYSQL_URL``, default root@127.0.0.1:3306/test) and SQLite in ``tmp_path``.
Each test gets its own uniquely named table, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from ductape_jobs import Ductape, RunPhase
from ductape_jobs.errors import ExecutionError, RunTimeoutError, ValidationError
from ductape_jobs.executors.databases import (
    MAX_ROWS,
    DatabasePool,
    Statement,
    bind_parameters,
    close_default_pool,
    compile_statement,
    parameter_spans,
    redact_url,
    run_statement,
    to_json_value,
)
from ductape_jobs.executors.databases.sql import DatabaseError
from ductape_jobs.limits import MAX_TIMEOUT_SECONDS
from support import require_service

PG_URL = os.environ.get("DUCTAPE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("DUCTAPE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

# ------------------------------------------------------------------------------------------ tokenizer


def names(sql: str, dialect: Any = None) -> list[str]:
    return [name for _, _, name in parameter_spans(sql, dialect)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'a:b', ':x' FROM t",
        "SELECT 'it''s :x' FROM t",
        "SELECT x::int, y::text[] FROM t",
        "SELECT CAST(x AS int) FROM t -- :note here\n",
        "SELECT /* :a */ 1 /* multi\nline :b */",
        'SELECT "col:x", "a""b:c" FROM t',
        "SELECT `weird:col` FROM t",
        "SELECT $$ :body $$, $fn$ it's :x $fn$",
        "SELECT E'a\\' :x' FROM t",
        "SELECT arr[1:2], a:b FROM t",
        "SET @a := 1",
    ],
)
def test_tokenizer_leaves_literals_casts_and_comments_alone(sql: str) -> None:
    assert names(sql) == []
    assert compile_statement(sql, "postgresql", "pyformat").sql == sql.replace("%", "%%")
    assert compile_statement(sql, None, "named").sql == sql


def test_tokenizer_finds_parameters_around_literals() -> None:
    sql = "UPDATE t SET name = :name, note = ':not' || :data.note WHERE id = :filter.id AND x::int = :name::int"
    assert names(sql) == ["name", "data.note", "filter.id", "name"]
    assert Statement(sql).parameters == ("name", "data.note", "filter.id")
    compiled = compile_statement(sql, "postgresql", "pyformat")
    assert compiled.sql == (
        "UPDATE t SET name = %(name)s, note = ':not' || %(data__note)s WHERE id = %(filter__id)s "
        "AND x::int = %(name)s::int"
    )
    assert dict(compiled.keys) == {"name": "name", "data.note": "data__note", "filter.id": "filter__id"}
    assert compile_statement(sql, "sqlite", "named").sql == (
        "UPDATE t SET name = :name, note = ':not' || :data__note WHERE id = :filter__id AND x::int = :name::int"
    )


def test_tokenizer_escapes_percent_for_pyformat_drivers() -> None:
    compiled = compile_statement("SELECT '100%', '%s', '%(x)s' WHERE a LIKE :p /* 5% */", "mysql", "pyformat")
    assert compiled.sql == "SELECT '100%%', '%%s', '%%(x)s' WHERE a LIKE %(p)s /* 5%% */"
    assert compile_statement("SELECT '100%' WHERE a = :p", "sqlite", "named").sql == "SELECT '100%' WHERE a = :p"


def test_tokenizer_dialects() -> None:
    # MySQL: "#" comments, "--" only before a space; a backslash in a quoted text: see the next test.
    assert names("SELECT 'it''s :x', \"a\"\" :y\" # :z\n, :w", "mysql") == ["w"]
    assert names("SELECT 5--:x", "mysql") == ["x"]
    assert names("SELECT 5-- :x", "mysql") == []
    # PostgreSQL: standard strings keep backslashes, comments nest, '#' is an operator.
    assert names("SELECT 'C:\\' || :x", "postgresql") == ["x"]
    assert names("SELECT /* a /* b */ :x */ :y", "postgresql") == ["y"]
    assert names("SELECT 1 # :x", "postgresql") == ["x"]
    # SQLite: [bracketed] identifiers; comments do not nest.
    assert names("SELECT [a:b] FROM t WHERE c = :c", "sqlite") == ["c"]
    assert names("SELECT /* /* */ :x */", "sqlite") == ["x"]
    # Unterminated literals swallow the rest (the database reports the syntax error).
    assert names("SELECT 'oops :x") == []


def test_a_backtick_identifier_takes_no_backslash_escape_on_mysql() -> None:
    # the server ends `a\\` at its second backtick: :v is inside the string that follows (a probe's injection)
    assert names("SELECT 1 AS `a\\`, ' ` :v ' AS b", "mysql") == []
    assert names("SELECT `a``b:c`, :d", "mysql") == ["d"]
    # a backslash that no parameter follows is read alike in every mode: such statements run as before
    assert names("SELECT :x, 'C:\\' AS path", "mysql") == ["x"]


#: Statements whose literals a tokenizer reads otherwise than MariaDB does (a security probe and its review): PyMySQL
#: quoted the value into the text where the tokenizer saw a parameter, inside what the server read as a string, and
#: the value closed that string and ran as SQL. With ``(sql_mode, statement)``: the session's mode, set first.
MISREAD = {
    "backtick ending in a backslash": (None, "SELECT 1 AS `a\\`, ' ` :v ' AS b"),
    "executable comment": (None, "SELECT 1 /*! , ' */ , :v /*! ' */ AS c"),
    "MariaDB executable comment": (None, "SELECT 1 /*M! , ' */ , :v /*M! ' */ AS c"),
    "versioned executable comment": (None, "SELECT 1 /*!50000 , ' */ , :v /*!50000 ' */ AS c"),
    "-- before a control character": (None, "SELECT 1 --\x01 '\n, ' :v ' AS c"),
    "MSSQL's [brackets]": ("MSSQL", "SELECT 1 AS [x'], ' :v ' AS [y']"),
    "ANSI_QUOTES": ("ANSI_QUOTES", 'SELECT 1 AS "a\\", \' " :v \' AS b'),
    "NO_BACKSLASH_ESCAPES": ("NO_BACKSLASH_ESCAPES", "SELECT 'a\\' , ' :v ' AS b, '' AS c"),
}


@pytest.mark.parametrize(("mode", "sql"), MISREAD.values(), ids=MISREAD.keys())
def test_a_value_never_runs_as_sql_where_the_tokenizer_misreads_a_literal(mode: str | None, sql: str) -> None:
    """On a real MariaDB server: the statement is prepared there and the value bound by it, so a misread literal
    makes the statement fail (or read the text as text), never the value run."""
    _require("MariaDB", MYSQL_URL, 3306)
    value = " AS a, (SELECT 6 * 7) AS leaked, @@version AS b, "  # no quote: PyMySQL's escapes could not stop it
    with DatabasePool(max_idle=1) as pool:
        if mode is not None:  # the session keeps it: the next run takes the same connection
            asyncio.run(pool.run(MYSQL_URL, Statement(f"SET SESSION sql_mode = '{mode}'"), {}))
        try:
            out = asyncio.run(pool.run(MYSQL_URL, Statement(sql), {"data": {"v": value}}))
        except DatabaseError as exc:
            assert "Incorrect arguments to EXECUTE" in str(exc), str(exc)  # a ? the server read inside a literal
            return
    assert not any("leaked" in row for row in out.get("rows", [])), out


def test_a_mysql_statement_binds_each_parameter_in_its_place_and_empties_what_it_set() -> None:
    _require("MariaDB", MYSQL_URL, 3306)
    statement = Statement("SELECT :a AS a, :b AS b, :a AS again, '?' AS mark, CAST(:n AS SIGNED) + 1 AS n")
    with DatabasePool(max_idle=1) as pool:
        out = asyncio.run(pool.run(MYSQL_URL, statement, {"data": {"a": "x'); --", "b": None, "n": 41}}))
        left = asyncio.run(pool.run(MYSQL_URL, Statement("SELECT @ductape_p0 AS p0, @ductape_p3 AS p3"), {}))
    assert out["rows"] == [{"a": "x'); --", "b": None, "again": "x'); --", "mark": "?", "n": 42}]
    assert left["rows"] == [{"p0": None, "p3": None}]  # the same connection: the values are not left in it


def test_colliding_driver_keys_are_made_unique() -> None:
    compiled = compile_statement("SELECT :data.a, :data__a", "postgresql", "pyformat")
    assert compiled.sql == "SELECT %(data__a)s, %(data__a_2)s"


def test_statement_needs_sql() -> None:
    with pytest.raises(ValidationError):
        Statement("  ")


# ------------------------------------------------------------------------------------------ binding


def test_bind_parameters_lookup_order() -> None:
    statement = Statement("SELECT :name, :id, :env, :data.id, :filter.name, :filter.deep.key")
    input = {
        "data": {"name": "from data", "id": 7},
        "filter": {"name": "from filter", "id": 1, "deep": {"key": "k"}},
        "env": "prod",
        "name": "top",
    }
    assert bind_parameters(statement, input) == {
        "name": "from data",
        "id": 7,
        "env": "prod",
        "data.id": 7,
        "filter.name": "from filter",
        "filter.deep.key": "k",
    }
    assert bind_parameters(Statement("SELECT :id"), {"filter": {"id": 1}}) == {"id": 1}
    assert bind_parameters(Statement("SELECT :x"), {"data": {"x": None}, "x": 5}) == {"x": None}


def test_bind_parameters_binds_non_scalars_as_json_text() -> None:
    values = bind_parameters(
        Statement("SELECT :doc, :tags"), {"data": {"doc": {"a": [1, "é"], "at": date(2026, 3, 2)}, "tags": ["x"]}}
    )
    assert values == {"doc": '{"a":[1,"é"],"at":"2026-03-02"}', "tags": '["x"]'}


def test_missing_parameter_is_not_retryable_and_names_it() -> None:
    with pytest.raises(ExecutionError, match=r":note") as info:
        bind_parameters(
            Statement("UPDATE t SET name = :name, note = :note WHERE id = :filter.id"),
            {
                "data": {"name": "x"},
                "filter": {"id": 1},
            },
        )
    assert info.value.retryable is False
    with pytest.raises(ExecutionError, match=r":data\.id") as info:
        bind_parameters(Statement("SELECT :data.id"), {"id": 1})
    assert info.value.retryable is False
    with pytest.raises(ExecutionError, match="must be an object"):
        bind_parameters(Statement("SELECT :id"), ["not", "a", "dict"])  # type: ignore[arg-type]


def test_database_error_pickles_with_its_retryable_flag() -> None:
    err = pickle.loads(pickle.dumps(DatabaseError("boom", retryable=False)))
    assert isinstance(err, ExecutionError) and err.retryable is False and str(err) == "boom"


def test_to_json_value() -> None:
    u = uuid.uuid4()
    assert to_json_value(
        {
            "ts": datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
            "d": date(2026, 3, 2),
            "dur": timedelta(minutes=1, seconds=30),
            "price": Decimal("12.34"),
            "count": Decimal("15"),
            "big": Decimal("12345678901234567890.123456789"),
            "nan": Decimal("NaN"),
            "id": u,
            "blob": b"\x00\xff",
            "list": (1, Decimal("2.50")),
        }
    ) == {
        "ts": "2026-03-02T12:00:00+00:00",
        "d": "2026-03-02",
        "dur": 90.0,
        "price": 12.34,
        "count": 15,
        "big": "12345678901234567890.123456789",
        "nan": "NaN",
        "id": str(u),
        "blob": "AP8=",
        "list": [1, 2.5],
    }


def test_redact_url() -> None:
    assert redact_url("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert redact_url("mysql://root@127.0.0.1:3306/test") == "mysql://root@127.0.0.1:3306/test"
    assert redact_url("postgresql://db/x?user=a&password=s3cret") == "postgresql://db/x?user=a&password=***"


def test_unsupported_url_is_not_retryable() -> None:
    with pytest.raises(ExecutionError, match="unsupported database URL") as info:
        asyncio.run(run_statement("oracle://u:pw@h/x", Statement("SELECT 1"), {}))
    assert info.value.retryable is False
    assert "pw" not in str(info.value)


# ------------------------------------------------------------------------------------------ real databases


@dataclass
class DB:
    kind: str
    url: str
    table: str
    pool: DatabasePool

    def sql(self, text: str) -> Statement:
        return Statement(text.replace("{t}", self.table))

    def run(self, text: str, input: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        return asyncio.run(self.pool.run(self.url, self.sql(text), input or {}, **kw))

    def rows(self) -> list[dict[str, Any]]:
        """The table as another connection sees it: only what was committed."""
        with DatabasePool() as other:
            statement = self.sql("SELECT id, name, note FROM {t} ORDER BY id")
            return asyncio.run(other.run(self.url, statement, {}))["rows"]  # type: ignore[no-any-return]

    def slow_insert(self) -> str:
        """An INSERT of id 1 that takes about 3 seconds, per database."""
        return {
            "postgresql": "INSERT INTO {t} (id, name) SELECT 1, 'slow' FROM pg_sleep(3)",
            "mariadb": "INSERT INTO {t} (id, name) SELECT SLEEP(3) + 1, 'slow'",
            "sqlite": "INSERT INTO {t} (id, name) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            "WHERE x < 1000000000) SELECT max(x), 'slow' FROM c",
        }[self.kind]


def _require(name: str, url: str, default_port: int) -> None:
    parts = urlsplit(url)
    require_service(name, parts.hostname or "127.0.0.1", parts.port or default_port)


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DB]:
    kind: str = request.param
    if kind == "postgresql":
        _require("PostgreSQL", PG_URL, 5432)
        url = PG_URL
    elif kind == "mariadb":
        _require("MariaDB", MYSQL_URL, 3306)
        url = MYSQL_URL
    else:
        url = f"sqlite:///{tmp_path / 'actions.db'}"
    pool = DatabasePool()
    d = DB(kind, url, f"ductape_t_{secrets.token_hex(6)}", pool)
    try:
        d.run("CREATE TABLE {t} (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, note VARCHAR(200))")
        yield d
    finally:
        try:
            d.run("DROP TABLE IF EXISTS {t}")
        finally:
            pool.close()


def test_insert_with_data(db: DB) -> None:
    out = db.run(
        "INSERT INTO {t} (id, name, note) VALUES (:id, :name, :note)", {"data": {"id": 1, "name": "Ada"}, "note": None}
    )
    assert out == {"rowcount": 1}
    assert db.rows() == [{"id": 1, "name": "Ada", "note": None}]


def test_update_with_data_and_filter(db: DB) -> None:
    for i, name in ((1, "Ada"), (2, "Bob"), (3, "Cy")):
        db.run("INSERT INTO {t} (id, name) VALUES (:data.id, :data.name)", {"data": {"id": i, "name": name}})
    out = db.run(
        "UPDATE {t} SET name = :name, note = :note WHERE id = :id",
        {
            "data": {"name": "Ada L.", "note": "renamed"},
            "filter": {"id": 1},
        },
    )
    assert out == {"rowcount": 1}
    # rowcount counts matched rows everywhere (MariaDB too), even when nothing changed.
    assert db.run(
        "UPDATE {t} SET name = :name WHERE id = :filter.id", {"data": {"name": "Bob"}, "filter": {"id": 2}}
    ) == {"rowcount": 1}
    assert db.run("DELETE FROM {t} WHERE id > :filter.id", {"filter": {"id": 2}}) == {"rowcount": 1}
    assert db.rows() == [{"id": 1, "name": "Ada L.", "note": "renamed"}, {"id": 2, "name": "Bob", "note": None}]


def test_select_rows_back(db: DB) -> None:
    for i in range(1, 4):
        db.run("INSERT INTO {t} (id, name) VALUES (:id, :name)", {"data": {"id": i, "name": f"n{i}"}})
    out = db.run(
        "SELECT id, name, '100%' AS pct, 'a:b' AS lit FROM {t} WHERE id >= :min ORDER BY id", {"filter": {"min": 2}}
    )
    assert out == {
        "rowcount": 2,
        "rows": [
            {"id": 2, "name": "n2", "pct": "100%", "lit": "a:b"},
            {"id": 3, "name": "n3", "pct": "100%", "lit": "a:b"},
        ],
        "truncated": False,
    }
    none = db.run("SELECT id FROM {t} WHERE id = :id", {"id": 99})
    assert none == {"rowcount": 0, "rows": [], "truncated": False}


def test_rows_are_capped(db: DB) -> None:
    # 50 x 50 rows (MariaDB stops recursive CTEs at 1000 iterations by default).
    out = db.run(
        "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 49) "
        "SELECT a.x * 50 + b.x + 1 AS n, a.x, b.x FROM c a CROSS JOIN c b WHERE a.x * 50 + b.x < :n ORDER BY 1",
        {"n": MAX_ROWS + 500},
    )
    assert out["truncated"] is True
    assert out["rowcount"] == MAX_ROWS + 500
    assert len(out["rows"]) == MAX_ROWS
    assert out["rows"][0] == {"n": 1, "x": 0, "x_2": 0}  # duplicate column names are kept apart
    assert out["rows"][-1]["n"] == MAX_ROWS


def test_values_are_json_friendly(db: DB) -> None:
    doc = {"a": [1, 2], "b": "é"}
    db.run("INSERT INTO {t} (id, name, note) VALUES (1, :name, :note)", {"data": {"name": ["x", "y"], "note": doc}})
    assert db.rows() == [
        {"id": 1, "name": '["x","y"]', "note": json.dumps(doc, ensure_ascii=False, separators=(",", ":"))}
    ]
    if db.kind == "sqlite":
        return
    ts = (
        "CAST('2026-03-02 12:30:00' AS TIMESTAMP)"
        if db.kind == "postgresql"
        else "CAST('2026-03-02 12:30:00' AS DATETIME)"
    )
    row = db.run(f"SELECT {ts} AS ts, CAST(12.34 AS DECIMAL(10,2)) AS price, CAST('2026-03-02' AS DATE) AS d")["rows"][
        0
    ]
    assert row == {"ts": "2026-03-02T12:30:00", "price": 12.34, "d": "2026-03-02"}
    json.dumps(row)
    if db.kind == "postgresql":
        u = uuid.uuid4()
        row = db.run("SELECT CAST(:u AS uuid) AS u, '\\x00ff'::bytea AS b, now() AS n", {"u": str(u)})["rows"][0]
        assert row["u"] == str(u) and row["b"] == "AP8=" and datetime.fromisoformat(row["n"]).tzinfo is not None


def test_missing_parameter_writes_nothing(db: DB) -> None:
    with pytest.raises(ExecutionError, match=r":note") as info:
        db.run("INSERT INTO {t} (id, name, note) VALUES (:id, :name, :note)", {"data": {"id": 1, "name": "x"}})
    assert info.value.retryable is False
    assert db.rows() == []


def test_failing_statement_rolls_back_and_the_connection_stays_usable(db: DB) -> None:
    with pytest.raises(ExecutionError) as info:  # the second row breaks the primary key after the first went in
        db.run("INSERT INTO {t} (id, name) VALUES (:a, 'first'), (:b, 'second')", {"a": 5, "b": 5})
    assert info.value.retryable is False
    assert db.url.split("@")[-1] in str(info.value)
    with pytest.raises(ExecutionError, match=r"(?i)syntax") as info:
        db.run("INSERT INTO {t} (id, name) VALUES (:id, 'x') garbage", {"id": 1})
    assert info.value.retryable is False
    assert db.rows() == []
    # The pooled connection was rolled back, not left in a failed transaction: this commits on its own.
    assert db.run("INSERT INTO {t} (id, name) VALUES (:id, 'ok')", {"id": 6}) == {"rowcount": 1}
    assert db.rows() == [{"id": 6, "name": "ok", "note": None}]
    assert db.pool.idle_count(db.url) == 1


@pytest.mark.parametrize(
    "payload",
    [
        "'; DROP TABLE users; --",
        "1 OR 1=1",
        "x'); DROP TABLE {t}; --",
        "\\'; DROP TABLE {t}; -- ",
        '" OR ""="',
        "%s %(name)s :name :id %% ::int /* */ $$",
    ],
)
def test_input_values_are_never_sql(db: DB, payload: str) -> None:
    payload = payload.replace("{t}", db.table)
    db.run("INSERT INTO {t} (id, name) VALUES (1, 'keep'), (2, 'also kept')")
    db.run(
        "INSERT INTO {t} (id, name, note) VALUES (:id, :name, :note)",
        {"data": {"id": 3, "name": payload, "note": payload}},
    )
    assert db.run(
        "UPDATE {t} SET note = :note WHERE name = :name", {"data": {"note": payload}, "filter": {"name": payload}}
    ) == {"rowcount": 1}
    found = db.run("SELECT id, name FROM {t} WHERE name = :name", {"filter": {"name": payload}})
    assert found["rows"] == [{"id": 3, "name": payload}]  # stored verbatim, and matches only itself
    assert db.rows() == [
        {"id": 1, "name": "keep", "note": None},
        {"id": 2, "name": "also kept", "note": None},
        {"id": 3, "name": payload, "note": payload},
    ]


def test_timeout_stops_the_statement_and_rolls_back(db: DB) -> None:
    started = time.monotonic()
    with pytest.raises(RunTimeoutError, match="timeout") as info:
        db.run(db.slow_insert(), timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert info.value.retryable is True
    assert db.rows() == []
    assert db.run("INSERT INTO {t} (id, name) VALUES (2, 'after')") == {"rowcount": 1}
    assert db.rows() == [{"id": 2, "name": "after", "note": None}]


def test_the_longest_timeout_a_product_declares_is_one_every_database_takes(db: DB) -> None:
    """``MAX_TIMEOUT_SECONDS`` (a product refuses more: ``inf`` was an ``OverflowError`` and ``1e300`` PostgreSQL's
    ``invalid value for parameter "statement_timeout"`` on every run) is a statement timeout each database sets."""
    assert db.run("INSERT INTO {t} (id, name) VALUES (1, 'a')", timeout=MAX_TIMEOUT_SECONDS) == {"rowcount": 1}
    assert db.rows() == [{"id": 1, "name": "a", "note": None}]
    if db.kind == "postgresql":
        shown = db.run("SELECT current_setting('statement_timeout') AS t", timeout=MAX_TIMEOUT_SECONDS)["rows"]
        assert shown == [{"t": f"{MAX_TIMEOUT_SECONDS}s"}]


def test_cancelled_run_rolls_back(db: DB) -> None:
    async def cancel_it() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(db.pool.run(db.url, db.sql(db.slow_insert()), {}), 0.5)

    started = time.monotonic()
    asyncio.run(cancel_it())  # asyncio.run waits for the worker thread, which the cancel interrupted
    assert time.monotonic() - started < 2.5
    assert db.rows() == []
    assert db.pool.idle_count(db.url) == 0  # the interrupted connection was dropped, not reused


def test_concurrent_runs_share_the_pool(db: DB) -> None:
    async def many() -> list[dict[str, Any]]:
        statement = db.sql("INSERT INTO {t} (id, name) VALUES (:id, :name)")
        return await asyncio.gather(
            *(db.pool.run(db.url, statement, {"data": {"id": i, "name": f"n{i}"}}) for i in range(6))
        )

    assert asyncio.run(many()) == [{"rowcount": 1}] * 6
    assert [r["id"] for r in db.rows()] == list(range(6))
    assert 1 <= db.pool.idle_count(db.url) <= db.pool.max_idle


def test_closed_pool_refuses(db: DB) -> None:
    pool = DatabasePool()
    assert asyncio.run(pool.run(db.url, db.sql("SELECT id FROM {t}"), {}))["rows"] == []
    assert pool.idle_count() == 1
    pool.close()
    assert pool.idle_count() == 0
    with pytest.raises(ExecutionError, match="closed"):
        asyncio.run(pool.run(db.url, Statement("SELECT 1"), {}))


@pytest.mark.parametrize(
    "url",
    ["postgresql://app:s3cret@127.0.0.1:1/test", "mysql://app:s3cret@127.0.0.1:1/test"],
)
def test_connection_errors_are_retryable_and_hide_the_password(url: str) -> None:
    with DatabasePool() as pool, pytest.raises(ExecutionError) as info:
        asyncio.run(pool.run(url, Statement("SELECT 1"), {}))
    assert info.value.retryable is True
    assert "s3cret" not in str(info.value) and "app:***@127.0.0.1:1" in str(info.value)


# libpq quotes a password it cannot read (a bad %-escape, a space) or the whole URL (an unclosed "["): each of them
# was stored in the run's error and written in the worker's log line, beside the URL redact_url had masked
UNREADABLE = {
    "main": ("postgresql://postgres:Sup3r%zzSecretPw@127.0.0.1:5432/postgres", "Sup3r%zzSecretPw"),
    "main2": ("postgresql://postgres:Other Secret@127.0.0.1:5432/postgres", "Other Secret"),
    "main3": ("postgresql://postgres:ThirdSecret@[::1/postgres", "ThirdSecret"),
}


@pytest.mark.parametrize(("url", "password"), UNREADABLE.values(), ids=UNREADABLE.keys())
def test_a_password_the_driver_quotes_is_masked_in_its_error(url: str, password: str) -> None:
    _require("PostgreSQL", PG_URL, 5432)
    with DatabasePool() as pool, pytest.raises(ExecutionError) as info:
        asyncio.run(pool.run(url, Statement("SELECT 1"), {}))
    assert password not in str(info.value) and "[secret]" in str(info.value), str(info.value)


def test_a_database_urls_password_is_a_product_secret_in_runs_and_logs(
    dt: Ductape, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe's product: each run's error and log line quoted its URL's password. A URL read from the
    environment after the product was added is learned when the run reads it; a MariaDB URL's password is a
    secret too (here quoted by a FUNCTION of the product)."""
    _require("PostgreSQL", PG_URL, 5432)
    caplog.set_level(logging.DEBUG)
    mariadb = "mysql://root:Sup3r%zzMariaPw@127.0.0.1:3306/test"
    envs = {"main": "${DBURL}", "main2": UNREADABLE["main2"][0], "main3": UNREADABLE["main3"][0], "maria": mariadb}
    dt.products.add(
        {"tag": "shop", "envs": ["dev"],
         "databases": {tag: {"envs": {"dev": url}, "actions": {"q": {"sql": "SELECT 1"}}} for tag, url in envs.items()}}
    )  # fmt: skip
    monkeypatch.setenv("DBURL", UNREADABLE["main"][0])  # set after the product was added: read by the run

    @dt.function("leaky")
    def leaky(input: dict[str, Any], ctx: Any) -> None:
        raise RuntimeError(f"could not reach {mariadb} (password {unquote('Sup3r%zzMariaPw')})")

    jobs = [(tag, "DATABASE_ACTION", f"{tag}:q") for tag in UNREADABLE] + [("leaky", "FUNCTION", "leaky")]
    for tag, event_type, event in jobs:
        dt.job.create({"name": tag, "tag": tag, "event_type": event_type, "event_tag": event, "product_tag": "shop"})
        dt.job.schedule({"env": "dev", "product_tag": "shop", "event": tag})
    dt.drain()
    errors = [dt.job.run(r.id).error or "" for r in dt.job.runs()]
    assert len(errors) == 4 and all(dt.job.run(r.id).phase is RunPhase.FAILED for r in dt.job.runs())
    texts = errors + [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert any("failed for good" in t and "[secret]" in t for t in texts)
    leaked = [(p, t) for p in ("Sup3r%zzSecretPw", "Other Secret", "ThirdSecret", "Sup3r%zzMariaPw") for t in texts
              if p in t]  # fmt: skip
    assert not leaked, leaked
    assert sum('token: "[secret]"' in e or 'found in "[secret]"' in e or ":[secret]@[::1" in e for e in errors) == 3
    assert dt.products.secrets.of("shop").mask_text("Sup3r%zzSecretPw") == "[secret]"  # ${DBURL}'s, learned by its run


def test_sqlite_busy_is_retryable(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (id INTEGER)")
        holder.execute("BEGIN EXCLUSIVE")
        with DatabasePool() as pool, pytest.raises(ExecutionError, match="locked") as info:
            asyncio.run(pool.run(f"sqlite:///{path}", Statement("INSERT INTO t VALUES (:id)"), {"id": 1}, timeout=0.3))
        assert info.value.retryable is True
    finally:
        holder.close()


def test_run_statement_uses_the_default_pool(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'default.db'}"
    try:
        asyncio.run(run_statement(url, Statement("CREATE TABLE t (id INTEGER, at TEXT)"), {}))
        at = datetime(2026, 3, 2, 12, 0)
        assert asyncio.run(
            run_statement(url, Statement("INSERT INTO t VALUES (:id, :at)"), {"data": {"id": 1, "at": at}})
        ) == {"rowcount": 1}
        out = asyncio.run(run_statement(url, Statement("SELECT id, at FROM t"), {}))
        assert out["rows"] == [{"id": 1, "at": "2026-03-02 12:00:00"}]
    finally:
        close_default_pool()
