"""Versioned migrations of the PostgreSQL store (``migrations/NNNN_*.sql``), safe to run from many processes.

Each version is applied in a transaction of its own, which records it. A version whose file says
``-- ductape-jobs: concurrently`` builds or drops indexes only, and is applied outside a transaction, a statement at a
time, each ``CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS <name> ON ...`` or ``DROP INDEX CONCURRENTLY IF EXISTS
<name>``: an index built so takes no lock that holds the table's writes, so every process of the release before
goes on scheduling and finishing runs while an upgrade builds one on a big table (a plain ``CREATE INDEX`` holds
them for as long as it reads the table). A build that stopped half way (its server process ended, cancelled, a
unique build meeting duplicates; a client killed does not stop it) leaves its index invalid, which ``IF NOT EXISTS``
would keep as it is: the next try drops it first, then builds it again. A new store's (no version applied when the
call began) are built plainly, in the version's transaction (``apply``).

Processes take turns on a session-level advisory lock of the schema, asked for with ``pg_try_advisory_lock`` a
try at a time: a process blocked in ``pg_advisory_lock`` holds a snapshot while it waits, and ``CREATE INDEX
CONCURRENTLY`` waits for every transaction holding an older snapshot, the waiter too, which waits for the builder's
lock (a deadlock, broken by aborting one of them).
"""

from __future__ import annotations

import re
import time
import zlib

import psycopg
from psycopg import errors, sql

from ductape_jobs.errors import StoreError
from ductape_jobs.logs import logger
from ductape_jobs.store.postgres.connection import IDLE_IN_TRANSACTION, Conn
from ductape_jobs.store.sql import SchemaState, has_every_migration, load_migrations, schema_state

_PACKAGE = "ductape_jobs.store.postgres.migrations"
_VERSIONS = "SELECT version FROM schema_migrations"
_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
_APPLIED = "INSERT INTO schema_migrations VALUES (%s, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"


def migrated(conn: Conn) -> bool:
    """Whether the schema (``conn``'s search path) has every migration: one read, outside a transaction and
    without the lock (the usual start of a worker). ``False`` when there is no migrations table yet."""
    done = _applied(conn)
    return done is not None and has_every_migration(_PACKAGE, done)


def state(conn: Conn) -> SchemaState:
    """The schema's ``SchemaState`` (``conn``'s search path): one read, outside a transaction."""
    return schema_state(_PACKAGE, _applied(conn))


def _applied(conn: Conn) -> set[int] | None:
    try:
        return {r["version"] for r in conn.execute(_VERSIONS)}
    except errors.UndefinedTable:  # no store made here yet
        return None


def made(conn: Conn) -> bool:
    """Whether the schema (``conn``'s search path) holds a store at all (its migrations table), whatever its
    version: one read, outside a transaction."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS made").fetchone()
    return bool(row and row["made"])


#: The line that marks a migration applied outside a transaction (module doc).
_CONCURRENTLY = re.compile(r"^--\s*ductape-jobs:\s*concurrently\s*$", re.MULTILINE)
_BUILD = re.compile(
    r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)\s+ON\s+\w+\s*\(.+", re.DOTALL
)
_DROP = re.compile(r"DROP\s+INDEX\s+CONCURRENTLY\s+IF\s+EXISTS\s+(\w+)")
_CONCURRENTLY_WORD = re.compile(r"\bCONCURRENTLY\s+")
_INVALID = "SELECT NOT indisvalid AS invalid FROM pg_index WHERE indexrelid = to_regclass(%s)"
#: Between two tries for the migration's lock while another process holds it.
_LOCK_TRIES_EVERY = 0.05
log = logger("ductape_jobs.store")


def concurrent_steps(script: str) -> list[str] | None:
    """The statements of a migration applied outside a transaction, in order (``None``: it is applied in one). A
    statement of another form than the two such a migration may hold is a ``StoreError`` (a release's own error)."""
    if not _CONCURRENTLY.search(script):
        return None
    text = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    steps = [part.strip() for part in text.split(";") if part.strip()]
    for step in steps:
        if not (_BUILD.fullmatch(step) or _DROP.fullmatch(step)):
            raise StoreError(f"a migration applied concurrently holds {step[:60]!r}: only index builds and drops")
    return steps


def apply(conn: Conn, version: int, script: str, *, fresh: bool = False) -> None:
    """Apply migration ``version`` and record it: in one transaction, or outside one (``concurrent_steps``). ``conn``
    is outside a transaction block (autocommit). ``fresh``: the store was empty when this call began (its tables new,
    no process of it running), and a concurrent version's indexes are built plainly, in a transaction: a build
    ``CONCURRENTLY`` waits for every older snapshot in the database, a report's or a ``pg_dump``'s."""
    steps = concurrent_steps(script)
    if steps is None or fresh:
        with conn.transaction():
            if steps is None:
                conn.execute(script, prepare=False)  # several statements: the simple query protocol
            for step in steps or ():
                conn.execute(_CONCURRENTLY_WORD.sub("", step), prepare=False)
            conn.execute(_APPLIED, [version])
        return
    for step in steps:
        built = _BUILD.fullmatch(step)
        if built is not None:
            log.warning(
                "migration %d: building index %s concurrently: writes go on meanwhile; it waits for every transaction "
                "of the database older than it",
                version,
                built.group(1),
            )
            row = conn.execute(_INVALID, [built.group(1)]).fetchone()
            if row is not None and row["invalid"]:  # a build that stopped half way: IF NOT EXISTS would keep it
                log.warning(
                    "index %s was left invalid by a build that stopped: dropping it, to build it again", built.group(1)
                )
                conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(built.group(1))))
        conn.execute(step, prepare=False)
    conn.execute(_APPLIED, [version])


def migrate(conn: Conn, schema: str | None, applied: list[int]) -> None:
    """Create ``schema`` if needed and apply the migrations it lacks, each in turn (``apply``), adding each to
    ``applied`` once recorded (a call tried again after a lost connection adds the rest); ``conn`` is outside a
    transaction block (autocommit).

    Concurrent calls (several processes starting at once) take turns on the schema's advisory lock, so each version
    is applied once; a second call finds nothing left to do. A call that stops part way (a lost connection) leaves
    the versions it applied recorded, and the next call applies the rest. The lock is the session's, which sits
    idle between statements: a process paused while it holds it (SIGSTOP, a VM's pause) would hold it for good,
    every other start waiting, so the session ends after ``IDLE_IN_TRANSACTION`` idle (PostgreSQL 14 on: its
    ``idle_session_timeout``), as a transaction's lock ends by ``idle_in_transaction_session_timeout``. A
    ``statement_timeout`` or ``lock_timeout`` of the URL or the server's (``PGOPTIONS``, a role's setting) is lifted
    meanwhile: a build longer than it was cancelled, tried again and cancelled again, its work thrown away each time.
    """
    key = zlib.crc32(f"ductape_jobs:migrate:{schema or ''}".encode())
    settings = {"statement_timeout": 0, "lock_timeout": 0}
    if conn.info.server_version >= 140000:
        settings["idle_session_timeout"] = int(IDLE_IN_TRANSACTION.total_seconds() * 1000)
    try:
        for name, value in settings.items():
            conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        _lock(conn, key)
        with conn.transaction():
            if schema is not None:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(_TABLE)
        done = {r["version"] for r in conn.execute(_VERSIONS)}
        has_every_migration(_PACKAGE, done)  # a newer release's, migrated while this waited for the lock: refused
        for version, script in load_migrations(_PACKAGE):
            if version not in done:
                apply(conn, version, script, fresh=not done)
                applied.append(version)
    finally:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", [key])
            for name in settings:
                conn.execute(sql.SQL("RESET {}").format(sql.Identifier(name)))
        except psycopg.Error:
            conn.close()  # the session's end lets its lock go (a lost connection's did already)


def _lock(conn: Conn, key: int) -> None:
    """The migration's lock, tried every ``_LOCK_TRIES_EVERY`` s until this session has it (module doc: why not
    ``pg_advisory_lock``)."""
    said = False
    while not (row := conn.execute("SELECT pg_try_advisory_lock(%s) AS got", [key]).fetchone()) or not row["got"]:
        if not said:
            log.warning("another process is migrating the store: waiting for it")
            said = True
        time.sleep(_LOCK_TRIES_EVERY)
