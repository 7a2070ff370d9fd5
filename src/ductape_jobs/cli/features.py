"""``ductape feature``: run a product's feature now, resume or retry a run, show runs with each event's result."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ductape_jobs.cli.common import AppOpt, JsonOpt, StoreOpt, client, emit, integer, parse_json_object
from ductape_jobs.cli.render import fields, first_line, id_column, new_group, new_table, new_text, squeeze, when
from ductape_jobs.features import EventStatus, FeatureRun, FeatureRunStatus

if TYPE_CHECKING:
    from rich.console import RenderableType

feature_app = typer.Typer(
    help="Features: run a product's feature sequences now, resume or retry a run, show runs.", no_args_is_help=True
)

RUN_STYLE = {
    FeatureRunStatus.RUNNING: "yellow",
    FeatureRunStatus.COMPLETED: "green",
    FeatureRunStatus.FAILED: "bold red",
}
EVENT_STYLE = {
    EventStatus.PENDING: "cyan",
    EventStatus.RUNNING: "yellow",
    EventStatus.RETRYING: "magenta",
    EventStatus.COMPLETED: "green",
    EventStatus.FAILED: "bold red",
    EventStatus.SKIPPED: "dim",
}


def _result(value: Any, width: int = 50) -> str:
    if value is None:
        return ""
    text = json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def feature_run_detail(run: FeatureRun) -> RenderableType:
    head = fields(
        f"feature run {run.id}",
        [
            ("feature", f"{run.feature_tag} ({run.product_tag}/{run.env})"),
            ("status", new_text(run.status.value, style=RUN_STYLE.get(run.status, ""))),
            ("started", when(run.created_at)),
            ("ended", when(run.completed_at)),
            ("input", _result(run.input, 200)),
            ("error", first_line(run.error, 200) or "-"),
        ],
    )
    events = new_table("events")
    for column in ("sequence", "event", "type", "status", "attempts", "result", "error"):
        events.add_column(column, overflow="fold" if column == "error" else "ellipsis")
    for e in run.events:
        result = f"job_id {e.job_id}" if e.job_id else _result(e.output)
        events.add_row(
            e.sequence_tag,
            e.event_tag,
            e.event_type.upper(),
            new_text(e.status.value, style=EVENT_STYLE.get(e.status, "")),
            str(e.attempts),
            squeeze(result),
            first_line(e.error),
        )
    return new_group(head, events)


def feature_runs_table(runs: list[FeatureRun]) -> RenderableType:
    table = new_table(f"{len(runs)} feature run(s)")
    id_column(table, "id")  # never cut or wrapped: show, resume and retry take it
    for column in ("feature", "product/env", "status", "started", "ended", "error"):  # a time wraps at its space
        table.add_column(column)
    for r in runs:
        table.add_row(
            r.id,
            r.feature_tag,
            f"{r.product_tag}/{r.env}",
            new_text(r.status.value, style=RUN_STYLE.get(r.status, "")),
            when(r.created_at),
            when(r.completed_at),
            first_line(r.error, 40),
        )
    return table


def _done(run: FeatureRun, as_json: bool) -> None:
    emit(run, as_json, lambda: feature_run_detail(run))
    if run.status is FeatureRunStatus.FAILED:
        raise typer.Exit(1)


@feature_app.command("run")
def feature_run(
    tag: Annotated[str, typer.Argument(help="The feature's tag.")],
    env: Annotated[str, typer.Option(help="Environment, e.g. dev.")],
    product_tag: Annotated[
        str, typer.Option("--product-tag", "--product", help="The product that declares the feature.")
    ],
    input_: Annotated[str | None, typer.Option("--input", help="The feature's input, a JSON object.")] = None,
    session: Annotated[str | None, typer.Option(help="A session token, 'tag:jwt'.")] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a feature now, in this process; print the run with each event's status (exit 1 if it failed)."""
    # refused (no such product or feature, a bad input or session), it leaves no new store behind (--store's, or the
    # one an --app's own Ductape() made as it was imported); a run recorded stays with its store, whatever is raised
    # after
    with client(store, app_, creates="record", wrote=lambda dt: bool(dt.feature.runs(limit=1))) as dt:
        run = dt.feature.run(
            tag, env=env, product_tag=product_tag, input=parse_json_object(input_, "input"), session=session
        )
        _done(run, as_json)


@feature_app.command("resume")
def feature_resume(run_id: str, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """Carry on an unfinished feature run (its driver died) from the first event that had not finished."""
    with client(store, app_) as dt:
        _done(dt.feature.resume(run_id), as_json)


@feature_app.command("retry")
def feature_retry(run_id: str, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """Run a failed feature run again: its failed and skipped events run, completed ones are kept."""
    with client(store, app_) as dt:
        _done(dt.feature.retry(run_id), as_json)


@feature_app.command("show")
def feature_show(run_id: str, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """One feature run with each event's result."""
    with client(store, app_) as dt:
        run = dt.feature.get(run_id)
        emit(run, as_json, lambda: feature_run_detail(run))


@feature_app.command("runs")
def feature_runs(
    feature: Annotated[str | None, typer.Option(help="Only this feature's runs.")] = None,
    status: Annotated[str | None, typer.Option(help="running, completed or failed.")] = None,
    product_tag: Annotated[
        str | None, typer.Option("--product-tag", "--product", help="Only this product's runs.")
    ] = None,
    env: Annotated[str | None, typer.Option(help="Only this env's runs.")] = None,
    limit: Annotated[int, typer.Option(parser=integer, help="At most N, newest first.")] = 50,
    after: Annotated[
        str | None, typer.Option(help="The runs past this feature run id (the last one shown): the next page.")
    ] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Feature runs, newest first."""
    with client(store, app_) as dt:
        runs = dt.feature.runs(
            feature_tag=feature, status=status, product_tag=product_tag, env=env, limit=limit, after=after or None
        )
        emit(runs, as_json, lambda: feature_runs_table(runs))
