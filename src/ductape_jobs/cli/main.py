"""``ductape``: run the engine, manage jobs and schedules, inspect runs, preview cadences, try the demo."""

from __future__ import annotations

import copy
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ductape_jobs import logs
from ductape_jobs._version import __version__
from ductape_jobs.cli import render
from ductape_jobs.cli.common import (
    AppOpt,
    JsonOpt,
    ProductOpt,
    StoreOpt,
    WebhookAllowOpt,
    allow_webhooks_to,
    check_networks,
    client,
    decimal,
    emit,
    flag,
    import_from_here,
    integer,
    log_started,
    parse_json_object,
    user_errors,
)
from ductape_jobs.client import worker_options
from ductape_jobs.logs import logger

if TYPE_CHECKING:
    from ductape_jobs.client import Ductape
    from ductape_jobs.jobs import Jobs


#: The commands and groups defined in modules of their own, by the name they are called, in the order their help
#: lists them: each module is imported when its command is named (``ductape worker`` imports none of them, nor what
#: they import), or all of them when the whole app is (``--help``, a typo, ``app``).
PARTS: dict[str, tuple[str, str]] = {
    "feature": ("ductape_jobs.cli.features", "feature_app"),
    "apikey": ("ductape_jobs.cli.apikey", "apikey_app"),
    "session": ("ductape_jobs.cli.sessions", "session_app"),
    "webhook": ("ductape_jobs.cli.webhooks", "webhook_app"),
    "demo": ("ductape_jobs.cli.demo", "demo"),
    "serve": ("ductape_jobs.cli.serve", "serve"),
    "preview": ("ductape_jobs.cli.preview", "preview"),
    "schedule-many": ("ductape_jobs.cli.batch", "schedule_many"),
    "drain": ("ductape_jobs.cli.batch", "drain"),
    "history": ("ductape_jobs.cli.history", "history"),
    "stats": ("ductape_jobs.cli.history", "stats"),
    "prune": ("ductape_jobs.cli.prune", "prune"),
    "backup": ("ductape_jobs.cli.backup", "backup"),
    "copy": ("ductape_jobs.cli.transfer", "copy_store"),
    "migrate": ("ductape_jobs.cli.migrate", "migrate"),
    "resources": ("ductape_jobs.cli.resources", "resources"),
}


class _Cli(typer.Typer):
    """The ``ductape`` command. Typer builds the click command of every subcommand on each call (it reads each one's
    signature and types, about 0.1 s of CPU for them all); a call builds only the one its first argument names, so
    that ``ductape worker`` starts sooner, and imports only its module (``PARTS``). No subcommand named there
    (``--help``, an option first, a typo): all (``complete``)."""

    def __init__(self, *, parts: dict[str, tuple[str, str]], **options: Any) -> None:
        super().__init__(**options)
        self._parts = parts
        self._complete = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        argv = kwargs.get("args", args[0] if args else None)
        return typer.Typer.__call__(self.narrowed(sys.argv[1:] if argv is None else argv), *args, **kwargs)

    def narrowed(self, argv: Sequence[str]) -> typer.Typer:
        """This app with only the command or group ``argv`` starts with (the whole app when it names none; none of
        them for ``--version``, which needs only the callback)."""
        name = argv[0] if argv else None
        if name in self._parts and not self._complete:
            narrow = copy.copy(self)
            narrow.registered_commands, narrow.registered_groups = [], []
            narrow._add(name, self._part(name))
            return narrow
        commands = [
            c
            for c in self.registered_commands
            if c.callback is not None and (c.name or typer.main.get_command_name(c.callback.__name__)) == name
        ]
        groups = [g for g in self.registered_groups if g.name == name]
        if not commands and not groups and name != "--version":  # after another option: the whole app, slower
            return self.complete()
        narrow = copy.copy(self)
        narrow.registered_commands, narrow.registered_groups = commands, groups
        return narrow

    def complete(self) -> _Cli:
        """This app with every command and group, ``PARTS``' imported, in the order its help always listed them:
        their commands before this module's, their groups after ``job`` and ``run``."""
        if not self._complete:
            commands, groups = self.registered_commands, self.registered_groups
            self.registered_commands, self.registered_groups = [], []
            for name in self._parts:
                self._add(name, self._part(name))
            self.registered_commands += commands
            self.registered_groups = groups + self.registered_groups
            self._complete = True
        return self

    def _part(self, name: str) -> typer.Typer | Callable[..., Any]:
        module, attribute = self._parts[name]
        part: typer.Typer | Callable[..., Any] = getattr(importlib.import_module(module), attribute)
        return part

    def _add(self, name: str, part: typer.Typer | Callable[..., Any]) -> None:
        if isinstance(part, typer.Typer):
            self.add_typer(part, name=name)
        else:
            self.command(name)(part)


cli = _Cli(
    parts=PARTS,
    name="ductape",
    help="ductape-jobs: a durable job scheduler (Ductape's Jobs API).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
job_app = typer.Typer(help="Job definitions: list, show, create, update, delete.", no_args_is_help=True)
run_app = typer.Typer(help="One run: show it (with its attempts) or retry it.", no_args_is_help=True)
cli.add_typer(job_app, name="job")
cli.add_typer(run_app, name="run")


def _print_version(value: bool) -> None:
    """``--version``: eager, so it answers before any command is parsed or any store is opened. With the release's
    schema version: a process whose is lower than the store's refuses it (``ductape migrate --check`` shows both)."""
    if value:
        from ductape_jobs.store.sql import release_version

        typer.echo(f"ductape-jobs {__version__} (schema {release_version()})")
        raise typer.Exit()


@cli.callback()
def main(
    product_file: Annotated[
        str | None,
        typer.Option(
            "--product-file",
            envvar="DUCTAPE_PRODUCT_FILE",
            metavar="PATH",
            help="Product file (YAML or TOML) declaring products, envs and events (also $DUCTAPE_PRODUCT_FILE).",
        ),
    ] = None,
    version: Annotated[
        bool,
        flag("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """ductape-jobs: a durable job scheduler (Ductape's Jobs API)."""
    logs.last_resort()  # a run's warning where nothing set logging up (drain, feature run): escapes, not raw text
    if product_file:
        os.environ["DUCTAPE_PRODUCT_FILE"] = product_file  # read by every Ductape() the command opens
        import_from_here()  # its FUNCTIONs' module:function, imported when first run


log = logger("ductape_jobs.cli")


# ---------------------------------------------------------------------------------------------- worker


@cli.command()
def worker(
    app_: AppOpt = None,
    store: StoreOpt = None,
    # No bounds here: the engine checks each setting (README, Limits) and its error names the rule.
    concurrency: Annotated[
        int | None, typer.Option(parser=integer, help="Runs in flight at once (default 50).")
    ] = None,
    lease: Annotated[
        float | None, typer.Option(parser=decimal, help="Lease per claimed run, seconds (default 30).")
    ] = None,
    poll: Annotated[
        float | None, typer.Option(parser=decimal, help="Longest idle sleep, seconds (default 0.2).")
    ] = None,
    ahead: Annotated[
        float | None,
        typer.Option(
            parser=decimal, help="Claim a delayed run this long before it is due, seconds; 0: when due (default 0.02)."
        ),
    ] = None,
    quiet: Annotated[bool, flag("--quiet", "-q", help="Log only warnings and errors.")] = False,
    webhook_allow: WebhookAllowOpt = None,
) -> None:
    """Run the engine (scheduler and workers) until SIGTERM/SIGINT. Use --app so your FUNCTIONs are registered."""
    logs.setup(logging.WARNING if quiet else logging.INFO)  # JSON lines unless stderr is a terminal
    options = {"concurrency": concurrency, "lease": lease, "poll": poll, "ahead": ahead}
    overrides: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    with user_errors():  # a bad setting is refused before any store is opened or made
        worker_options(**overrides)
    settings: dict[str, Any] = {"concurrency": concurrency} if concurrency is not None else {}
    check_networks(webhook_allow)
    with client(store, app_, creates=True, **settings) as dt:
        allow_webhooks_to(dt, webhook_allow)
        log_started(dt)
        dt.worker(**overrides)


# ------------------------------------------------------------------------------------------------ jobs


@job_app.command("list")
def job_list(product: ProductOpt = None, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """Job definitions: one product's (--product), else every job."""
    with client(store, app_) as dt:
        jobs = _jobs(dt, product).fetch_all()
        emit(jobs, as_json, lambda: render.jobs_table(jobs))


@job_app.command("show")
def job_show(
    tag: str, product: ProductOpt = None, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False
) -> None:
    """One job definition by tag (with --product: the product's own, else the shared one)."""
    with client(store, app_) as dt:
        job = _jobs(dt, product).fetch(tag)
        emit(job, as_json, lambda: render.job_detail(job))


KeepOpt = Annotated[
    str | None,
    typer.Option(
        help="This job's retention of such runs: a duration (7d, 12h) or how many of the newest (100); on update, "
        "default: the client's."
    ),
]


@job_app.command("create")
def job_create(
    name: Annotated[str, typer.Option(help="A human name.")],
    tag: Annotated[str, typer.Option(help="Unique tag (letters, digits, _ - . :).")],
    event_type: Annotated[
        str, typer.Option(help="ACTION, NOTIFICATION, DATABASE_ACTION, FUNCTION, MESSAGEBROKER, FEATURE.")
    ],
    event_tag: Annotated[str, typer.Option(help="The event to run (a FUNCTION's registered tag, ...).")],
    executions: Annotated[
        int | None,
        typer.Option(parser=integer, help="Runs of the job's cadence; 0 = unlimited; required with --intervals."),
    ] = None,
    intervals: Annotated[int, typer.Option(parser=integer, help="Milliseconds between runs; 0 = run once.")] = 0,
    start_at: Annotated[str | None, typer.Option(help="Unix seconds/ms or ISO 8601.")] = None,
    keep_completed: KeepOpt = None,
    keep_failed: KeepOpt = None,
    resource: Annotated[list[str] | None, typer.Option(help="A resource of its product its runs use (repeat).")] = None,
    concurrency: Annotated[
        int | None, typer.Option(parser=integer, help="Its own limit: runs executing at once.")
    ] = None,
    rate: Annotated[str | None, typer.Option(help="Its own limit: runs started per window, e.g. 10/s.")] = None,
    priority: Annotated[
        int | None, typer.Option(parser=integer, help="Its runs' default priority, -100 to 100.")
    ] = None,
    product: ProductOpt = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a job definition, of a product (--product) or shared (nothing is written if a field is invalid:
    exit code 2)."""
    details: dict[str, Any] = {
        "name": name,
        "tag": tag,
        "event_type": event_type,
        "event_tag": event_tag,
        "intervals": intervals,
    }
    given = {"executions": executions, "start_at": start_at, "keep_completed": keep_completed,
             "keep_failed": keep_failed, "resources": resource, "concurrency": concurrency, "rate": rate,
             "priority": priority}  # fmt: skip
    details.update({k: v for k, v in given.items() if v is not None})
    with client(store, app_, creates="record") as dt:
        job = _jobs(dt, product).create(details)
        emit(job, as_json, lambda: render.job_detail(job))


@job_app.command("update")
def job_update(
    tag: str,
    name: Annotated[str | None, typer.Option(help="A new human name.")] = None,
    event_type: Annotated[str | None, typer.Option(help="A new event type.")] = None,
    event_tag: Annotated[str | None, typer.Option(help="A new event to run.")] = None,
    executions: Annotated[
        int | None, typer.Option(parser=integer, help="Runs of the job's cadence; 0 = unlimited.")
    ] = None,
    intervals: Annotated[
        int | None, typer.Option(parser=integer, help="Milliseconds between runs; 0 = run once.")
    ] = None,
    start_at: Annotated[str | None, typer.Option(help="Unix seconds/ms or ISO 8601.")] = None,
    keep_completed: KeepOpt = None,
    keep_failed: KeepOpt = None,
    resource: Annotated[
        list[str] | None, typer.Option(help="The resources of its product its runs use, all of them (repeat).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(parser=integer, help="Its own limit: runs executing at once.")
    ] = None,
    rate: Annotated[str | None, typer.Option(help="Its own limit: runs started per window, e.g. 10/s.")] = None,
    priority: Annotated[
        int | None, typer.Option(parser=integer, help="Its runs' default priority, -100 to 100.")
    ] = None,
    product: ProductOpt = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a job definition's fields (the seeds' job.update); the tag and product stay. --keep-completed default
    (or --keep-failed default) gives the job back to the client's retention."""
    given = {"name": name, "event_type": event_type, "event_tag": event_tag, "executions": executions,
             "intervals": intervals, "start_at": start_at, "resources": resource, "concurrency": concurrency,
             "rate": rate, "priority": priority}  # fmt: skip
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    for key, keep in (("keep_completed", keep_completed), ("keep_failed", keep_failed)):
        if keep is not None:
            changes[key] = None if keep.strip().lower() == "default" else keep
    with client(store, app_) as dt:
        job = _jobs(dt, product).update(tag, changes)
        emit(job, as_json, lambda: render.job_detail(job))


@job_app.command("delete")
def job_delete(
    tag: str, product: ProductOpt = None, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False
) -> None:
    """Delete a job definition; its active or paused schedules are cancelled (their history is kept)."""
    with client(store, app_) as dt:
        _jobs(dt, product).delete(tag)
        emit({"deleted": tag}, as_json, lambda: f"deleted job {tag}")


def _jobs(dt: Ductape, product: str | None) -> Jobs:
    return dt.job if product is None else dt.product(product).jobs


# ------------------------------------------------------------------------------------------- schedules


@cli.command()
def schedule(
    event: Annotated[str, typer.Option(help="The job tag to run.")],
    env: Annotated[str, typer.Option(help="Environment, e.g. prd.")],
    product_tag: Annotated[str, typer.Option("--product-tag", "--product", help="The product's tag.")],
    start_at: Annotated[
        str | None,
        typer.Option(help="Unix seconds/ms or ISO 8601; 0 = now; absent = the job's start_at (now if it has none)."),
    ] = None,
    retries: Annotated[int, typer.Option(parser=integer, help="Extra attempts after a failure.")] = 0,
    input_: Annotated[str | None, typer.Option("--input", help="The run's input, a JSON object.")] = None,
    cron: Annotated[str | None, typer.Option(help="Cron expression (5 fields, or 6 with leading seconds).")] = None,
    tz: Annotated[str | None, typer.Option(help="IANA time zone of --cron (default UTC).")] = None,
    every: Annotated[int | None, typer.Option(parser=integer, help="Repeat every N milliseconds.")] = None,
    limit: Annotated[int | None, typer.Option(parser=integer, help="At most N runs.")] = None,
    end_date: Annotated[
        str | None,
        typer.Option(help="No run after this (Unix seconds/ms or ISO 8601; a day alone: all of it, in --tz)."),
    ] = None,
    timeout: Annotated[
        int | None, typer.Option(parser=integer, help="Max runtime of one attempt, milliseconds.")
    ] = None,
    session: Annotated[str | None, typer.Option(help="A session token, 'tag:jwt' (feeds $Session{...}).")] = None,
    cache: Annotated[str | None, typer.Option(help="A cache tag the product declares.")] = None,
    app_tag: Annotated[
        str | None, typer.Option("--app-tag", help="The seeds' app: the product app of the event.")
    ] = None,
    misfire: Annotated[str | None, typer.Option(help="run_once (default), run_all or skip.")] = None,
    overlap: Annotated[str | None, typer.Option(help="allow (default), skip or buffer_one.")] = None,
    pause_on_failure: Annotated[bool, flag("--pause-on-failure", help="Pause when a run fails for good.")] = False,
    priority: Annotated[
        int | None, typer.Option(parser=integer, help="Its runs' priority, -100 to 100 (default: the job's).")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Names the schedule in its product and env: made once; asked again, the one made answers."),
    ] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Schedule a job: now, at --start-at, or on a --cron/--every cadence. Prints the dispatch result."""
    with user_errors():  # the input read before the store is opened
        request: dict[str, Any] = {
            "event": event,
            "env": env,
            "product_tag": product_tag,
            "retries": retries,
            "input": parse_json_object(input_, "input"),
        }
    if start_at is not None:
        request["start_at"] = start_at
    optional = {"timeout": timeout, "session": session, "cache": cache, "app": app_tag, "misfire": misfire,
                "overlap": overlap, "priority": priority, "key": key}  # fmt: skip
    request.update({k: v for k, v in optional.items() if v is not None})
    if pause_on_failure:
        request["pause_on_failure"] = True
    repeat = {"cron": cron, "every": every, "limit": limit, "endDate": end_date, "tz": tz}
    if any(v is not None for v in repeat.values()):
        request["repeat"] = {k: v for k, v in repeat.items() if v is not None}
    with client(store, app_) as dt:
        result = dt.job.schedule(request)
        emit(result, as_json, lambda: render.dispatch(result))


@cli.command()
def schedules(
    status: Annotated[str | None, typer.Option(help="active, paused, cancelled or completed.")] = None,
    job: Annotated[str | None, typer.Option(help="Only this job tag's schedules.")] = None,
    product_tag: Annotated[
        str | None, typer.Option("--product-tag", "--product", help="Only this product's schedules.")
    ] = None,
    env: Annotated[str | None, typer.Option(help="Only this environment's schedules.")] = None,
    limit: Annotated[int, typer.Option(parser=integer, help="At most N, newest first.")] = 100,
    after: Annotated[str | None, typer.Option(help="The schedules past this job_id (the last one shown).")] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Scheduled job instances (job_id = the schedule's id), newest first."""
    with client(store, app_) as dt:
        items = dt.job.list(  # an empty filter is none, as over HTTP
            status=status or None,
            job_tag=job or None,
            product_tag=product_tag or None,
            env=env or None,
            limit=limit,
            after=after or None,
        )
        emit(items, as_json, lambda: render.schedules_table(items, limit))


@cli.command()
def show(job_id: str, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """One schedule (a scheduled job instance) by job_id: its cadence, status and counts."""
    with client(store, app_) as dt:
        s = dt.job.get(job_id)
        emit(s, as_json, lambda: render.schedule_detail(s))


@cli.command()
def pause(
    job_id: str,
    reason: Annotated[str | None, typer.Option(help="Why (kept on the schedule).")] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pause a schedule: no new occurrence starts; runs already queued still run."""
    with client(store, app_) as dt:
        s = dt.job.pause(job_id, reason)
        emit(s, as_json, lambda: render.schedule_detail(s))


@cli.command()
def resume(job_id: str, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """Resume a paused schedule from now (occurrences missed while paused are skipped)."""
    with client(store, app_) as dt:
        s = dt.job.resume(job_id)
        emit(s, as_json, lambda: render.schedule_detail(s))


@cli.command()
def cancel(
    job_id: str,
    reason: Annotated[str | None, typer.Option(help="Why (kept on the schedule).")] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a schedule for good, and its runs that have not started."""
    with client(store, app_) as dt:
        s = dt.job.cancel(job_id, reason)
        emit(s, as_json, lambda: render.schedule_detail(s))


@cli.command()
def trigger(job_id: str, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """Run a schedule once more now, outside its cadence, with its input (a running worker picks it up)."""
    with client(store, app_) as dt:
        r = dt.job.trigger(job_id)
        emit(r, as_json, lambda: render.run_detail(r))


@cli.command()
def reschedule(
    job_id: str,
    cron: Annotated[str | None, typer.Option(help="Cron expression (5 fields, or 6 with leading seconds).")] = None,
    tz: Annotated[str | None, typer.Option(help="IANA time zone of --cron (default UTC).")] = None,
    every: Annotated[int | None, typer.Option(parser=integer, help="Repeat every N milliseconds.")] = None,
    limit: Annotated[int | None, typer.Option(parser=integer, help="At most N runs.")] = None,
    end_date: Annotated[
        str | None,
        typer.Option(help="No run after this (Unix seconds/ms or ISO 8601; a day alone: all of it, in --tz)."),
    ] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a schedule a new cadence from now on: --cron (in --tz) or --every, with --limit and --end-date."""
    repeat = {"cron": cron, "every": every, "limit": limit, "endDate": end_date, "tz": tz}
    with client(store, app_) as dt:
        s = dt.job.reschedule(job_id, {k: v for k, v in repeat.items() if v is not None})
        emit(s, as_json, lambda: render.schedule_detail(s))


# ------------------------------------------------------------------------------------------------ runs


@cli.command()
def runs(
    phase: Annotated[str | None, typer.Option(help="scheduled, queued, running, completed, failed, ...")] = None,
    job_id: Annotated[str | None, typer.Option(help="Only this schedule's runs.")] = None,
    job: Annotated[str | None, typer.Option(help="Only this job tag's runs.")] = None,
    product_tag: Annotated[
        str | None, typer.Option("--product-tag", "--product", help="Only this product's runs.")
    ] = None,
    env: Annotated[str | None, typer.Option(help="Only this environment's runs.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Runs due at or after this time: Unix seconds/ms or ISO 8601.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Runs due before this time: Unix seconds/ms or ISO 8601.")] = None,
    limit: Annotated[int, typer.Option(parser=integer, help="At most N, newest first.")] = 50,
    after: Annotated[
        str | None, typer.Option(help="The runs past this run id (the last one shown): the next page.")
    ] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run history, newest first (by due time)."""
    with client(store, app_) as dt:
        items = dt.job.runs(  # an empty filter is none, as over HTTP
            phase=phase or None,
            job_id=job_id or None,
            job_tag=job or None,
            product_tag=product_tag or None,
            env=env or None,
            since=since or None,
            until=until or None,
            limit=limit,
            after=after or None,
        )
        emit(items, as_json, lambda: render.runs_table(items, limit=limit))


@run_app.command("show")
def run_show(run_id: str, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """One run with its attempts."""
    with client(store, app_) as dt:
        r = dt.job.run(run_id)
        emit(r, as_json, lambda: render.run_detail(r))


@run_app.command("retry")
def run_retry(run_id: str, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """Give a failed (or cancelled) run one more attempt now (a running worker picks it up)."""
    with client(store, app_) as dt:
        r = dt.job.retry(run_id)
        emit(r, as_json, lambda: render.run_detail(r))


if TYPE_CHECKING:
    app: _Cli
else:

    def __getattr__(name: str) -> Any:
        """``app``: the whole command, every part imported (what ``CliRunner``, the docs and ``typer <module>``
        read). ``cli``, which the ``ductape`` script calls, holds this module's own commands until it is called
        or completed."""
        if name == "app":
            return cli.complete()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), "app"})  # typer's own CLI looks for ``app`` here first (else it took ``cli``)


if __name__ == "__main__":  # pragma: no cover
    cli()
