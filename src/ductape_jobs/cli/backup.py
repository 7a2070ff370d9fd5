"""``ductape backup``: a SQLite store copied to a new file while its workers go on (``Store.backup``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ductape_jobs.cli import render
from ductape_jobs.cli.common import AppOpt, JsonOpt, StoreOpt, client, emit, user_errors


def backup(
    to: Annotated[str, typer.Argument(metavar="FILE", help="The new file to write (an existing one is refused).")],
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy a SQLite store to a new file as one transaction sees it, while workers keep running (SQLite's online
    backup; the copy is readable by its owner only, as the store is). Restore: stop every process using the store,
    put the copy in its place (and delete its old -wal and -shm files), start them again. PostgreSQL: use pg_dump."""
    with client(store, app_) as dt, user_errors():
        size = dt.store.backup(to)
    data = {"file": to, "bytes": size}
    emit(data, as_json, lambda: render.fields("Backed up", data.items()))
