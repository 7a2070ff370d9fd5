"""OpenTelemetry tracing (the otel extra) through the engine, with the SDK's in-memory exporter: an attempt's span
continues the trace current at ``schedule()`` (a one-off's child, a recurring schedule's link), carries the run's
attributes, retries are sibling spans, the instrumented httpx and sqlite3 calls of an event are the attempt's
children, a feature run is the parent of its events; and off (the default) nothing is traced, stored or imported.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from ductape_jobs import Ductape, FakeClock, RunPhase
from ductape_jobs.extras import MissingExtraError
from ductape_jobs.products import Products
from support import Recorder, require_service, span_exporter

pytestmark = pytest.mark.usefixtures("tracing_off_afterwards")  # tracing is per process: undone after

OUTER = trace.get_tracer("tests")


@pytest.fixture
def spans() -> Any:
    return span_exporter()


PG = "postgresql://postgres@127.0.0.1:5432/test"
TOPIC = f"tracing.{uuid.uuid4().hex[:8]}"


def product(http: str, sqlite_url: str) -> dict[str, Any]:
    return {
        "tag": "shop",
        "envs": {"dev": {}},
        "apps": {
            "orders": {
                "actions": {"get": {"method": "GET", "path": "/orders/:id"}},
                "envs": {"dev": {"base_url": http}},
            },
            "maps": {
                "actions": {"find": {"method": "GET", "path": "/find"}},
                "envs": {"dev": {"base_url": http, "auth": {"kind": "query", "name": "appid", "value": "TOPSECRET1"}}},
            },
        },
        "databases": {
            "lite": {"envs": {"dev": sqlite_url}, "actions": {"count": {"sql": "SELECT 1 AS one"}}},
            "pg": {"envs": {"dev": PG}, "actions": {"count": {"sql": "SELECT 1 AS one"}}},
        },
        "brokers": {
            "redis": {"envs": {"dev": "redis://127.0.0.1:6379/0"}, "topics": {"created": TOPIC}},
            "rabbit": {"envs": {"dev": "amqp://guest:guest@127.0.0.1:5672/"}, "topics": {"created": TOPIC}},
        },
        "features": {
            "digest": {
                "input": {},
                "sequence": [
                    {
                        "sequence_tag": "collect",
                        "parents": [],
                        "events": [
                            {"type": "FUNCTION", "event": "count", "input": {}, "retries": 0, "allow_fail": False},
                            {"type": "FUNCTION", "event": "sum", "input": {}, "retries": 0, "allow_fail": False},
                        ],
                    }
                ],
            },
            "later": {
                "input": {},
                "sequence": [
                    {
                        "sequence_tag": "plan",
                        "parents": [],
                        "events": [{"type": "JOB", "event": "fn", "input": {}, "retries": 0, "allow_fail": False}],
                    }
                ],
            },
        },
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def dt(tmp_path: Path, clock: FakeClock, http: Recorder, spans: Any) -> Iterator[Ductape]:
    spec = product(http.url, f"sqlite:///{tmp_path / 'app.db'}")
    d = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock, products=Products([spec]), tracing=True)  # type: ignore[list-item]
    d.function("ok")(lambda input, ctx: {"ok": True})
    d.function("count")(lambda input, ctx: {"n": 1})
    d.function("sum")(lambda input, ctx: {"n": 2})
    for tag, event_type, event in (
        ("fn", "FUNCTION", "ok"),
        ("get-order", "ACTION", "orders:get"),
        ("find-place", "ACTION", "maps:find"),
        ("count-rows", "DATABASE_ACTION", "lite:count"),
        ("count-pg", "DATABASE_ACTION", "pg:count"),
        ("announce-redis", "PUBLISH", "redis:created"),
        ("announce-rabbit", "PUBLISH", "rabbit:created"),
        ("digest", "FEATURE", "digest"),
    ):
        d.job.create({"name": tag, "tag": tag, "event_type": event_type, "event_tag": event, "product_tag": "shop"})
    yield d
    d.close()


def schedule(d: Ductape, event: str, **extra: Any) -> str:
    return d.job.schedule({"env": "dev", "product_tag": "shop", "event": event, **extra}).job_id


def named(spans: Any, prefix: str) -> list[Any]:
    return sorted((s for s in spans.get_finished_spans() if s.name.startswith(prefix)), key=lambda s: s.start_time)


# ------------------------------------------------------------------------------------------ parent and links


def test_a_one_off_attempt_is_a_child_of_the_span_current_at_schedule(dt: Ductape, spans: Any) -> None:
    with OUTER.start_as_current_span("request") as outer:
        job_id = schedule(dt, "fn")
    assert dt.job.get(job_id).trace_context is not None
    assert dt.drain().completed == 1
    (attempt,) = named(spans, "ductape.run")
    assert attempt.name == "ductape.run fn"
    assert attempt.context.trace_id == outer.get_span_context().trace_id
    assert attempt.parent is not None and attempt.parent.span_id == outer.get_span_context().span_id
    assert attempt.links == ()
    (run,) = dt.job.runs(job_id=job_id)
    assert dict(attempt.attributes or {}) == {
        "ductape.job.tag": "fn",
        "ductape.product": "shop",
        "ductape.env": "dev",
        "ductape.event.type": "FUNCTION",
        "ductape.event.tag": "ok",
        "ductape.attempt": 1,
        "ductape.run.id": run.id,
        "ductape.job_id": job_id,
        "ductape.triggered_by": "schedule",
        "ductape.lateness_ms": 0,
        "ductape.outcome": "completed",
        "ductape.duration_ms": run.duration_ms,
    }


def test_lateness_is_how_long_after_its_due_time_the_attempt_started(dt: Ductape, spans: Any, clock: FakeClock) -> None:
    schedule(dt, "fn", start_at=clock.now() + timedelta(seconds=10))
    clock.advance(seconds=12.5)
    dt.drain()
    (attempt,) = named(spans, "ductape.run")
    assert attempt.attributes["ductape.lateness_ms"] == 2500
    assert attempt.parent is None  # nothing was current at schedule(): a trace of its own


def test_a_recurring_schedules_runs_each_start_a_trace_linked_to_it(dt: Ductape, spans: Any, clock: FakeClock) -> None:
    with OUTER.start_as_current_span("request") as outer:
        schedule(dt, "fn", repeat={"every": 60_000, "limit": 3})
    for _ in range(3):
        dt.drain()
        clock.advance(minutes=1)
    attempts = named(spans, "ductape.run")
    assert len(attempts) == 3
    assert len({a.context.trace_id for a in attempts}) == 3  # a trace per run, none of them the request's
    for a in attempts:
        assert a.parent is None and a.context.trace_id != outer.get_span_context().trace_id
        (link,) = a.links
        assert link.context.trace_id == outer.get_span_context().trace_id
        assert link.context.span_id == outer.get_span_context().span_id


def test_retries_are_sibling_spans_under_the_same_parent(dt: Ductape, spans: Any, clock: FakeClock) -> None:
    calls: list[int] = []

    def flaky(input: Any, ctx: Any) -> dict[str, int]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return {"calls": len(calls)}

    dt.function("flaky")(flaky)
    dt.job.create({"name": "flaky", "tag": "flaky", "event_type": "FUNCTION", "event_tag": "flaky"})
    with OUTER.start_as_current_span("request") as outer:
        job_id = dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "flaky", "retries": 2}).job_id
    dt.drain()
    clock.advance(minutes=10)
    dt.drain()
    (run,) = dt.job.runs(job_id=job_id)
    assert run.phase is RunPhase.COMPLETED
    first, second = named(spans, "ductape.run")
    assert [first.attributes["ductape.attempt"], second.attributes["ductape.attempt"]] == [1, 2]
    assert [first.attributes["ductape.outcome"], second.attributes["ductape.outcome"]] == [
        "retry_scheduled",
        "completed",
    ]
    assert first.status.status_code is trace.StatusCode.ERROR
    assert "first attempt fails" in (first.status.description or "")
    for a in (first, second):
        assert a.parent is not None and a.parent.span_id == outer.get_span_context().span_id


# ------------------------------------------------------------------------------- the instrumentations' children


def test_an_actions_http_call_is_a_child_of_the_attempt(dt: Ductape, spans: Any, http: Recorder) -> None:
    http.reply(200, {"id": "o-1"})
    with OUTER.start_as_current_span("request"):
        schedule(dt, "get-order", input={"params": {"id": "o-1"}})
    assert dt.drain().completed == 1
    (attempt,) = named(spans, "ductape.run")
    (call,) = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.CLIENT and "GET" in s.name]
    assert call.parent is not None and call.parent.span_id == attempt.context.span_id
    # the call carried the trace on: the server saw the attempt's trace id in its traceparent header
    assert f"{attempt.context.trace_id:032x}" in http.last.headers["traceparent"]


def test_a_sync_functions_own_http_call_is_a_child_of_the_attempt(dt: Ductape, spans: Any, http: Recorder) -> None:
    import httpx

    dt.function("fetch")(lambda input, ctx: httpx.get(http.url + "/ping").status_code)
    dt.job.create({"name": "fetch", "tag": "fetch", "event_type": "FUNCTION", "event_tag": "fetch"})
    schedule(dt, "fetch")
    assert dt.drain().completed == 1
    (attempt,) = named(spans, "ductape.run")
    (call,) = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert call.parent is not None and call.parent.span_id == attempt.context.span_id


def test_a_traced_http_calls_url_keeps_no_password_or_secret_query_value(
    dt: Ductape, spans: Any, http: Recorder
) -> None:
    import httpx

    host = http.url.removeprefix("http://")
    url = f"http://bob:hunter2-pw@{host}/ping?api_key=s3cr3t-key&page=2&AWSAccessKeyId=AKIAXX"
    dt.function("fetch")(lambda input, ctx: httpx.get(url).status_code)
    dt.job.create({"name": "fetch", "tag": "fetch", "event_type": "FUNCTION", "event_tag": "fetch"})
    schedule(dt, "fetch")
    assert dt.drain().completed == 1
    (call,) = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    recorded = " ".join(str(v) for v in (call.attributes or {}).values())
    assert "s3cr3t-key" not in recorded and "hunter2-pw" not in recorded
    assert "AKIAXX" not in recorded  # what the instrumentation masked stays masked
    assert "api_key=***" in recorded and "page=2" in recorded  # the URL is there, masked


def test_an_actions_query_auth_parameter_is_masked_in_its_span(dt: Ductape, spans: Any, http: Recorder) -> None:
    http.reply(200, {"found": 1})
    schedule(dt, "find-place")
    assert dt.drain().completed == 1
    assert "appid=TOPSECRET1" in http.last.target  # the server got it
    (call,) = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    recorded = " ".join(str(v) for v in (call.attributes or {}).values())
    assert "TOPSECRET1" not in recorded and "appid=***" in recorded


BOT_TOKEN, CHAT = "123456:AAHsecretBotTokenValue", "queryProductSecret99"  # the product's secrets


def secret_product(http: str) -> dict[str, Any]:
    """A product whose action's path and query read its secrets (Telegram's /bot<token>/), and whose feature binds
    one into a query that PostgreSQL refuses, quoting it."""
    return {
        "tag": "tg",
        "envs": {"dev": {"secrets": {"bot": BOT_TOKEN, "q": CHAT}}},
        "apps": {
            "tg": {
                "envs": {"dev": {"base_url": http}},
                "actions": {"send": {"method": "POST", "path": "/bot$Secret{bot}/sendMessage",
                                     "query": {"chat": "$Secret{q}"}}},
            }
        },
        "databases": {"pg": {"envs": {"dev": PG}, "actions": {"number": {"sql": "SELECT CAST(:data.n AS integer)"}}}},
        "features": {
            "cast": {
                "input": {},
                "sequence": [{"sequence_tag": "one", "parents": [], "events": [
                    {"type": "DATABASE_ACTION", "event": "pg:number", "input": {"data": {"n": "$Secret{q}"}},
                     "retries": 0, "allow_fail": False}]}],
            }
        },
    }  # fmt: skip


def written(spans: Any) -> list[str]:
    """Every text the finished spans hold: names, attribute values, events and their attributes, statuses."""
    texts: list[str] = []
    for span in spans.get_finished_spans():
        texts += [span.name, span.status.description or "", *map(str, (span.attributes or {}).values())]
        for event in span.events:
            texts += [event.name, *map(str, (event.attributes or {}).values())]
    return texts


def test_a_products_secrets_in_an_actions_url_are_masked_in_its_span(dt: Ductape, spans: Any, http: Recorder) -> None:
    """The run record showed /bot[secret]/sendMessage?chat=[secret], the span the whole URL: it was masked by shape
    only (a password, secret-looking parameters), not by the product's secrets' values."""
    dt.products.add(secret_product(http.url))
    dt.job.create({"name": "send", "tag": "send", "event_type": "ACTION", "event_tag": "tg:send", "product_tag": "tg"})
    http.reply(500, {"error": "no"})  # the run fails: its error quotes the URL, masked
    job_id = dt.job.schedule({"env": "dev", "product_tag": "tg", "event": "send"}).job_id
    dt.drain()
    assert http.last.path == f"/bot{BOT_TOKEN}/sendMessage"  # the server got them
    (run,) = dt.job.runs(job_id=job_id)
    assert "/bot[secret]/sendMessage?chat=[secret]" in (dt.job.run(run.id).error or "")
    (call,) = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    urls = [str(v) for k, v in (call.attributes or {}).items() if k in ("url.full", "http.url")]
    assert urls and all(u.endswith("/bot[secret]/sendMessage?chat=[secret]") for u in urls), urls
    texts = written(spans)
    assert not [t for t in texts if BOT_TOKEN in t or CHAT in t], texts


def test_a_products_secret_quoted_by_a_failing_query_is_masked_in_every_span(dt: Ductape, spans: Any) -> None:
    """PostgreSQL's error quotes the value bound: the psycopg instrumentation's span recorded it (its status and
    its exception event), and so did the feature event's span it escaped through."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    dt.products.add(secret_product("http://127.0.0.1:9"))
    run = dt.feature.run("cast", env="dev", product_tag="tg")
    (event,) = run.events
    assert event.error is not None and 'integer: "[secret]"' in event.error  # the record was masked already
    (query,) = [s for s in spans.get_finished_spans() if (s.attributes or {}).get("db.system") == "postgresql"]
    assert query.status.status_code is trace.StatusCode.ERROR and "[secret]" in (query.status.description or "")
    assert [e for e in query.events if e.name == "exception"]
    texts = written(spans)
    assert any('integer: "[secret]"' in t for t in texts)
    assert not [t for t in texts if CHAT in t], texts


def test_a_database_actions_query_is_a_child_of_the_attempt(dt: Ductape, spans: Any) -> None:
    schedule(dt, "count-rows")
    assert dt.drain().completed == 1
    (attempt,) = named(spans, "ductape.run")
    queries = [s for s in spans.get_finished_spans() if (s.attributes or {}).get("db.system") == "sqlite"]
    assert queries, [s.name for s in spans.get_finished_spans()]
    for q in queries:
        assert q.parent is not None and q.parent.span_id == attempt.context.span_id


def test_a_postgresql_query_is_a_child_of_the_attempt(dt: Ductape, spans: Any) -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    schedule(dt, "count-pg")
    assert dt.drain().completed == 1
    (attempt,) = named(spans, "ductape.run")
    queries = [s for s in spans.get_finished_spans() if (s.attributes or {}).get("db.system") == "postgresql"]
    assert queries, [s.name for s in spans.get_finished_spans()]
    for q in queries:
        assert q.parent is not None and q.parent.span_id == attempt.context.span_id


@pytest.mark.parametrize(("broker", "port"), [("redis", 6379), ("rabbit", 5672)])
def test_a_publish_is_a_child_of_the_attempt(dt: Ductape, spans: Any, broker: str, port: int) -> None:
    require_service(broker, "127.0.0.1", port)
    try:
        schedule(dt, f"announce-{broker}", input={"n": 1})
        assert dt.drain().completed == 1
    finally:
        asyncio.run(_forget_topic(broker))
    (attempt,) = named(spans, "ductape.run")
    children = [
        s for s in spans.get_finished_spans() if s.parent is not None and s.parent.span_id == attempt.context.span_id
    ]
    assert children, [s.name for s in spans.get_finished_spans()]
    system = {"redis": "redis", "rabbit": "rabbitmq"}[broker]
    assert any(
        system in {(s.attributes or {}).get("db.system"), (s.attributes or {}).get("messaging.system")}
        for s in children
    ), [(s.name, dict(s.attributes or {})) for s in children]


async def _forget_topic(broker: str) -> None:
    if broker == "redis":
        import redis.asyncio as redis

        client = redis.Redis(host="127.0.0.1", port=6379)
        await client.delete(TOPIC)
        await client.aclose()
        return
    import aio_pika

    conn = await aio_pika.connect_robust("amqp://guest:guest@127.0.0.1:5672/")
    channel = await conn.channel()
    await channel.queue_delete(TOPIC)
    await conn.close()


def test_a_feature_run_is_the_parent_of_its_events_and_the_child_of_the_attempt(dt: Ductape, spans: Any) -> None:
    schedule(dt, "digest")
    assert dt.drain().completed == 1
    (attempt,) = named(spans, "ductape.run")
    (feature,) = named(spans, "ductape.feature")
    assert feature.name == "ductape.feature digest"
    assert feature.parent is not None and feature.parent.span_id == attempt.context.span_id
    events = named(spans, "ductape.event")
    assert sorted(e.name for e in events) == ["ductape.event collect/count", "ductape.event collect/sum"]
    for e in events:
        assert e.parent is not None and e.parent.span_id == feature.context.span_id


def test_a_feature_run_called_directly_continues_the_callers_trace(dt: Ductape, spans: Any) -> None:
    with OUTER.start_as_current_span("request") as outer:
        dt.feature.run("digest", env="dev", product_tag="shop")
    (feature,) = named(spans, "ductape.feature")
    assert feature.parent is not None and feature.parent.span_id == outer.get_span_context().span_id
    assert len(named(spans, "ductape.event")) == 2


def test_async_schedule_continues_the_awaiting_tasks_trace(tmp_path: Path, spans: Any) -> None:
    from ductape_jobs import AsyncDuctape

    async def go() -> tuple[Any, str]:
        adt = AsyncDuctape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=FakeClock(), tracing=True)
        try:
            adt.function("ok")(lambda input, ctx: None)
            await adt.job.create({"name": "fn", "tag": "fn", "event_type": "FUNCTION", "event_tag": "ok"})
            with OUTER.start_as_current_span("request") as outer:
                job_id = (await adt.job.schedule({"env": "dev", "product_tag": "shop", "event": "fn"})).job_id
            assert (await adt.drain()).completed == 1
            return outer.get_span_context(), job_id
        finally:
            await adt.close()

    ctx, job_id = asyncio.run(go())
    (attempt,) = named(spans, "ductape.run")
    assert attempt.parent is not None and attempt.parent.span_id == ctx.span_id
    assert attempt.attributes["ductape.job_id"] == job_id


def test_a_feature_job_events_run_continues_the_features_trace(dt: Ductape, spans: Any) -> None:
    dt.feature.run("later", env="dev", product_tag="shop")
    (event,) = named(spans, "ductape.event")
    assert event.name == "ductape.event plan/fn"
    assert dt.drain().completed == 1  # the job the JOB event scheduled
    (attempt,) = named(spans, "ductape.run")
    assert attempt.parent is not None and attempt.parent.span_id == event.context.span_id


# ------------------------------------------------------------------------------------------------ off


def test_off_by_default_nothing_is_traced_or_stored(
    tmp_path: Path, spans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUCTAPE_TRACING", raising=False)
    d = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=FakeClock())
    try:
        assert d.tracing is None
        d.function("ok")(lambda input, ctx: None)
        d.job.create({"name": "fn", "tag": "fn", "event_type": "FUNCTION", "event_tag": "ok"})
        with OUTER.start_as_current_span("request"):
            job_id = d.job.schedule({"env": "dev", "product_tag": "shop", "event": "fn"}).job_id
        assert d.drain().completed == 1
        assert d.job.get(job_id).trace_context is None
        assert [r.trace_context for r in d.job.runs(job_id=job_id)] == [None]
        assert [s.name for s in spans.get_finished_spans()] == ["request"]
    finally:
        d.close()


def test_off_imports_no_opentelemetry_and_the_env_var_turns_it_on(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        from ductape_jobs import Ductape
        d = Ductape("sqlite:///{tmp_path / "jobs.db"}")
        d.function("ok")(lambda input, ctx: None)
        d.job.create({{"name": "fn", "tag": "fn", "event_type": "FUNCTION", "event_tag": "ok"}})
        d.job.schedule({{"env": "dev", "product_tag": "shop", "event": "fn"}})
        assert d.drain().completed == 1
        print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
        os.environ["DUCTAPE_TRACING"] = "1"
        print(Ductape("sqlite:///{tmp_path / "jobs.db"}").tracing is not None)
        """
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "DUCTAPE_TRACING"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "True"]


def test_tracing_without_the_extra_says_which_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ductape_jobs import tracing

    monkeypatch.setattr(tracing, "_active", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # as if the otel extra were not installed
    with pytest.raises(MissingExtraError) as info:
        Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", tracing=True)
    message = str(info.value)
    assert "\n" not in message and "pip install 'ductape-jobs[otel]'" in message and "tracing" in message
