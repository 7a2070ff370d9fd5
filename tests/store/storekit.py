"""Databases for the store tests: a SQLite file, or a fresh PostgreSQL schema (dropped afterwards).

PostgreSQL comes from ``$DUCTAPE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
When it is unreachable its tests are skipped, except on CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs.store import Store, open_store

PG_URL = os.environ.get("DUCTAPE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_pg_error: list[str] = []  # why PostgreSQL is unreachable, once known


def require_postgres() -> None:
    """Skip (fail on CI) unless PostgreSQL answers at ``PG_URL``."""
    if not _pg_error:
        try:
            import psycopg

            with psycopg.connect(PG_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_error.append("")
        except Exception as exc:
            _pg_error.append(f"{type(exc).__name__}: {exc}".strip())
    if _pg_error[0]:
        reason = f"PostgreSQL is not reachable at {PG_URL} ({_pg_error[0]}); set DUCTAPE_TEST_POSTGRES_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI every service must be up", pytrace=False)
        pytest.skip(reason)


def pg_admin(query: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement on a separate autocommit connection; its rows (if any)."""
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def with_query(url: str, **options: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in options.items())


def paged(ids: Callable[..., list[str]], size: int, **flt: Any) -> list[str]:
    """Every id ``ids(**flt, limit=, after=)`` lists, a page of ``size`` at a time, each page past the last id of the
    page before (a list's cursor), until a page is empty."""
    seen: list[str] = []
    after = None
    while page := ids(**flt, limit=size, after=after):
        seen += page
        after = page[-1]
    return seen


@dataclass
class Backend:
    """One database for a test: ``open()`` gives another store object on it (another "process")."""

    name: str
    url: str
    schema: str | None = None
    path: Path | None = None
    opened: list[Store] = field(default_factory=list)

    def open(self, *, migrate: bool = True) -> Store:
        store = open_store(self.url)
        self.opened.append(store)
        if migrate:
            store.migrate()
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()

    def migrate_to(self, version: int) -> None:
        """Bring the database to schema ``version`` only, as an older release left it (no store object)."""
        from ductape_jobs.store.sql import load_migrations

        scripts = [(v, sql) for v, sql in load_migrations(f"ductape_jobs.store.{self.name}.migrations") if v <= version]
        if self.path is not None:
            db = sqlite3.connect(self.path)
            try:
                db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)")
                for v, sql in scripts:
                    db.executescript(sql)
                    db.execute("INSERT INTO schema_migrations VALUES (?, 0)", (v,))
                db.commit()
            finally:
                db.close()
            return
        import psycopg
        from psycopg.rows import dict_row

        from ductape_jobs.store.postgres.schema import apply

        options = f"-c search_path={self.schema}"
        with psycopg.connect(PG_URL, autocommit=True, options=options, row_factory=dict_row) as conn:
            conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)")
            for v, sql in scripts:
                apply(conn, v, sql, fresh=True)  # as a release makes a new store (no index built CONCURRENTLY)

    def execute(self, query: str, params: dict[str, Any]) -> None:
        """One statement on the database, outside any store (``:name`` parameters on SQLite, ``%(name)s`` on
        PostgreSQL)."""
        if self.path is not None:
            db = sqlite3.connect(self.path)
            try:
                db.execute(query, params)
                db.commit()
            finally:
                db.close()
            return
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True, options=f"-c search_path={self.schema}") as conn:
            conn.execute(query.encode(), params)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """The rows of one query without parameters, outside any store."""
        if self.path is not None:
            db = sqlite3.connect(self.path)
            try:
                return db.execute(query).fetchall()
            finally:
                db.close()
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True, options=f"-c search_path={self.schema}") as conn:
            return conn.execute(query.encode()).fetchall()

    def columns(self) -> dict[str, list[str]]:
        """Table -> column names in order (the shared row converters depend on them)."""
        return {t: [c[0] for c in cols] for t, cols in self.snapshot()["tables"].items()}

    def snapshot(self) -> dict[str, Any]:
        """Tables with their columns' definitions, indexes and applied migration versions."""
        if self.path is not None:
            db = sqlite3.connect(self.path)
            try:
                names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
                tables = {n: [tuple(c[1:]) for c in db.execute(f"PRAGMA table_info({n})")] for n in names}
                indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY 1").fetchall()
                versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
            finally:
                db.close()
        else:
            tables = {}
            for table, column, *rest in pg_admin(
                "SELECT table_name, column_name, data_type, is_nullable, column_default"
                " FROM information_schema.columns WHERE table_schema = %s ORDER BY table_name, ordinal_position",
                [self.schema],
            ):
                tables.setdefault(table, []).append((column, *rest))
            indexes = pg_admin(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY 1", [self.schema]
            )
            versions = [r[0] for r in pg_admin(f"SELECT version FROM {self.schema}.schema_migrations ORDER BY 1")]
        return {"tables": tables, "indexes": indexes, "versions": versions}


@contextmanager
def sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    path = tmp_path / "jobs.db"
    backend = Backend("sqlite", f"sqlite:///{path}", path=path)
    try:
        yield backend
    finally:
        backend.close_all()


@contextmanager
def postgres_backend() -> Iterator[Backend]:
    require_postgres()
    schema = f"t_{secrets.token_hex(6)}"
    pg_admin(f"CREATE SCHEMA {schema}")
    backend = Backend("postgres", with_query(PG_URL, schema=schema, application_name=schema), schema=schema)
    try:
        yield backend
    finally:
        backend.close_all()
        pg_admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class CutProxy:
    """A TCP proxy in front of PostgreSQL. Once ``arm()``ed, it passes the server's answers on until one holds a
    write's end: a write's completion (``CommandComplete``, one of ``writes``) and then, in that answer or a later
    one on the same connection, the server ready again outside a transaction (``ReadyForQuery 'I'``: the
    transaction has committed). It closes both sides of that connection instead of passing that answer on: the
    client sees its connection lost, the commit's outcome unknown to it.

    The default ``writes``: an INSERT (statements sent as a pipeline), or the one statement that calls
    ductape_add_schedules() (a SELECT of one row)."""

    def __init__(self, host: str, port: int, writes: tuple[bytes, ...] = (b"INSERT 0 1\x00", b"SELECT 1\x00")) -> None:
        self._target = (host, port)
        self._writes = writes
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._armed = threading.Event()
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self.cut.clear()
        self._armed.set()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        held = b""  # an armed proxy's answer, until it is known whether it is the one to cut (kept whole after
        wrote = False  # another connection's cut disarmed it); this connection completed a write since it was armed
        ready_once = False  # the connection's start (the SSL answer, authentication) passes as it comes
        try:
            while data := src.recv(65536):
                if answers and ready_once and (held or self._armed.is_set()):
                    held += data
                    ready = held.find(b"Z\x00\x00\x00\x05")  # ReadyForQuery: the answer is whole
                    if ready < 0:
                        continue
                    done = min((at for at in map(held.find, self._writes) if at >= 0), default=-1)
                    status = held[ready + 5 : ready + 6]  # I: idle, T: in a transaction, E: in a failed one
                    wrote = status != b"E" and (wrote or 0 <= done < ready)
                    if status == b"I" and wrote and self._armed.is_set():
                        self._armed.clear()
                        self.cut.set()
                        break
                    data, held = held, b""
                ready_once = ready_once or b"Z\x00\x00\x00\x05" in data
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
