"""``ductape prune``: delete finished history past its keep now (workers also do it every minute)."""

from __future__ import annotations

from typing import Annotated

import typer

from ductape_jobs.cli import render
from ductape_jobs.cli.common import AppOpt, JsonOpt, StoreOpt, client, emit, flag, user_errors
from ductape_jobs.retention import parse_keep


def prune(
    dry_run: Annotated[bool, flag("--dry-run", help="Count what would be deleted; delete nothing.")] = False,
    keep_completed: Annotated[
        str | None,
        typer.Option(
            help="Keep completed (and cancelled) history this long, e.g. 7d, 12h (default: the client's, 7d)."
        ),
    ] = None,
    keep_failed: Annotated[
        str | None, typer.Option(help="Keep failed history this long, e.g. 30d (default: the client's, 30d).")
    ] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete finished runs (with their attempts; their statistics stay, per minute), ended schedules that hold
    no run, feature runs, webhook deliveries, expired cache entries and statistics past their keep; print how many
    rows of each kind went (or, with --dry-run, would go)."""
    with user_errors():
        completed = None if keep_completed is None else parse_keep(keep_completed, "keep-completed")
        failed = None if keep_failed is None else parse_keep(keep_failed, "keep-failed")
    with client(store, app_) as dt:
        counts = dt.prune(dry_run=dry_run, keep_completed=completed, keep_failed=failed)
    data = {"dry_run": dry_run, **counts.as_dict()}
    title = "Would delete (dry run)" if dry_run else "Deleted"
    emit(data, as_json, lambda: render.fields(title, counts.as_dict().items()))
