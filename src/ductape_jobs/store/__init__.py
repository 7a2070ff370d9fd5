"""Stores: where schedules and runs live. ``open_store(url)`` picks the backend from the URL."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl

from ductape_jobs.errors import ValidationError
from ductape_jobs.extras import require_extra
from ductape_jobs.limits import printable_rule
from ductape_jobs.redaction import redact_url
from ductape_jobs.store.base import (
    UNCHANGED,
    Advance,
    Capabilities,
    DueSchedule,
    Outcome,
    Recorded,
    Released,
    Rescued,
    ScheduleChange,
    SchedulingStore,
    Store,
    Wakeups,
)
from ductape_jobs.store.contracts import AccessStore, FeatureStore, RetentionStore, StatsStore
from ductape_jobs.store.dialect import MAKES_ONE, plain_file
from ductape_jobs.store.sql import SchemaState

__all__ = [
    "UNCHANGED",
    "AccessStore",
    "Advance",
    "Capabilities",
    "DueSchedule",
    "FeatureStore",
    "Outcome",
    "Recorded",
    "Released",
    "Rescued",
    "RetentionStore",
    "ScheduleChange",
    "SchedulingStore",
    "SchemaState",
    "StatsStore",
    "Store",
    "Wakeups",
    "check_url",
    "missing_file",
    "open_store",
    "plain_file",
    "refuse_missing",
    "sqlite_path",
]

DEFAULT_URL = "sqlite:///./ductape.db"


def open_store(url: str, *, create: bool = True) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``, ``postgresql://...``.

    A query parameter the backend does not know is a ``ValidationError`` (field ``store``) naming it: SQLite
    URLs take none; PostgreSQL ones take ``schema``, ``pool_min``, ``pool_max``, ``pool_timeout`` and libpq's
    connection parameters (``sslmode``, ``connect_timeout``, ...). A new SQLite file is created readable by
    its owner only (0600); with ``create=False`` a SQLite file that is not there is refused instead (and
    ``Store.migrate(create=False)`` refuses a store none was made in)."""
    path = sqlite_path(url)
    if path is not None:
        from ductape_jobs.store.sqlite import SQLiteStore

        if not create:
            refuse_missing(url)

        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        require_extra("postgres", "a postgresql:// store")
        from ductape_jobs.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        store: Store = PostgresStore(url)
        return store
    raise _unknown(url)


def check_url(url: str) -> None:
    """The ``ValidationError`` ``open_store(url)`` would raise for the URL itself (its kind, its parameters, a SQLite
    path), without opening anything."""
    if sqlite_path(url) is not None:
        return
    if url.startswith(("postgresql://", "postgres://")):
        require_extra("postgres", "a postgresql:// store")
        from ductape_jobs.store.postgres.connection import split_url  # type: ignore[import-not-found,unused-ignore]

        split_url(url)
        return
    raise _unknown(url)


def _unknown(url: str) -> ValidationError:
    shown = redact_url(url)  # its password and secret parameters masked: a message must not carry them
    return ValidationError("store", f"unknown store URL {shown!r} (use sqlite:///path.db or postgresql://...)")


def missing_file(url: str) -> str | None:
    """The SQLite file ``url`` names when it is not there (``None``: it is, or the store is not a SQLite file)."""
    path = sqlite_path(url)
    return path if path is not None and plain_file(path) and not os.path.exists(path) else None


def refuse_missing(url: str, source: str = "") -> None:
    """A ``ValidationError`` naming ``store`` when ``url`` names a SQLite file that is not there (``source``: where
    the URL came from, said after the path), rather than making an empty store."""
    path = missing_file(url)
    if path is not None:
        raise ValidationError(
            "store",
            f"no SQLite store at {path!r}{source}: check the path and the directory you run in; {MAKES_ONE}",
        )


def sqlite_path(url: str) -> str | None:
    """The path a ``sqlite://`` URL names (``:memory:`` for an in-memory store); ``None`` for any other URL. A
    parameter, an empty path or a control character (``limits.printable_rule``) is a ``ValidationError`` (field
    ``store``)."""
    if not url.startswith("sqlite://"):
        return None
    path, _, query = url.removeprefix("sqlite://").partition("?")
    path = path.removeprefix("/") if path.startswith("/") else path
    for key, _value in parse_qsl(query, keep_blank_values=True) or ([(query, "")] if query else []):
        raise ValidationError(
            "store",
            f"unknown parameter {key!r} in the SQLite URL {redact_url(url)!r} (known: none; sqlite:///path.db)",
        )
    if not path:
        raise ValidationError("store", f"{redact_url(url)!r} names no file (use sqlite:///path/to/jobs.db)")
    rule = printable_rule(path, "a store's file names")  # NUL: the OS call would raise a bare ValueError; a newline
    if rule is not None:  # or ESC would forge or drive every log line and message that shows the path
        raise ValidationError("store", f"{redact_url(url)!r} names a file that {rule}")
    if path.startswith("file:"):  # SQLite's URI filenames (file:x.db?mode=...): one way to name a file, its path
        raise ValidationError("store", f"{redact_url(url)!r} is a SQLite URI; name the file: sqlite:///path/to/jobs.db")
    return path
