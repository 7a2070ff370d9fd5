"""Operating the service: ``/metrics`` (Prometheus text format), ``/healthz`` (the process answers) and
``/readyz`` (the store answers).

Metrics (one registry per app):

- ``ductape_runs_total{status, event_type}``: ``started``, ``completed``, ``retried`` (an attempt failed and
  another is scheduled), ``failed`` (for good: its retries spent, or lost too often, counted by the worker whose
  rescue failed it);
- ``ductape_run_duration_seconds{event_type}`` (histogram): how long attempts ran;
- ``ductape_run_lateness_seconds`` (histogram): start minus the time the run became due;
- ``ductape_leases_rescued_total``: runs whose worker stopped heartbeating, put back in the queue (not one lost too
  often: that one failed);
- ``ductape_queue_depth`` (gauge, read from the store at each scrape): runs due now and not claimed yet;
- ``ductape_webhook_deliveries_pending`` (gauge, read at each scrape): webhook deliveries still to send, every
  webhook's; ``ductape_webhook_oldest_pending_seconds``: how long ago the oldest of them was made (0: none). A webhook
  sends its deliveries one after another, so a receiver slower than its events grows both (a soak probe);
- ``ductape_store_up`` (gauge): 1 when the scrape's read of the store answered within ``STORE_WITHIN``, else 0
  (then ``ductape_queue_depth`` and the two above are NaN, and every other series is served as it stands);
- the process's own (``process_*``, ``python_gc_*``).

Where the runs' series come from (``create_app(metrics_from=...)``, ``ductape serve --metrics-from``):

- ``process`` (the default): this process's workers feed them as they claim and finish runs. Each engine process
  counts its own; a process without a worker (``serve --no-worker``) counts none.
- ``store``: the store's outbox feeds them, whichever process ran the runs (``ductape_jobs.lifecycle``): each
  scrape reads the lifecycle events written since the last one, through a live stream of the outbox whose lease
  (``metrics_lease``, 5 min) each scrape renews. While it is live the store writes every run's events (what the
  dashboard's open stream costs); once scrapes stop for a lease, it lapses and the outbox's triggers go. A scrape
  after a lapse goes on without loss when no event it missed was pruned or left unwritten, and otherwise counts
  the gap in ``ductape_metrics_gaps_total``. Scrape one such process: each counts every run.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from ductape_jobs.api.auth import authenticate
from ductape_jobs.api.common import call, client
from ductape_jobs.client import Ductape
from ductape_jobs.engine.worker import exception_read
from ductape_jobs.errors import ValidationError
from ductape_jobs.lifecycle import (
    LifecycleEvent,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunLost,
    RunRetryScheduled,
    RunStarted,
    StreamPosition,
)
from ductape_jobs.logs import logger
from ductape_jobs.models import Run
from ductape_jobs.store.base import Outcome, Rescued

router = APIRouter(tags=["operations"])
log = logger("ductape_jobs.api")

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

MetricsSource = Literal["process", "store"]
METRICS_SOURCES: tuple[MetricsSource, ...] = ("process", "store")
_ENDED: dict[type[LifecycleEvent], str] = {
    RunCompleted: "completed",
    RunRetryScheduled: "retried",
    RunFailed: "failed",
    RunCancelled: "cancelled",  # only a run that ended so while it ran writes it (its schedule cancelled meanwhile)
}


class Metrics:
    """The Prometheus metrics of one app, fed by the workers of its process (a ``RunObserver``) or by the store's
    lifecycle events (``events_seen``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("ductape_runs", "Runs by status and event type", ["status", "event_type"], registry=r)
        self.duration = Histogram(
            "ductape_run_duration_seconds",
            "How long run attempts took",
            ["event_type"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.lateness = Histogram(
            "ductape_run_lateness_seconds",
            "How late runs started after they became due",
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )
        self.rescued = Counter("ductape_leases_rescued", "Runs rescued after their worker's lease expired", registry=r)
        self.queue_depth = Gauge("ductape_queue_depth", "Runs due now that no worker has claimed yet", registry=r)
        self.deliveries_pending = Gauge(
            "ductape_webhook_deliveries_pending", "Webhook deliveries still to send (every webhook's)", registry=r
        )
        self.oldest_pending = Gauge(
            "ductape_webhook_oldest_pending_seconds",
            "How long ago the oldest webhook delivery still to send was made (0: none)",
            registry=r,
        )
        self.store_up = Gauge(
            "ductape_store_up",
            f"1 when the scrape's read of the store answered within {STORE_WITHIN:g} s, else 0",
            registry=r,
        )
        self.reading: asyncio.Future[StoreReading] | None = None  # the last scrape's read (``scrape_store``)
        ProcessCollector(registry=r)
        GCCollector(registry=r)

    def runs_started(self, runs: Sequence[Run], now: datetime) -> None:
        for run in runs:
            self.runs.labels("started", run.event_type.value).inc()
            due = run.available_at or run.scheduled_at
            self.lateness.observe(max(0.0, (now - due).total_seconds()))

    def runs_finished(self, finished: Sequence[tuple[Run, Outcome]]) -> None:
        for run, outcome in finished:
            if outcome.ok:
                status = "completed"
            elif outcome.retry_at is not None:
                status = "retried"
            else:  # "cancelled": the worker's word for a retry its schedule's cancel took away
                status = "cancelled" if outcome.outcome == "cancelled" else "failed"
            self.runs.labels(status, run.event_type.value).inc()
            self.duration.labels(run.event_type.value).observe(outcome.duration_ms / 1000)

    def runs_rescued(self, rescued: Sequence[Rescued]) -> None:
        for r in rescued:  # one lost too often failed for good, or ended by its schedule's cancel: counted so, as
            if r.cancelled:  # events_seen counts its job.failed or run.cancelled
                self.runs.labels("cancelled", r.event_type.value).inc()
            elif r.error is None:
                self.rescued.inc()
            else:
                self.runs.labels("failed", r.event_type.value).inc()

    def events_seen(self, events: Sequence[LifecycleEvent]) -> None:
        """Count the runs' lifecycle events as the workers' calls above count what they do: a start with its
        lateness, an attempt's end with its duration (when it has one: a run that failed for good at a rescue has
        none), a rescue."""
        for event in events:
            values = event.values
            kind = str(values.get("event_type") or "")
            if isinstance(event, RunStarted):
                self.runs.labels("started", kind).inc()
                due, started = values.get("available_at") or values.get("scheduled_at"), values.get("started_at")
                if isinstance(due, int | float) and isinstance(started, int | float):
                    self.lateness.observe(max(0.0, (started - due) / 1000))
            elif isinstance(event, RunLost):
                self.rescued.inc()
            elif (status := _ENDED.get(type(event))) is not None:
                self.runs.labels(status, kind).inc()
                took = values.get("duration_ms")
                if isinstance(took, int | float):
                    self.duration.labels(kind).observe(took / 1000)


class StoreFeed:
    """Feeds ``metrics`` from the store's outbox (``metrics_from="store"``): at each scrape, the events written
    since the last one, read through a live stream of its own (``metrics:<random>``) whose lease each scrape
    renews (see the module's docstring)."""

    PAGE = 500
    MOST = 400  # pages per scrape (200,000 events): a backlog beyond it is read by the next scrapes

    def __init__(self, dt: Ductape, metrics: Metrics, lease: timedelta) -> None:
        self.dt = dt
        self.metrics = metrics
        self.lease = lease
        self.name = f"metrics:{uuid.uuid4().hex[:16]}"
        self.position: StreamPosition | None = None
        self.gaps = Counter(
            "ductape_metrics_gaps",
            "Times the runs' series went on past lifecycle events they could not read (no scrape for a lease)",
            registry=metrics.registry,
        )

    def catch_up(self) -> None:
        """Renew the stream (open it again if its lease lapsed), count the events after its position, and keep
        the new position."""
        store, now = self.dt.store, self.dt.clock.now()
        until = now + self.lease
        if self.position is None:
            self.position = store.open_stream(self.name, None, until, now).position
        elif not store.renew_stream(self.name, self.position, until, now):
            start = store.open_stream(self.name, self.position, until, now)
            if start.gap:
                self.gaps.inc()
            self.position = start.position
        for _ in range(self.MOST):
            events = store.stream_events(self.position, self.PAGE)
            if events:
                self.metrics.events_seen(events)
                self.position = self.position.past(events[-1])
            if len(events) < self.PAGE:
                break
        store.renew_stream(self.name, self.position, until, now)


def metrics_of(dt: Ductape) -> Metrics:
    """The client's ``Metrics`` observer (added on first use: its workers feed it)."""
    for observer in dt.observers:
        if isinstance(observer, Metrics):
            return observer
    metrics = Metrics()
    dt.observers.append(metrics)
    return metrics


def metrics_for(dt: Ductape, source: str, lease: timedelta) -> tuple[Metrics, StoreFeed | None]:
    """The app's metrics and, for ``source="store"``, their feed from the outbox; ``ValidationError`` on
    ``metrics_from`` for another source."""
    if source == "process":
        return metrics_of(dt), None
    if source == "store":
        metrics = Metrics()  # not an observer: the store counts what every worker did, this one's included
        return metrics, StoreFeed(dt, metrics, lease)
    raise ValidationError("metrics_from", f"must be one of {', '.join(METRICS_SOURCES)}, not {source!r}")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if request.app.state.settings.metrics_auth:
        me = await authenticate(request)
        if me.limited:  # its series count every product's runs: a key limited to one sees only that product's
            raise HTTPException(403, "this API key is limited to a product or env; /metrics counts every product's")
    dt = client(request)
    found: Metrics = request.app.state.metrics
    feed: StoreFeed | None = request.app.state.metrics_feed
    read = await scrape_store(found, functools.partial(_from_store, dt, feed))
    found.store_up.set(0 if read is None else 1)
    nan = float("nan")
    found.queue_depth.set(nan if read is None else read.queue_depth)
    found.deliveries_pending.set(nan if read is None else read.pending)
    found.oldest_pending.set(nan if read is None else read.oldest_pending)
    return Response(generate_latest(found.registry), media_type=CONTENT_TYPE_LATEST)


#: How long a scrape waits for the store (the queue's depth; with ``store`` metrics, the outbox's events first): well
#: within Prometheus's default scrape timeout (10 s), so that a store away costs a scrape its store's series, not
#: every series. It waited for the pool's own timeout (about 40 s on PostgreSQL), then answered 503 without any.
STORE_WITHIN = 2.0


class StoreReading(NamedTuple):
    """What a scrape read from the store: the queue's depth, the webhook deliveries still to send, and the age in
    seconds of the oldest of them (0: none)."""

    queue_depth: int
    pending: int
    oldest_pending: float


def _from_store(dt: Ductape, feed: StoreFeed | None) -> StoreReading:
    """What a scrape reads from the store: the outbox's events since the last scrape (``store`` metrics), then the
    depth of the queue and the webhooks' backlog."""
    if feed is not None:
        feed.catch_up()
    now = dt.clock.now()
    pending, oldest = dt.store.delivery_backlog()
    age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
    return StoreReading(dt.store.queue_depth(now), pending, age)


async def scrape_store(found: Metrics, read: Callable[[], StoreReading]) -> StoreReading | None:
    """``read()`` in the thread pool, waited for ``STORE_WITHIN`` at most; ``None`` when it failed or did not answer
    in time. A read that did not answer goes on in its thread, and no scrape reads the store again until it has
    ended: scrapes never pile threads up behind a store away, and the outbox is read by one at a time."""
    if found.reading is not None and not found.reading.done():
        log.warning("/metrics: the store has not answered the last scrape yet; its gauges read NaN")
        return None
    reading = asyncio.ensure_future(call(read))
    reading.add_done_callback(exception_read)  # a scrape that stopped waiting reads none
    found.reading = reading
    try:
        return await asyncio.wait_for(asyncio.shield(reading), STORE_WITHIN)
    except TimeoutError:
        log.warning("/metrics: the store did not answer within %g s; its gauges read NaN", STORE_WITHIN)
    except Exception as exc:
        log.warning("/metrics: the store does not answer (%s); its gauges read NaN", exc)
    return None


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    dt = client(request)
    try:
        await asyncio.wait_for(call(dt.store.next_wakeup), timeout=READY_WITHIN)
    except TimeoutError:
        detail = f"the store does not answer within {READY_WITHIN:g} s"
        return JSONResponse({"status": "unavailable", "detail": detail}, 503)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "detail": f"the store does not answer: {exc}"}, 503)
    return JSONResponse({"status": "ready"})


#: How long ``/readyz`` waits for the store: within a kubelet probe's default timeout (1 s), so that the probe reads
#: the 503 (and its reason) rather than a timeout of its own.
READY_WITHIN = 0.8
