"""``ductape history JOB_ID`` and ``ductape stats``: a schedule's executions, and how the runs went."""

from __future__ import annotations

from typing import Annotated

import typer

from ductape_jobs.cli import render
from ductape_jobs.cli.common import AppOpt, JsonOpt, StoreOpt, client, emit, integer
from ductape_jobs.job_reports import HISTORY_LIMIT

_TIMES = "Unix seconds/ms or ISO 8601."


def history(
    job_id: Annotated[str, typer.Argument(help="The schedule's id (what schedule answered as job_id).")],
    limit: Annotated[int, typer.Option(parser=integer, help="At most N executions, newest first.")] = HISTORY_LIMIT,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A schedule's executions, newest first, numbered in order of due time, with its total, successful and
    failed counts."""
    with client(store, app_) as dt:
        found = dt.job.history(job_id, limit=limit)
        emit(found, as_json, lambda: render.history_table(found))


def stats(
    product: Annotated[str | None, typer.Option("--product", "--product-tag", help="Only this product.")] = None,
    env: Annotated[str | None, typer.Option(help="Only this environment.")] = None,
    since: Annotated[str | None, typer.Option(help=f"Runs due at or after this time: {_TIMES}")] = None,
    until: Annotated[str | None, typer.Option(help=f"Runs due before this time: {_TIMES}")] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """How the runs went: counts by phase, the success rate, first-try and retried completions, average retries."""
    with client(store, app_) as dt:
        found = dt.job.stats(product_tag=product, env=env, since=since, until=until)
        emit(found, as_json, lambda: render.stats_table(found))
