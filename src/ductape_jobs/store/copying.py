"""A store's contents copied into a new store named by its URL (``ductape copy --to URL``, ``Ductape.copy_to``):
the target opened (made and migrated), the copy made (``Store.copy_to``, ``transfer.py``), and a SQLite target
written aside and put in its place only whole."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from datetime import datetime

from ductape_jobs.errors import StoreError, ValidationError
from ductape_jobs.store import check_url, open_store, sqlite_path
from ductape_jobs.store.base import Store
from ductape_jobs.store.dialect import link_new, plain_file


def copy_store(source: Store, url: str, now: datetime) -> dict[str, int]:
    """Everything ``source`` holds copied into a new, empty store at ``url`` (``Store.copy_to``); the rows copied,
    by table. A problem with the URL is a ``ValidationError`` naming ``to``. A SQLite target must be a new file: it is
    written aside (a private ``.<name>.*.part`` file beside it) and appears at ``url`` only whole, so a copy cut short
    (killed, refused) leaves nothing there. A PostgreSQL one is made and migrated as any process makes it."""
    if not isinstance(url, str):
        raise ValidationError("to", f"must be a store URL, not {type(url).__name__}")
    try:
        path = sqlite_path(url)
        if path is None:
            check_url(url)  # what --to names is checked before the store copied from is looked at
    except ValidationError as exc:
        raise ValidationError("to", exc.rule) from None
    part = None
    if path is not None:
        part = _part_beside(path)
        url = f"sqlite:///{part}"
    try:
        source.check_copy(now)  # refused before the target is made: no PostgreSQL schema left behind (nor a file)
        try:
            target = open_store(url)
        except ValidationError as exc:
            raise ValidationError("to", exc.rule) from None
        try:
            target.migrate()
            copied = source.copy_to(target, now)
        finally:
            target.close()
        if path is not None and part is not None:
            _checkpointed(part)
            try:
                link_new(part, path)
            except FileExistsError:
                raise ValidationError("to", f"{path!r} exists; name a new file (the copy makes it)") from None
    finally:
        if part is not None:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(part + suffix)
    return copied


def _part_beside(path: str) -> str:
    """A new private file beside ``path`` for the copy to be written in (``path``: refused if it is there, in memory
    or in no folder)."""
    if not plain_file(path):
        raise ValidationError("to", "an in-memory store ends with its process; name a file")
    if os.path.lexists(path):
        raise ValidationError("to", f"{path!r} exists; name a new file (the copy makes it)")
    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValidationError("to", f"{path!r}: its folder {folder!r} does not exist")
    try:
        fd, part = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)  # 0600, made here only
    except OSError as exc:
        raise StoreError(f"cannot write the copy beside {path!r}: {exc.strerror or exc}") from None
    os.close(fd)  # an empty file: the store's migrations make it one
    return part


def _checkpointed(part: str) -> None:
    """The copy's WAL moved into its file, so that the file alone is the store."""
    db = sqlite3.connect(part)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
