"""``ductape demo`` (what ``make run`` starts): a few FUNCTION jobs on the embedded store, the engine running
in this process, and a live table of recent runs."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from ductape_jobs.cli import render
from ductape_jobs.cli.common import OwnStoreOpt, client, decimal_between, flag, out, store_label
from ductape_jobs.cli.serve import HostOpt, PortOpt, need_api, run_server
from ductape_jobs.client import Ductape
from ductape_jobs.executors.base import RunContext
from ductape_jobs.models import RunPhase, ScheduleStatus

if TYPE_CHECKING:
    from rich.console import RenderableType

DEMO_TZ = "America/New_York"


def _tick(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    return {"tick": ctx.scheduled_at.isoformat()}


def _cron(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    return {"local": ctx.scheduled_at.astimezone(ZoneInfo(DEMO_TZ)).isoformat()}


def _flaky(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    if ctx.retry_count == 0:
        raise RuntimeError("flaky: the first attempt always fails; the retry succeeds")
    return {"attempt": ctx.attempt, "retries_used": ctx.retry_count}


async def _once(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    await asyncio.sleep(0.1)
    return {"hello": input.get("name", "world")}


# tag -> (function, job name, the schedule request's own fields)
DEMO: dict[str, tuple[Any, str, dict[str, Any]]] = {
    "demo.tick": (_tick, "Tick every 2 seconds", {"repeat": {"every": 2000}}),
    "demo.cron": (_cron, f"Cron every 5 seconds ({DEMO_TZ})", {"repeat": {"cron": "*/5 * * * * *", "tz": DEMO_TZ}}),
    "demo.flaky": (_flaky, "Fails once, then succeeds on retry", {"repeat": {"every": 10_000}, "retries": 2}),
    "demo.once": (_once, "One-off 3 seconds after start", {"input": {"name": "ductape"}, "start_in": 3}),
}


_ENDED = (RunPhase.COMPLETED, RunPhase.FAILED, RunPhase.CANCELLED)


def setup(dt: Ductape) -> list[str]:
    """Register the demo functions and jobs, cancel schedules left by an earlier demo, schedule afresh.
    Returns the new schedules' ids."""
    ids = []
    for tag, (fn, name, extra) in DEMO.items():
        dt.function(tag)(fn)
        definition = {"name": name, "event_type": "FUNCTION", "event_tag": tag}
        try:
            dt.job.fetch(tag)
            dt.job.update(tag, definition)
        except LookupError:
            dt.job.create({"tag": tag, **definition})
        for state in (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED):
            for old in dt.job.list(status=state, job_tag=tag, limit=10_000):
                dt.job.cancel(old.id, "demo restarted")
        request: dict[str, Any] = {"event": tag, "env": "dev", "product_tag": "demo", **extra}
        if "start_in" in request:
            request["start_at"] = dt.clock.now() + timedelta(seconds=request.pop("start_in"))
        ids.append(dt.job.schedule(request).job_id)
    return ids


def dashboard(dt: Ductape, footer: str) -> RenderableType:
    recent = dt.job.runs(limit=15)
    counts = dt.store.count_runs()
    summary = " · ".join(f"{p.value} {counts.get(p, 0)}" for p in RunPhase if counts.get(p))
    table = render.live_runs_table(recent, title=f"Recent runs on {store_label(dt)}")
    table.caption = f"{summary or 'no runs yet'}  ({footer})"
    return table


async def _run(dt: Ductape, seconds: float | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    footer = f"stops after {seconds:g}s" if seconds else "Ctrl-C to stop"
    engine = asyncio.create_task(dt.run_worker(stop), name="ductape-demo-worker")
    deadline = loop.time() + seconds if seconds else None
    console = out()
    from rich.live import Live

    try:
        with Live(await asyncio.to_thread(dashboard, dt, footer), console=console, auto_refresh=False) as live:
            while not stop.is_set() and not engine.done():
                timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - loop.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout)
                if deadline is not None and loop.time() >= deadline:
                    stop.set()
                if not stop.is_set():
                    live.update(await asyncio.to_thread(dashboard, dt, footer), refresh=True)
            stop.set()
            await engine
            live.update(await asyncio.to_thread(dashboard, dt, "stopped"), refresh=True)
        if not console.is_terminal:
            console.line()
    finally:
        stop.set()
        if not engine.done():
            await engine
        for sig in installed:
            loop.remove_signal_handler(sig)


def demo(
    store: OwnStoreOpt = None,
    seconds: Annotated[
        float | None,
        typer.Option(parser=decimal_between(0.1), help="Stop after N seconds (default: run until Ctrl-C)."),
    ] = None,
    serve: Annotated[
        bool, flag("--serve", help="Then run `ductape serve` (engine, API, dashboard) instead of the table.")
    ] = False,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
) -> None:
    """Run a small demo: FUNCTION jobs every 2 s, on a cron with seconds, a flaky one with retries, a one-off;
    the engine runs in this process and a live table shows the runs (or, with --serve, the dashboard does)."""
    if serve:
        need_api()  # before the demo writes anything
    with client(store, None, creates=True) as dt:
        ids = setup(dt)
        out().print(f"Scheduled {len(ids)} demo jobs on {store_label(dt)}: {', '.join(ids)}", markup=False)
        try:
            if serve:
                _serve(dt, host, port)
                return
            asyncio.run(_run(dt, seconds))
        finally:  # a worker without the demo's functions, started later on this store, would fail their runs
            for job_id in ids:  # but a one-off whose run ended: completed, and left so
                if dt.job.get(job_id).status is not ScheduleStatus.COMPLETED or any(
                    run.phase not in _ENDED for run in dt.job.runs(job_id=job_id)
                ):
                    dt.job.cancel(job_id, "demo stopped")
        counts = dt.store.count_runs()
        out().print(
            "Stopped; its schedules cancelled. Runs so far: "
            + (", ".join(f"{p.value} {n}" for p, n in counts.items() if n) or "none"),
            markup=False,
        )


def _serve(dt: Ductape, host: str, port: int) -> None:
    """The demo under ``ductape serve``, with a fresh API key for the newcomer."""
    from ductape_jobs import logs

    key = demo_key(dt)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    out().print(
        f"\nDashboard: http://{shown}:{port}/   API docs: http://{shown}:{port}/docs\n"
        f"API key (log in with it; shown once): {key}\n"
        f"  curl -H 'Authorization: Bearer {key}' http://{shown}:{port}/api/v1/runs\n",
        markup=False,
        soft_wrap=True,
    )
    logs.setup()
    run_server(dt, host, port)


def demo_key(dt: Ductape) -> str:
    """A new admin key named ``demo``; the demo keys an earlier start made are revoked, as its schedules are
    cancelled (each start prints a key of its own, and the keys printed before stop working)."""
    from ductape_jobs.apikeys import ApiKeys

    keys = ApiKeys(dt.store, dt.clock)
    for earlier in keys.list():
        if earlier.name == "demo" and earlier.revoked_at is None:
            keys.revoke(earlier.id)
    return keys.create("demo").key
