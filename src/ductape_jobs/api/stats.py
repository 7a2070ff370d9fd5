"""``/api/v1/stats``: the overview (the last hour) and the forecast (the coming hours), for the dashboard.
A key limited to a product sees that product's figures only."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Request

from ductape_jobs.answers import JobStatsOut
from ductape_jobs.api.auth import READ, Me
from ductape_jobs.api.common import call, client, responses
from ductape_jobs.api.forecast import forecast, over_limits
from ductape_jobs.api.schemas import Forecast, ForecastJob, ForecastLimit, Lateness, MinuteOut, NextRun, Overview
from ductape_jobs.clock import Clock
from ductape_jobs.errors import ValidationError
from ductape_jobs.models import MinuteCount

router = APIRouter(prefix="/stats", tags=["stats"], dependencies=[READ])

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
LATENESS_SAMPLE = 10_000  # the latest runs the percentiles are computed from
FORECAST_SCHEDULES = 5_000  # the active schedules a forecast considers (soonest due first)


def percentile(sorted_ms: list[int], p: float) -> int | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_ms:
        return None
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


def minute_series(found: list[MinuteCount], first: datetime, count: int) -> list[MinuteOut]:
    """Every minute from ``first``, those without runs at zero."""
    by_minute = {m.minute: m for m in found}
    out = []
    for i in range(count):
        at = first + i * MINUTE
        m = by_minute.get(at)
        out.append(MinuteOut(minute=at, completed=m.completed if m else 0, failed=m.failed if m else 0))
    return out


@router.get("/overview", responses=responses())
async def overview(request: Request, me: Me) -> Overview:
    """Runs per minute (the last 60 minutes), failures in the last hour, the queue depth, lateness percentiles
    of the runs started in the last hour, and the next 10 runs due."""
    dt = client(request)
    store, scope = dt.store, me.scope()
    now = dt.clock.now()
    first = now.replace(second=0, microsecond=0) - 59 * MINUTE
    per_minute = minute_series(await call(store.runs_per_minute, first, now + MINUTE, **scope), first, 60)
    late = sorted(
        int(d.total_seconds() * 1000) for d in await call(store.lateness_sample, now - HOUR, LATENESS_SAMPLE, **scope)
    )
    due = await call(store.next_due_schedules, 10, **scope)
    return Overview(
        runs_per_minute=per_minute,
        failures_last_hour=sum(m.failed for m in per_minute),
        queue_depth=await call(store.queue_depth, now, **scope),
        lateness_ms=Lateness(
            p50=percentile(late, 50), p95=percentile(late, 95), p99=percentile(late, 99), sample=len(late)
        ),
        next_runs=[NextRun(job_id=s.id, job_tag=s.job_tag, next_run_at=s.next_run_at) for s in due if s.next_run_at],
    )


class Forecasts:
    """What the forecast route made lately (``app.state.forecasts``): one forecast is made at a time, by a task of its
    own (a request that goes away leaves it to finish, still holding its turn); requests for the same scope and hours
    share one; one made less than ``FORECAST_KEPT`` ago is answered again; past ``FORECASTS_WAITING`` forecasts waiting
    their turn a request for another is answered 429. A forecast takes up to a second or two of the server's CPU,
    which any read key could ask for many times at once (a probe: 40 s a request; a review: 168 of them queued)."""

    def __init__(self) -> None:
        self._turn = asyncio.Lock()
        self._made: dict[tuple[object, ...], tuple[datetime, Forecast]] = {}
        self._making: dict[tuple[object, ...], asyncio.Task[Forecast]] = {}

    def kept(self, key: tuple[object, ...], now: datetime) -> Forecast | None:
        found = self._made.get(key)
        return found[1] if found is not None and timedelta(0) <= now - found[0] < FORECAST_KEPT else None

    def making(
        self, key: tuple[object, ...], make: Callable[[datetime], Awaitable[Forecast]], clock: Clock
    ) -> asyncio.Task[Forecast]:
        """The task that makes (or made) the forecast of ``key``, joined if one is under way."""
        task = self._making.get(key)
        if task is None:
            if len(self._making) >= FORECASTS_WAITING:
                raise HTTPException(429, f"{FORECASTS_WAITING} forecasts are being made: try again in a few seconds")
            task = self._making[key] = asyncio.create_task(self._make(key, make, clock))
        return task

    async def _make(
        self, key: tuple[object, ...], make: Callable[[datetime], Awaitable[Forecast]], clock: Clock
    ) -> Forecast:
        try:
            async with self._turn:
                now = clock.now()
                made = self.kept(key, now)
                if made is None:
                    made = await make(now)
                    self._made = {k: v for k, v in self._made.items() if now - v[0] < FORECAST_KEPT}
                    self._made[key] = (now, made)
                return made
        finally:
            del self._making[key]


FORECAST_KEPT = timedelta(seconds=30)
FORECASTS_WAITING = 4


@router.get("/forecast", responses=responses(429))
async def forecast_runs(request: Request, me: Me, hours: int = 24) -> Forecast:
    """How many runs each minute of the next ``hours`` (1 to 168) will start, per job, from the active
    schedules' cadences: ``counts`` maps a minute's index from ``start`` to its runs (minutes without any are
    left out). At most 5,000 schedules (the soonest due) are considered; ``truncated`` says when that, or the
    work bound on very frequent cadences, cut the count short. A forecast is made at most every 30 seconds for a
    scope and a number of hours, one at a time; until then the last one is answered again; 429 while 4 others wait."""
    if not 1 <= hours <= 168:
        raise ValidationError("hours", "must be between 1 and 168")
    forecasts: Forecasts = request.app.state.forecasts
    clock = client(request).clock
    key = (tuple(sorted(me.scope().items())), hours)
    made = forecasts.kept(key, clock.now())
    if made is not None:
        return made
    task = forecasts.making(key, lambda now: _forecast(request, me, hours, now), clock)
    return await asyncio.shield(task)


async def _forecast(request: Request, me: Me, hours: int, now: datetime) -> Forecast:
    dt = client(request)
    end = now.replace(second=0, microsecond=0) + timedelta(hours=hours)
    found = await call(dt.store.next_due_schedules, FORECAST_SCHEDULES + 1, before=end, **me.scope())
    considered = found[:FORECAST_SCHEDULES]
    result = await call(forecast, considered, now, hours * 60)
    limits = [use.limit for use in await call(dt.resources.use, me.scope()["product_tag"])]
    keys_of = {(j.product_tag or "", j.tag): j.limit_keys for j in await call(dt.store.list_jobs)} if limits else {}
    jobs = [
        ForecastJob(job_tag=tag, counts=dict(sorted(counts.items())), total=sum(counts.values()))
        for tag, counts in sorted(result.counts.items())
        if counts
    ]
    return Forecast(
        start=result.start,
        minutes=result.minutes,
        jobs=jobs,
        schedules=len(considered),
        truncated=result.truncated or len(found) > FORECAST_SCHEDULES,
        over_limits=[
            ForecastLimit(
                resource=o.limit.name,
                product_tag=o.limit.product_tag,
                minute=o.minute,
                starts=o.starts,
                allowed=o.allowed,
            )
            for o in over_limits(result, keys_of, limits)
        ],
    )


@router.get("/jobs", responses=responses(403))
async def job_stats(
    request: Request,
    me: Me,
    product_tag: str | None = None,
    env: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> JobStatsOut:
    """How the runs due in ``[since, until)`` went (``job.stats``; bounds optional, Unix seconds or ms, or ISO
    8601): runs per phase, the success rate (completed / finished), how many completed at their first attempt or
    after retries, and the average retry count of finished runs. ``product_tag``/``env`` narrow them; a key
    limited to a product (env) sees only its own."""
    scope = me.narrowed(product_tag, env)
    return JobStatsOut.of(await call(client(request).job.stats, since=since or None, until=until or None, **scope))
