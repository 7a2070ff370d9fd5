"""Stores: where schedules and runs live. ``open_store(url)`` picks the backend from the URL."""

from __future__ import annotations

from ductape_jobs.errors import ValidationError
from ductape_jobs.store.base import Advance, Capabilities, DueSchedule, Outcome, Store, Wakeups

__all__ = ["Advance", "Capabilities", "DueSchedule", "Outcome", "Store", "Wakeups", "open_store"]

DEFAULT_URL = "sqlite:///./ductape.db"


def open_store(url: str) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``, ``postgresql://...``."""
    if url.startswith("sqlite://"):
        from ductape_jobs.store.sqlite import SQLiteStore

        path = url.removeprefix("sqlite://")
        path = path.removeprefix("/") if path.startswith("/") else path
        if not path:
            raise ValidationError("store", f"{url!r} names no file (use sqlite:///path/to/jobs.db)")
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from ductape_jobs.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise ValidationError(
                "store", f"PostgreSQL needs the postgres extra: pip install 'ductape-jobs[postgres]' ({exc})"
            ) from exc
        store: Store = PostgresStore(url)
        return store
    raise ValidationError("store", f"unknown store URL {url!r} (use sqlite:///path.db or postgresql://...)")
