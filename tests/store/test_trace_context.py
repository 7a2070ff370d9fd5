"""The trace context captured at ``schedule()`` is stored with the schedule and its runs (migration 0009), on
SQLite and PostgreSQL, so a worker in another process, started later, continues that trace."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry import trace
from storekit import Backend

from ductape_jobs import Ductape
from support import span_exporter

pytestmark = pytest.mark.usefixtures("tracing_off_afterwards")  # tracing is per process: undone after

WORKER = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ductape_jobs import Ductape

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
d = Ductape(sys.argv[1], tracing=True)
d.function("ok")(lambda input, ctx: {"ok": True})
summary = d.drain()
d.close()
print(json.dumps({
    "completed": summary.completed,
    "spans": [
        {
            "name": s.name,
            "trace_id": s.context.trace_id,
            "parent": s.parent.span_id if s.parent else None,
            "links": [[l.context.trace_id, l.context.span_id] for l in s.links],
            "job_id": s.attributes.get("ductape.job_id"),
        }
        for s in exporter.get_finished_spans()
    ],
}))
"""


def _worker_in_another_process(url: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WORKER), url], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_worker_in_another_process_continues_or_links_the_stored_trace(backend: Backend) -> None:
    span_exporter()
    url = backend.url
    d = Ductape(url, tracing=True)
    try:
        d.job.create({"name": "fn", "tag": "fn", "event_type": "FUNCTION", "event_tag": "ok"})
        with trace.get_tracer("tests").start_as_current_span("request") as outer:
            one_off = d.job.schedule({"env": "dev", "product_tag": "shop", "event": "fn"}).job_id
            recurring = d.job.schedule(
                {"env": "dev", "product_tag": "shop", "event": "fn", "repeat": {"every": 3_600_000}}
            ).job_id
        stored = {job_id: d.job.get(job_id).trace_context for job_id in (one_off, recurring)}
        assert all(stored.values())
        assert [r.trace_context for r in d.job.runs(job_id=one_off)] == [stored[one_off]]
    finally:
        d.close()  # this process schedules and leaves: another one runs

    result = _worker_in_another_process(url)
    assert result["completed"] == 2
    attempts = {s["job_id"]: s for s in result["spans"] if s["name"] == "ductape.run fn"}
    ctx = outer.get_span_context()
    assert attempts[one_off]["trace_id"] == ctx.trace_id and attempts[one_off]["parent"] == ctx.span_id
    assert attempts[recurring]["trace_id"] != ctx.trace_id and attempts[recurring]["parent"] is None
    assert attempts[recurring]["links"] == [[ctx.trace_id, ctx.span_id]]


def test_without_tracing_nothing_is_stored(backend: Backend) -> None:
    d = Ductape(backend.url, tracing=False)
    try:
        d.job.create({"name": "fn", "tag": "fn", "event_type": "FUNCTION", "event_tag": "ok"})
        with trace.get_tracer("tests").start_as_current_span("request"):
            job_id = d.job.schedule({"env": "dev", "product_tag": "shop", "event": "fn"}).job_id
        assert d.job.get(job_id).trace_context is None
        assert [r.trace_context for r in d.job.runs(job_id=job_id)] == [None]
    finally:
        d.close()
