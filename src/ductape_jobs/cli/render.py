"""Rich tables for people (``--json`` is for scripts). rich is imported when something is drawn (``new_table``,
``new_text``, ``new_group``), not with the commands, so ``ductape worker`` never loads it."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ductape_jobs.limits import visible
from ductape_jobs.models import DispatchResult, JobHistory, JobStats, Run, RunPhase, Schedule, ScheduleStatus
from ductape_jobs.retention import format_keep

if TYPE_CHECKING:
    from rich.console import Group, RenderableType
    from rich.table import Table
    from rich.text import Text

    from ductape_jobs.inputs import JobDefinition

PHASE_STYLE = {
    RunPhase.SCHEDULED: "cyan",
    RunPhase.QUEUED: "blue",
    RunPhase.RUNNING: "yellow",
    RunPhase.COMPLETED: "green",
    RunPhase.FAILED: "bold red",
    RunPhase.CANCELLED: "dim",
    RunPhase.RETRY_SCHEDULED: "magenta",
}
STATUS_STYLE = {
    ScheduleStatus.ACTIVE: "green",
    ScheduleStatus.PAUSED: "yellow",
    ScheduleStatus.CANCELLED: "dim",
    ScheduleStatus.COMPLETED: "blue",
}


def new_table(title: str, **options: Any) -> Table:
    """A rich ``Table`` with its title on the left, whose title and cells given as ``str`` are shown as written: a
    job's name, a pause's reason or a filter of ``[/]`` or ``[link=...]`` is data, never console markup (which failed
    the command or drew a link)."""
    heading = new_text(title, style="table.title")
    heading.no_wrap, heading.overflow = True, "ignore"  # on one line, past a narrow table's width (not wrapped to it)
    return _data_table()(title=heading, title_justify="left", **options)


#: Rows past which a table is laid out once, as rich draws it (``_laid_within`` lays one out up to seven times:
#: ``job list`` of 2,000 jobs took 11 s instead of 1.7).
_RELAID_ROWS = 200


def _trimmed(segments: list[Any]) -> list[Any]:
    """A table's lines without the spaces that end them: rich pads its title to the table's width, which a file or
    a pipe then holds (``Runs (2)`` and 95 spaces). Lines of anything but segments are left as they are."""
    from rich.segment import Segment

    if not all(isinstance(s, Segment) for s in segments):
        return segments
    out: list[Any] = []
    for line in Segment.split_lines(segments):
        while line and not line[-1].control and not line[-1].text.rstrip(" "):
            line.pop()
        if line and not line[-1].control:
            last = line[-1]
            line[-1] = Segment(last.text.rstrip(" "), last.style)
        out.extend(line)
        out.append(Segment.line())
    return out


def _laid_within(layout: Callable[[int], list[Any]], target: int) -> list[Any]:
    """A table's segments (``layout(width)``) drawn at most ``target`` wide, where they can be. Rich shrinks the
    widest columns that wrap and then widens back any that went below its floor, so a table came out wider than
    asked (``run show``'s attempts: 82 to 89 columns in an 80-column terminal, its right border on a line of its
    own): it is laid out again narrower, below ``target`` by twice what it overshot and then halving the gap to
    the widest request drawn within it, seven layouts at most; none within it: the first, as rich drew it."""
    from rich.segment import Segment

    def measured(width: int) -> tuple[int, list[Any]]:
        segments = layout(width)
        laid = [s for s in segments if isinstance(s, Segment)]  # a Table yields Segments (its title rendered)
        if len(laid) != len(segments):
            return 0, segments  # not measured: taken as it is
        return max((Segment.get_line_length(line) for line in Segment.split_lines(laid)), default=0), segments

    drawn, best = measured(target)
    if drawn <= target:
        return best
    fits, over, width = 0, target, max(1, target - 2 * (drawn - target))
    for _ in range(6):
        drawn, segments = measured(width)
        if drawn <= target:
            fits, best = width, segments
        else:
            over = width
        if over - fits <= 1:
            break
        width = (fits + over) // 2 if fits else max(1, width - 2 * (drawn - target))
    return best


@functools.cache
def _data_table() -> type[Table]:
    from rich.table import Table
    from rich.text import Text

    class DataTable(Table):
        def __rich_console__(self, console: Any, options: Any) -> Any:
            """Laid out at least as wide as its columns' floors, padding and borders: a narrower console would have
            rich shrink columns past them, to nothing (their header too) or cutting values with an ellipsis. Every
            column keeps its header; one that wraps gives way down to its longest word, one that does not (ids,
            phases, times) keeps its widest value, one that folds (a detail view's values) gives way down to its
            header, and a text made to be cut (``squeeze``: an error's first line) is not measured. The floors are
            this render's: the table is left as it was."""
            from rich.measure import Measurement

            wide = options.update_width(1 << 30)  # a value's own width, not capped at the console's
            kept = [column.min_width for column in self.columns]
            least = len(self.columns) + 1  # the borders
            _, right, _, left = self.padding
            try:
                for column in self.columns:
                    floor = max(column.min_width or 1, Measurement.get(console, wide, column.header).maximum)
                    if column.no_wrap or column.overflow != "fold":
                        for cell in column.cells:
                            if not (isinstance(cell, Text) and cell.no_wrap and cell.overflow == "ellipsis"):
                                size = Measurement.get(console, wide, cell)
                                floor = max(floor, size.maximum if column.no_wrap else size.minimum)
                    column.min_width = floor
                    least += floor + left + right
                target = max(options.max_width, least)

                def layout(width: int) -> list[Any]:
                    return list(super(DataTable, self).__rich_console__(console, options.update_width(width)))

                # a long listing is laid out once
                yield from _trimmed(layout(target) if self.row_count > _RELAID_ROWS else _laid_within(layout, target))
            finally:
                for column, width in zip(self.columns, kept, strict=True):
                    column.min_width = width

        def add_row(self, *cells: RenderableType | None, style: Any = None, end_section: bool = False) -> None:
            shown = [new_text(cell) if isinstance(cell, str) else cell for cell in cells]
            super().add_row(*shown, style=style, end_section=end_section)

    return DataTable


def id_column(table: Table, header: str, **options: Any) -> None:
    """Add a column of ids (or tags), which a user copies into a command: never cut or wrapped, in any width (a
    column that does not wrap keeps its widest value: ``DataTable``); where the table is then wider than the console,
    its lines are longer than it (``emit`` prints them uncropped)."""
    table.add_column(header, no_wrap=True, **options)


def new_text(value: str, **options: Any) -> Text:
    """A rich ``Text`` (as written: no console markup; control characters shown as escapes, ``visible``). Every
    text the CLI draws is made here: table cells and titles, detail rows, printed messages."""
    from rich.text import Text

    return Text(visible(value), **options)


def new_group(*items: RenderableType) -> Group:
    """Renderables drawn one after another."""
    from rich.console import Group

    return Group(*items)


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def ms(value: timedelta | int | None) -> str:
    if value is None:
        return "-"
    n = int(value.total_seconds() * 1000) if isinstance(value, timedelta) else value
    return f"{n}ms" if n < 1000 else f"{n / 1000:g}s"


def first_line(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


#: Characters of a run's input or output (as JSON) a detail view prints; ``--json`` prints them whole.
SHOWN_JSON = 2_000


def json_shown(value: Any) -> str | None:
    """``value`` as JSON for a detail view, its first ``SHOWN_JSON`` characters when longer (a 1 MiB output drew
    more than a megabyte of folded table)."""
    if value is None:
        return None
    text = json.dumps(value, default=str)
    if len(text) <= SHOWN_JSON:
        return text
    return f"{text[:SHOWN_JSON]}… (the first {SHOWN_JSON:,} of {len(text):,} characters; --json prints it whole)"


def squeeze(line: str) -> Text:
    """One line, cut with an ellipsis when its column is narrower (the column itself may shrink)."""
    return new_text(line, no_wrap=True, overflow="ellipsis")


def phase(value: RunPhase) -> Text:
    return new_text(value.value, style=PHASE_STYLE.get(value, ""))


def status(value: ScheduleStatus) -> Text:
    return new_text(value.value, style=STATUS_STYLE.get(value, ""))


def cadence(s: Schedule) -> str:
    if s.cron:
        text = f"cron {s.cron} ({s.tz})"
    elif s.every:
        text = f"every {ms(s.every)}" + (" (job)" if s.follows_job else "")
    else:
        text = "once"
    extras = [f"limit {s.limit}" if s.limit else "", f"until {when(s.end_date)}" if s.end_date else ""]
    return " ".join([text, *filter(None, extras)])


def fields(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column key/value table."""
    from rich.text import Text

    table = new_table(title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else new_text("-" if value is None else str(value)))
    return table


# ------------------------------------------------------------------------------------------------ jobs


def jobs_table(jobs: Sequence[JobDefinition]) -> Table:
    table = new_table(f"Jobs ({len(jobs)})")
    id_column(table, "tag")
    # "runs": what a schedule following the job makes, not its ``executions`` (0 without intervals, shown as 1 here
    # under that name, which ``job show`` and --json gave as 0)
    for col in ("product", "name", "event", "runs", "intervals", "start_at", "updated"):
        table.add_column(col)
    for j in jobs:
        table.add_row(
            j.tag,
            j.product_tag or "(shared)",
            j.name,
            f"{j.event_type.name} {j.event_tag}",
            _runs_of(j),
            ms(j.intervals) if j.intervals else "once",
            when(j.start_at),
            when(j.updated_at),
        )
    return table


def _runs_of(j: JobDefinition) -> str:
    """How many times a schedule that follows the job's cadence runs: ``executions`` (``∞`` for 0) with
    ``intervals``, else once (``executions`` then counts for nothing)."""
    return str(j.executions or "∞") if j.intervals else "1"


def _runs_meaning(j: JobDefinition) -> str:
    """What ``executions`` means for the schedules of the job made without ``repeat`` (one with ``repeat``
    follows its own)."""
    if not j.intervals:
        return "no intervals: a schedule without repeat runs once"
    if not j.executions:
        return "unlimited"
    times = "once" if j.executions == 1 else f"{j.executions} times"
    return f"a schedule without repeat runs {times}"


def _keep(keep: timedelta | int | None) -> str:
    if keep is None:
        return "(the client's retention)"
    return f"the newest {keep} runs" if isinstance(keep, int) else format_keep(keep)


def job_detail(j: JobDefinition) -> Table:
    return fields(
        f"Job {j.tag}",
        [
            ("tag", j.tag),
            ("product_tag", j.product_tag or "(shared by every product)"),
            ("name", j.name),
            ("event_type", j.event_type.name),
            ("event_tag", j.event_tag),
            ("executions", f"{j.executions} ({_runs_meaning(j)})"),
            ("intervals", ms(j.intervals) if j.intervals else "0 (once)"),
            ("start_at", when(j.start_at)),
            ("priority", j.priority),
            ("resources", ", ".join(j.resources) or "-"),
            ("concurrency", j.concurrency if j.concurrency is not None else "(no limit of its own)"),
            ("rate", j.rate or "(no limit of its own)"),
            ("keep_completed", _keep(j.keep_completed)),
            ("keep_failed", _keep(j.keep_failed)),
            ("created_at", when(j.created_at)),
            ("updated_at", when(j.updated_at)),
        ],
    )


# ------------------------------------------------------------------------------------------- schedules


def dispatch(r: DispatchResult) -> Table:
    return fields(
        "Scheduled",
        [
            ("job_id", r.job_id),
            ("status", phase(r.status)),
            ("scheduled_at", when(r.scheduled_at)),
            ("recurring", "yes" if r.recurring else "no"),
            ("next_run_at", when(r.next_run_at)),
        ],
    )


def dispatches_table(results: Sequence[DispatchResult]) -> Table:
    """What ``schedule-many`` made: one row per request, in order."""
    table = new_table(f"Scheduled ({len(results)})")
    id_column(table, "job_id")
    for col in ("status", "scheduled_at", "recurring", "next_run_at"):  # a time wraps at its space, if at all
        table.add_column(col)
    for r in results:
        recurring = "yes" if r.recurring else "no"
        table.add_row(r.job_id, phase(r.status), when(r.scheduled_at), recurring, when(r.next_run_at))
    return table


def counted(noun: str, shown: int, limit: int | None) -> str:
    """A list's title: how many it shows, and when that is its ``--limit``, that there may be more (a new-user probe:
    ``Schedules (100)`` read as the whole count of 105)."""
    more = "; --limit for more" if limit is not None and shown >= limit else ""
    return f"{noun} ({shown}, newest first{more})" if more else f"{noun} ({shown})"


def schedules_table(items: Sequence[Schedule], limit: int | None = None) -> Table:
    table = new_table(counted("Schedules", len(items), limit))
    id_column(table, "job_id")
    id_column(table, "job")
    for col in ("env", "status", "cadence", "next_run_at", "runs", "reason"):  # words whole; a time wraps at its space
        table.add_column(col)
    for s in items:
        table.add_row(
            s.id,
            s.job_tag,
            s.env,
            status(s.status),
            cadence(s),
            when(s.next_run_at),
            str(s.run_count),
            first_line(s.reason, 40),
        )
    return table


def schedule_detail(s: Schedule) -> Table:
    return fields(
        f"Schedule {s.id}",
        [
            ("job_id", s.id),
            ("key", s.key),
            ("job", s.job_tag),
            ("env / product", f"{s.env} / {s.product_tag}"),
            ("status", status(s.status)),
            ("cadence", cadence(s)),
            ("start_at", when(s.start_at)),
            ("next_run_at", when(s.next_run_at)),
            ("runs", s.run_count),
            ("retries", s.retries),
            ("input", json_shown(s.input)),
            ("reason", s.reason),
        ],
    )


# ------------------------------------------------------------------------------------------------ runs


def runs_table(runs: Sequence[Run], title: str | None = None, limit: int | None = None) -> Table:
    table = new_table(title or counted("Runs", len(runs), limit))
    id_column(table, "run_id")
    id_column(table, "job")
    for col in ("phase", "scheduled_at", "attempt", "took"):
        table.add_column(col, no_wrap=True)
    table.add_column("error", max_width=60)  # the one column that gives way when the terminal is narrow
    for r in runs:
        row = (r.id, r.job_tag, phase(r.phase), when(r.scheduled_at), str(r.attempt), ms(r.duration_ms))
        table.add_row(*row, squeeze(first_line(r.error)))
    return table


def live_runs_table(runs: Sequence[Run], title: str) -> Table:
    """The demo's live view: what ran when and what it returned (or why it failed)."""
    table = new_table(title)
    for col in ("at", "job", "phase", "attempt", "took"):
        table.add_column(col, no_wrap=True)
    table.add_column("output / error")
    for r in runs:
        result = first_line(r.error) if r.error else json.dumps(r.output, default=str) if r.output is not None else ""
        at = r.scheduled_at.strftime("%H:%M:%S")
        table.add_row(at, r.job_tag, phase(r.phase), str(r.attempt), ms(r.duration_ms), squeeze(result))
    return table


def run_detail(r: Run) -> RenderableType:
    info = fields(
        f"Run {r.id}",
        [
            ("run_id", r.id),
            ("job_id", r.job_id),
            ("job", f"{r.job_tag} ({r.event_type.name} {r.event_tag})"),
            ("env / product", f"{r.env} / {r.product_tag}"),
            ("phase", phase(r.phase)),
            ("triggered_by", r.triggered_by.value),
            ("scheduled_at", when(r.scheduled_at)),
            ("started_at", when(r.started_at)),
            ("completed_at", when(r.completed_at)),
            ("retries", f"{r.retry_count} of {r.max_retries}"),
            ("duration", ms(r.duration_ms)),
            ("input", json_shown(r.input)),
            ("output", json_shown(r.output)),
            ("error", first_line(r.error, 200) or None),
        ],
    )
    attempts = new_table(f"Attempts ({len(r.attempts)})")
    attempts.add_column("#", justify="right", no_wrap=True)
    for col in ("worker", "started_at", "finished_at", "outcome"):  # a time wraps at its space, if at all
        attempts.add_column(col)
    attempts.add_column("error")
    for a in r.attempts:
        started, finished = when(a.started_at), when(a.finished_at)
        attempts.add_row(str(a.attempt), a.worker_id, started, finished, a.outcome or "-", first_line(a.error))
    return new_group(info, attempts)


# ------------------------------------------------------------------------------------- history, stats


def history_table(h: JobHistory) -> Table:
    runs = f"{h.total} run" + ("" if h.total == 1 else "s")
    title = f"History of {h.job_id} ({h.job_tag}): {runs}, {h.successful} successful, {h.failed} failed"
    table = new_table(title)
    table.add_column("#", justify="right", no_wrap=True)
    id_column(table, "run_id")
    for col in ("phase", "scheduled_at", "started_at", "took", "by", "retries"):  # "phase": as Python and REST
        table.add_column(col, no_wrap=True)
    table.add_column("result / error", max_width=60)
    for e in h.executions:
        shown = first_line(e.error) if e.error else json.dumps(e.result, default=str) if e.result is not None else ""
        row = (str(e.number), e.run_id, phase(e.phase), when(e.scheduled_at), when(e.started_at), ms(e.duration_ms))
        table.add_row(*row, e.triggered_by.value, str(e.retry_count), squeeze(shown))
    return table


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def stats_table(s: JobStats) -> Table:
    scope = " / ".join(v for v in (s.product_tag, s.env) if v) or "every product"
    bounds = [f"from {when(s.since)}" if s.since else "", f"before {when(s.until)}" if s.until else ""]
    window = " ".join(b for b in bounds if b)
    rows: list[tuple[str, Any]] = [("runs", s.total)]
    rows += [(f"  {p.value}", s.by_phase.get(p, 0)) for p in RunPhase]
    rows += [
        ("finished", s.finished),
        ("success rate", percent(s.success_rate)),
        ("completed first try", s.completed_first_try),
        ("completed after retry", s.completed_after_retry),
        ("average retries", "-" if s.average_retry_count is None else f"{s.average_retry_count:.2f}"),
    ]
    return fields(f"Runs of {scope}" + (f", due {window}" if window else ""), rows)


# --------------------------------------------------------------------------------------------- preview


def preview_table(times: Sequence[datetime], tz: str, what: str) -> Table:
    zone = ZoneInfo(tz)
    table = new_table(f"Next {len(times)} fire times of {what}" if len(times) != 1 else f"Next fire time of {what}")
    table.add_column("#", justify="right")
    table.add_column("UTC")
    table.add_column(tz)
    for i, t in enumerate(times, 1):
        local = t.astimezone(zone)
        table.add_row(str(i), when(t), local.strftime("%Y-%m-%d %H:%M:%S %Z (%z)"))
    return table
