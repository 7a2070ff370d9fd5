"""``ductape schedule-many`` (bulk enqueue: ``job.schedule_many``) and ``ductape drain`` (run what is due now, in
this process: ``drain()``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ductape_jobs.cli import render
from ductape_jobs.cli.common import AppOpt, JsonOpt, StoreOpt, client, emit, parse_json, user_errors
from ductape_jobs.errors import ValidationError
from ductape_jobs.limits import MAX_BATCH, MAX_BATCH_FILE_BYTES
from ductape_jobs.models import DrainSummary


def read_json_array(path: str, field: str) -> list[Any]:
    """The JSON array in file ``path`` (``-``: standard input), of at most ``MAX_BATCH_FILE_BYTES``;
    ``ValidationError`` naming ``field`` otherwise."""
    try:
        if path == "-":
            raw = sys.stdin.buffer.read(MAX_BATCH_FILE_BYTES + 1)
        else:
            with Path(path).open("rb") as f:
                raw = f.read(MAX_BATCH_FILE_BYTES + 1)
        if len(raw) > MAX_BATCH_FILE_BYTES:
            raise ValidationError(
                field, f"{path!r} holds more than {MAX_BATCH_FILE_BYTES:,} bytes; split it into several calls"
            )
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValidationError(field, f"cannot read {path!r}: {reason}") from None
    value = parse_json(text, field)
    if not isinstance(value, list):
        raise ValidationError(field, f"must hold a JSON array of schedule requests, not a {type(value).__name__}")
    return value


def schedule_many(
    file: Annotated[
        str,
        typer.Option(
            "--file",
            metavar="PATH",
            help=f"A JSON array of schedule requests (IJobProcessorInput, as POST /schedule takes), at most "
            f"{MAX_BATCH:,}; - reads standard input.",
        ),
    ],
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Schedule many jobs at once, in one transaction: all or nothing (a bad request exits 2 naming its index,
    e.g. [2].start_at, and nothing is stored). Prints each dispatch result, in the order of the requests."""
    with user_errors():
        requests = read_json_array(file, "file")
    with client(store, app_) as dt:
        results = dt.job.schedule_many(requests)
        emit(results, as_json, lambda: render.dispatches_table(results))


RUNS_FAILED = 1  # the exit code of a drain in which runs failed for good (2 is bad input, as for usage errors)


def drain(store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """Run everything due now, in this process, until nothing more is due; print what happened. Use --app so
    your FUNCTIONs are registered (a FUNCTION no one registered fails its attempts). Exit code 0: no run failed for
    good; 1: some runs failed for good (attempts that will be retried are not failures), or the drain itself
    failed (its store, say); 2: bad input (a bad --store or --app)."""
    with client(store, app_) as dt:
        summary = dt.drain()
        emit(_summary(summary), as_json, lambda: _line(summary))
    if summary.failed:
        raise typer.Exit(RUNS_FAILED)


def _summary(s: DrainSummary) -> dict[str, int]:
    return {
        "created": s.created,
        "ran": s.ran,
        "completed": s.completed,
        "failed": s.failed,
        "retried": s.retried,
        "cancelled": s.cancelled,
    }


def _line(s: DrainSummary) -> str:
    return (
        f"drained: {s.ran} attempt(s) ran: {s.completed} completed, {s.failed} failed for good, {s.retried} will be "
        f"retried{_cancelled(s)}; {s.created} run(s) made from schedules that fell due"
    )


def _cancelled(s: DrainSummary) -> str:
    return f", {s.cancelled} cancelled (their schedule was cancelled while they ran)" if s.cancelled else ""
