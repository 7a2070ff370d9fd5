"""Versioned migrations of the PostgreSQL store (``migrations/NNNN_*.sql``), safe to run from many processes."""

from __future__ import annotations

import zlib

from psycopg import errors, sql

from ductape_jobs.store.postgres.connection import Conn
from ductape_jobs.store.sql import has_every_migration, load_migrations

_PACKAGE = "ductape_jobs.store.postgres.migrations"
_VERSIONS = "SELECT version FROM schema_migrations"
_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
_APPLIED = "INSERT INTO schema_migrations VALUES (%s, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"


def migrated(conn: Conn) -> bool:
    """Whether the schema (``conn``'s search path) has every migration: one read, outside a transaction and
    without the lock (the usual start of a worker). ``False`` when there is no migrations table yet."""
    try:
        done = {r["version"] for r in conn.execute(_VERSIONS)}
    except errors.UndefinedTable:
        return False
    return has_every_migration(_PACKAGE, done)


def made(conn: Conn) -> bool:
    """Whether the schema (``conn``'s search path) holds a store at all (its migrations table), whatever its
    version: one read, outside a transaction."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS made").fetchone()
    return bool(row and row["made"])


def migrate(conn: Conn, schema: str | None) -> None:
    """Create ``schema`` if needed and apply the migrations it lacks, in one transaction (``conn``'s).

    Concurrent calls (several processes starting at once) take turns on a transaction-level advisory lock
    of this schema, so each version is applied once; a second call finds nothing left to do.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(f"ductape_jobs:migrate:{schema or ''}".encode())])
    if schema is not None:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(_TABLE)
    done = {r["version"] for r in conn.execute(_VERSIONS)}
    has_every_migration(_PACKAGE, done)  # a newer release's, migrated while this waited for the lock: refused
    for version, script in load_migrations(_PACKAGE):
        if version not in done:
            conn.execute(script, prepare=False)  # several statements: the simple query protocol
            conn.execute(_APPLIED, [version])
