"""The embedded default store: one SQLite file in WAL mode, shared safely by threads and processes.

The store's logic is the core's (``store/core.py``); this backend is that core over the SQLite dialect
(``dialect.py``: the connection, the single writer and the ``.sql`` files)."""

from __future__ import annotations

import os
from datetime import timedelta

from ductape_jobs.store.core import SQLStore
from ductape_jobs.store.sqlite.dialect import SQLiteDialect


class SQLiteStore(SQLStore):
    capabilities = SQLiteDialect.capabilities

    def __init__(self, path: str, *, busy_timeout: timedelta = timedelta(seconds=30)) -> None:
        """Open (creating it, mode 0600, when absent) the SQLite file at ``path``. A file or directory that
        cannot be created, opened or written is a ``StoreError`` naming the path."""
        self.path = path
        self._sqlite = SQLiteDialect(path, busy_timeout=busy_timeout)
        super().__init__(self._sqlite)

    @property
    def created(self) -> bool:
        """Whether this store made its file: it was not there when the store opened."""
        return self._sqlite.created

    def backup(self, to: str | os.PathLike[str]) -> int:
        return self._sqlite.backup(to)
