"""Operating the service: ``/metrics`` (Prometheus text format), ``/healthz`` (the process answers) and
``/readyz`` (the store answers).

Metrics (one registry per app; counters and histograms are fed by the workers of this process):

- ``ductape_runs_total{status, event_type}``: ``started``, ``completed``, ``retried`` (an attempt failed and
  another is scheduled), ``failed`` (for good);
- ``ductape_run_duration_seconds{event_type}`` (histogram): how long attempts ran;
- ``ductape_run_lateness_seconds`` (histogram): start minus the time the run became due;
- ``ductape_leases_rescued_total``: runs whose worker stopped heartbeating, put back in the queue;
- ``ductape_queue_depth`` (gauge, read from the store at each scrape): runs due now and not claimed yet;
- the process's own (``process_*``, ``python_gc_*``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from fastapi import APIRouter, Request, Response
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
from ductape_jobs.models import Run
from ductape_jobs.store.base import Outcome

router = APIRouter(tags=["operations"])

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The Prometheus metrics of one app, fed by the workers of its process (a ``RunObserver``)."""

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
        ProcessCollector(registry=r)
        GCCollector(registry=r)

    def runs_started(self, runs: Sequence[Run], now: datetime) -> None:
        for run in runs:
            self.runs.labels("started", run.event_type.value).inc()
            due = run.available_at or run.scheduled_at
            self.lateness.observe(max(0.0, (now - due).total_seconds()))

    def runs_finished(self, finished: Sequence[tuple[Run, Outcome]]) -> None:
        for run, outcome in finished:
            status = "completed" if outcome.ok else ("retried" if outcome.retry_at is not None else "failed")
            self.runs.labels(status, run.event_type.value).inc()
            self.duration.labels(run.event_type.value).observe(outcome.duration_ms / 1000)

    def runs_rescued(self, run_ids: Sequence[str]) -> None:
        self.rescued.inc(len(run_ids))


def metrics_of(dt: Ductape) -> Metrics:
    """The client's ``Metrics`` observer (added on first use: its workers feed it)."""
    for observer in dt.observers:
        if isinstance(observer, Metrics):
            return observer
    metrics = Metrics()
    dt.observers.append(metrics)
    return metrics


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if request.app.state.settings.metrics_auth:
        await authenticate(request)
    dt = client(request)
    found: Metrics = request.app.state.metrics
    found.queue_depth.set(await call(dt.store.queue_depth, dt.clock.now()))
    return Response(generate_latest(found.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    dt = client(request)
    try:
        await asyncio.wait_for(call(dt.store.next_wakeup), timeout=5)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "detail": f"the store does not answer: {exc}"}, 503)
    return JSONResponse({"status": "ready"})
