"""``ductape resources``: each shared resource's limits and use now, and with ``--waiting`` the runs a limit
holds back (``ductape.resources``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from ductape_jobs.cli import render
from ductape_jobs.cli.common import AppOpt, JsonOpt, StoreOpt, client, emit, flag
from ductape_jobs.models import Run
from ductape_jobs.resources import ResourceUse

if TYPE_CHECKING:
    from rich.table import Table


def resources(
    product: Annotated[
        str | None, typer.Option("--product", "--product-tag", help="Only this product's resources.")
    ] = None,
    waiting: Annotated[bool, flag("--waiting", help="Also list the runs a limit holds back.")] = False,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Each resource's limits (concurrency, rate) and use: runs executing, starts in the rate window, runs waiting."""
    with client(store, app_) as dt:
        use = dt.resources.use(product)
        held = dt.resources.waiting(product) if waiting else []
    data = {"resources": [_as_dict(u) for u in use], **({"waiting": held} if waiting else {})}
    emit(data, as_json, lambda: render.new_group(_table(use), *([_waiting(held)] if waiting else [])))


def _as_dict(u: ResourceUse) -> dict[str, object]:
    limit = u.limit
    return {
        "product_tag": limit.product_tag,
        "name": limit.name,
        "concurrency": limit.concurrency,
        "rate": None if limit.rate is None else str(limit.rate),
        "running": u.running,
        "recent_starts": u.recent_starts,
        "waiting": u.waiting,
    }


def _table(use: Sequence[ResourceUse]) -> Table:
    table = render.new_table(f"Resources ({len(use)})")
    for column in ("product", "resource", "concurrency", "rate", "running", "started in window", "waiting"):
        table.add_column(column)
    for u in use:
        limit = u.limit
        table.add_row(
            limit.product_tag,
            limit.name,
            "-" if limit.concurrency is None else str(limit.concurrency),
            "-" if limit.rate is None else str(limit.rate),
            str(u.running),
            str(u.recent_starts),
            str(u.waiting),
        )
    return table


def _waiting(runs: Sequence[Run]) -> Table:
    table = render.new_table(f"Waiting on a limit ({len(runs)})")
    render.id_column(table, "run_id")
    render.id_column(table, "job")
    for column in ("priority", "due"):
        table.add_column(column, no_wrap=True)
    table.add_column("waiting on", max_width=80)
    for r in runs:
        due = render.when(r.available_at or r.scheduled_at)
        table.add_row(r.id, r.job_tag, str(r.priority), due, r.waiting_on or "")
    return table
