"""SQLite's dialect internals that the hot path leans on: queries sent with numbered parameters (binding.py), and
busy_timeout, left 0 across a run of WAL writes, back in force for every read."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ductape_jobs import Ductape
from ductape_jobs.errors import StoreError
from ductape_jobs.store import Outcome
from ductape_jobs.store.sqlite.binding import bind
from ductape_jobs.store.sqlite.dialect import LARGE_TEXT, B, Q, SQLiteDialect


def test_names_become_numbers_in_order_of_first_use_and_quoted_text_is_left_alone() -> None:
    b = bind(
        "-- at :not_a_parameter\n"
        "SELECT ':nor_this', \"a:b\", /* :nor */ x FROM t WHERE a = :first AND b = :second OR c = :first\n"
        "AND d IN (SELECT value FROM json_each(:ids))"
    )
    assert b.names == ("first", "second", "ids") and b.lists == ("ids",)
    assert "a = ?1 AND b = ?2 OR c = ?1" in b.sql and "json_each(?3)" in b.sql
    assert ":not_a_parameter" in b.sql and "':nor_this'" in b.sql and '"a:b"' in b.sql and ":nor " in b.sql
    assert b.args({"second": 2, "first": 1, "ids": ["a", "b"], "unused": 0}) == (1, 2, '["a","b"]')
    assert bind("SELECT 1").args(None) == () and bind("SELECT :one").args({"one": 1}) == (1,)


def test_every_query_binds_what_its_named_form_binds() -> None:
    """The numbered text is the named text with each parameter replaced: same SQL otherwise, every name kept."""
    for name, query in Q.items():
        b = B[name]
        restored = b.sql
        for number in range(len(b.names), 0, -1):  # ?12 before ?1
            restored = restored.replace(f"?{number}", f":{b.names[number - 1]}")
        assert restored == query, name


def test_a_missing_parameter_is_the_store_error_sqlite_would_raise(tmp_path: Path) -> None:
    dialect = SQLiteDialect(str(tmp_path / "s.db"))
    try:
        dialect.migrate()
        with pytest.raises(StoreError, match=r"binding parameter :tag"):
            dialect.transact(lambda tx: tx.one("get_job", {"product_tag": ""}), write=False)
    finally:
        dialect.close()


def _busy_timeout(dialect: SQLiteDialect, *, write: bool) -> int:
    row = dialect.transact(lambda tx: tx._db.execute("PRAGMA busy_timeout").fetchone(), write=write)
    return int(next(iter(row.values())))


def test_reads_wait_for_locks_after_writes_that_poll_for_theirs(tmp_path: Path) -> None:
    dialect = SQLiteDialect(str(tmp_path / "s.db"), busy_timeout=timedelta(seconds=7))
    try:
        dialect.migrate()
        assert _busy_timeout(dialect, write=True) == 0  # WAL: BEGIN IMMEDIATE polled; nothing after it waits
        assert _busy_timeout(dialect, write=True) == 0
        assert _busy_timeout(dialect, write=False) == 7000  # a read waits as long as it was told
        assert _busy_timeout(dialect, write=True) == 0
        assert _busy_timeout(dialect, write=False) == 7000
    finally:
        dialect.close()


def test_outside_wal_mode_writes_wait_for_locks_too() -> None:
    dialect = SQLiteDialect(":memory:", busy_timeout=timedelta(seconds=3))  # journal_mode stays "memory"
    try:
        assert _busy_timeout(dialect, write=True) == 3000
    finally:
        dialect.close()


def test_the_write_lock_is_still_polled_for_while_another_connection_holds_it(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    dialect = SQLiteDialect(path, busy_timeout=timedelta(milliseconds=300))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        dialect.migrate()
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            dialect.transact(lambda tx: None)
        other.execute("COMMIT")
        dialect.transact(lambda tx: None)  # free again: taken at once
        assert _busy_timeout(dialect, write=False) == 300
    finally:
        other.close()
        dialect.close()


def test_a_batch_of_outcomes_sends_small_texts_as_one_json_list_and_large_ones_bound(tmp_path: Path) -> None:
    """A text escaped into the JSON list and read back out of it costs more than a step of its own past about a
    kilobyte (``LARGE_TEXT``): the large outputs and errors go by the bound statements, the rest in one statement."""
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        dt.job.create({"name": "Noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"})
        dt.job.schedule_many([{"env": "prd", "product_tag": "p", "event": "noop", "start_at": 0} for _ in range(6)])
        now = datetime.now(UTC)
        runs = dt.store.acquire_runs("w1", 6, timedelta(seconds=30), now)
        large = "x" * (LARGE_TEXT["complete_run"][1] + 1)
        outputs = [{"n": 1}, {"n": 2}, {"text": large}, {"text": large}]
        errors = ["a", large]
        outcomes = [
            Outcome(r.id, r.attempt, "w1", True, now, 1, output=o) for r, o in zip(runs[:4], outputs, strict=True)
        ]
        outcomes += [
            Outcome(r.id, r.attempt, "w1", False, now, 1, error=e) for r, e in zip(runs[4:], errors, strict=True)
        ]
        sent: list[str] = []
        db: sqlite3.Connection = dt.store._d._db  # type: ignore[attr-defined]
        db.set_trace_callback(sent.append)
        try:
            dt.store.finish_runs(outcomes, now)
        finally:
            db.set_trace_callback(None)
        # each statement known by its text, not by the values in it (a build may cut those short in a trace)
        json_done, bound_done = B["complete_run"].sql, B["complete_run_bound"].sql
        json_ended, bound_ended = B["finish_attempt"].sql, B["finish_attempt_bound"].sql
        assert sum(q.startswith(json_done[:60]) and "json_each" in q for q in sent) == 1  # the two small outputs
        assert sum(q.startswith(bound_done[:60]) for q in sent) == 2  # the large ones, one each
        assert sum(q.startswith(json_ended[:60]) and "json_each" in q for q in sent) == 1  # five attempts
        assert sum(q.startswith(bound_ended[:60]) for q in sent) == 1  # the long error's
        assert [len(r.output["text"]) for r in dt.job.runs() if r.output and "text" in r.output] == [len(large)] * 2
    finally:
        dt.close()


def test_none_binds_as_null_through_an_adapter_found_at_once(tmp_path: Path) -> None:
    """binding.py registers one for ``None``: without it the sqlite3 module raised and cleared an AttributeError for
    each NULL it bound (a schedule binds 30-odd). Every connection of the module still stores NULL."""
    assert (type(None), sqlite3.PrepareProtocol) in sqlite3.adapters
    db = sqlite3.connect(tmp_path / "n.db")
    try:
        db.execute("CREATE TABLE t (a, b)")
        db.execute("INSERT INTO t VALUES (?, ?)", (None, 1))
        db.execute("INSERT INTO t VALUES (:a, :b)", {"a": None, "b": None})
        assert db.execute("SELECT typeof(a), typeof(b) FROM t ORDER BY rowid").fetchall() == [
            ("null", "integer"),
            ("null", "null"),
        ]
    finally:
        db.close()


def test_no_statement_of_the_hot_path_builds_a_list_and_every_query_still_reads_its_index(tmp_path: Path) -> None:
    """SQLite evaluates ``x IN ('a', 'b', 'c')`` (three constants or more) by building a temporary b-tree of the list
    each time the statement runs, and evaluates every partial index's WHERE for each run written or changed: a
    schedule()'s first run built three. The schema's indexes and the queries name the phases one by one (migration
    27), and every query that names an index by INDEXED BY still prepares (its WHERE implies the index's)."""
    dialect = SQLiteDialect(str(tmp_path / "s.db"))
    try:
        dialect.migrate()
        db = sqlite3.connect(tmp_path / "s.db")
        try:
            indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            lists = re.compile(r"\bIN\s*\(\s*'[^']*'\s*,\s*'[^']*'\s*,", re.IGNORECASE)
            assert [name for name, text in indexes if lists.search(text)] == []
            for name in ("insert_schedule", "insert_first_run", "complete_run_bound", "schedule_retry", "rescue_run"):
                program = db.execute(f"EXPLAIN {B[name].sql}", [None] * len(B[name].names)).fetchall()
                assert [op for op in program if op[1] == "OpenEphemeral"] == [], name
            for name, query in Q.items():  # a partial index its query's WHERE no longer implies: "no query solution"
                db.execute(f"EXPLAIN {B[name].sql}", [None] * len(B[name].names)).fetchall()
                assert not lists.search(query), name
        finally:
            db.close()
    finally:
        dialect.close()


def test_an_adapter_of_none_the_application_registered_first_is_kept() -> None:
    script = (
        "import sqlite3\n"
        "sqlite3.register_adapter(type(None), lambda v: 'none')\n"
        "import ductape_jobs.store.sqlite.binding\n"
        "print(sqlite3.connect(':memory:').execute('SELECT ?', (None,)).fetchone()[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "none"
