"""``ductape copy``: everything a store holds copied into a new one (``Ductape.copy_to``): SQLite to PostgreSQL when
a project outgrows one machine, or back."""

from __future__ import annotations

from typing import Annotated

import typer

from ductape_jobs.cli import render
from ductape_jobs.cli.common import AppOpt, JsonOpt, StoreOpt, client, emit
from ductape_jobs.redaction import redact_url


def copy_store(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="URL",
            help="The new store: sqlite:///new.db (a new file) or postgresql://... (made and migrated; it must "
            "hold nothing yet).",
            show_default=False,
        ),
    ],
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy everything a store holds (jobs, schedules with their counts and next times, runs and their history, API
    keys, webhooks, feature runs, limits' state) into a new, empty store: SQLite to PostgreSQL when you outgrow one
    machine, or back. As one transaction sees the store, all or nothing. Stop every worker and `ductape serve`
    first (a run a worker holds refuses the copy), then start them on the new store."""
    with client(store, app_) as dt:
        copied = dt.copy_to(to)
    data = {"to": redact_url(to), "rows": copied}
    emit(data, as_json, lambda: render.fields(f"Copied into {data['to']}", [(k, f"{n:,}") for k, n in copied.items()]))
