"""``ductape preview``: the next fire times of a cadence, in UTC and in its time zone. Needs no store."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from ductape_jobs.cli import render
from ductape_jobs.cli.common import JsonOpt, emit, integer, user_errors
from ductape_jobs.client import Ductape


def preview(
    cron: Annotated[str | None, typer.Option(help="Cron expression (5 fields, or 6 with leading seconds).")] = None,
    every: Annotated[int | None, typer.Option(parser=integer, help="Every N milliseconds.")] = None,
    tz: Annotated[str, typer.Option(help="IANA time zone of the cron expression.")] = "UTC",
    count: Annotated[int, typer.Option("--count", "-n", parser=integer, help="How many fire times.")] = 10,
    start: Annotated[str | None, typer.Option(help="From this moment (ISO 8601 or Unix time); default now.")] = None,
    end_date: Annotated[
        str | None,
        typer.Option(help="No run after this (Unix seconds/ms or ISO 8601; a day alone: all of it, in --tz)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(parser=integer, help="At most this many runs in all (repeat.limit).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the next fire times of --cron (in --tz) or --every, in UTC and in the time zone."""
    repeat: dict[str, Any] = {"cron": cron, "every": every, "tz": tz, "endDate": end_date, "limit": limit}
    with user_errors():
        from ductape_jobs.inputs import RepeatOptions, parse  # pydantic: loaded by the command that reads one

        options = parse(RepeatOptions, {k: v for k, v in repeat.items() if v is not None}, prefix="repeat")
        with Ductape("sqlite:///:memory:") as dt:
            times = dt.job.preview(options, start=start, count=count)
    tz = options.tz  # as the check read it (' UTC' is UTC): the text given may not name a zone as it is
    zone = ZoneInfo(tz)
    rows = [{"utc": t, "local": t.astimezone(zone)} for t in times]
    what = f"cron {cron!r} in {tz}" if cron else f"every {render.ms(every)}"
    emit(rows, as_json, lambda: render.preview_table(times, tz, what))
