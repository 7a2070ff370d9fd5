"""Operating: /metrics after some runs, /healthz and /readyz, the event stream after a run completes."""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from apikit import JOB, SHOP, Api, LiveServer, wait_for

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from storekit import PG_URL, pg_admin, require_postgres, with_query

from ductape_jobs import Ductape, FakeClock, ValidationError
from ductape_jobs.api import create_app
from ductape_jobs.ids import new_id
from ductape_jobs.models import DeliveryStatus, RunPhase, Webhook, WebhookDelivery


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (labels in any order)."""
    for line in text.splitlines():
        found = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if found and found.group(1) == name:
            given = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2) or ""))
            if given == labels:
                return float(found.group(3))
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def test_metrics_after_some_runs(api: Api, job: dict[str, Any], clock: FakeClock) -> None:
    api.dt.job.create({"name": "Boom", "tag": "boom", "event_type": "FUNCTION", "event_tag": "boom"})
    api.dt.function("boom")(lambda input, ctx: 1 / 0)
    for _ in range(3):
        api.dt.job.schedule(SHOP)
    api.dt.job.schedule({**SHOP, "event": "boom", "retries": 1})
    clock.advance(seconds=3)
    api.dt.drain()
    clock.advance(seconds=1)  # the retry is due within a second (backoff 1 s minus jitter)
    api.dt.drain()
    api.dt.job.schedule({**SHOP, "start_at": clock.now()})  # due, not claimed: the queue

    response = api.raw().get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "ductape_runs_total", status="started", event_type="function") == 5
    assert metric(text, "ductape_runs_total", status="completed", event_type="function") == 3
    assert metric(text, "ductape_runs_total", status="retried", event_type="function") == 1
    assert metric(text, "ductape_runs_total", status="failed", event_type="function") == 1
    assert metric(text, "ductape_run_duration_seconds_count", event_type="function") == 5
    assert metric(text, "ductape_run_lateness_seconds_count") == 5
    assert metric(text, "ductape_run_lateness_seconds_bucket", le="0.25") == 1  # the retry: at most 0.2 s late
    assert metric(text, "ductape_run_lateness_seconds_bucket", le="5.0") == 5  # the others 3 s late
    assert metric(text, "ductape_queue_depth") == 1
    assert metric(text, "ductape_leases_rescued_total") == 0
    assert "process_cpu_seconds_total" in text or "python_gc_objects_collected_total" in text


def test_metrics_show_the_webhook_deliveries_still_to_send(api: Api, clock: FakeClock) -> None:
    """A soak probe: a webhook sends its deliveries one after another, and to a receiver answering in 50 ms, 16 a
    second went out of 80 made; 5,061 waited, the oldest 64 s old, and nothing showed it. Two gauges do."""
    scrape = lambda: api.raw().get("/metrics").text  # noqa: E731
    text = scrape()
    assert metric(text, "ductape_webhook_deliveries_pending") == 0
    assert metric(text, "ductape_webhook_oldest_pending_seconds") == 0
    hook = Webhook(
        id=new_id("wh"), product_tag="shop", url="http://127.0.0.1:9/hook", events=["job.completed"],
        secret="whsec_test", created_at=clock.now(),
    )  # fmt: skip
    api.dt.store.add_webhook(hook)
    made = clock.now()

    def made_after(seconds: int) -> WebhookDelivery:
        at = made + timedelta(seconds=seconds)
        return WebhookDelivery(
            id=new_id("dlv"), webhook_id=hook.id, event="job.completed", payload={"event": "job.completed"},
            status=DeliveryStatus.PENDING, attempts=0, created_at=at, next_attempt_at=at,
        )  # fmt: skip

    api.dt.store.enqueue_deliveries([made_after(i) for i in range(3)])
    clock.advance(seconds=90)
    text = scrape()
    assert metric(text, "ductape_webhook_deliveries_pending") == 3
    assert metric(text, "ductape_webhook_oldest_pending_seconds") == 90
    (sent, *_) = api.dt.store.due_deliveries(clock.now(), 1, timedelta(minutes=1))
    api.dt.store.record_delivery(sent.delivery.id, clock.now(), ok=True)
    text = scrape()
    assert metric(text, "ductape_webhook_deliveries_pending") == 2
    assert metric(text, "ductape_webhook_oldest_pending_seconds") == 89


def test_metrics_from_the_store_count_every_workers_runs_once(dt: Ductape, clock: FakeClock, tmp_path: Any) -> None:
    """``metrics_from="store"``: the runs' series count the runs of every worker sharing the store (here a second
    client, as another process would be), each once, this process's own included, from the outbox."""
    elsewhere = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock)  # a worker in another process
    for client in (dt, elsewhere):
        client.function("report")(lambda input, ctx: {"ok": True})
        client.function("boom")(lambda input, ctx: 1 / 0)
    dt.job.create(JOB)
    dt.job.create({"name": "Boom", "tag": "boom", "event_type": "FUNCTION", "event_tag": "boom"})
    server = LiveServer(create_app(dt, metrics_from="store")).start()
    raw = httpx.Client(base_url=server.url, timeout=10)
    try:
        before = raw.get("/metrics").text  # the first scrape opens the stream: counting starts here
        assert "ductape_runs_total{" not in before and metric(before, "ductape_metrics_gaps_total") == 0
        for _ in range(2):
            dt.job.schedule(SHOP)
        dt.job.schedule({**SHOP, "event": "boom", "retries": 1})
        clock.advance(seconds=3)
        elsewhere.drain()  # a worker elsewhere: completes two, the boom attempt fails and is retried
        clock.advance(seconds=1)
        dt.drain()  # this process's worker: the boom run fails for good
        text = raw.get("/metrics").text
        assert metric(text, "ductape_runs_total", status="started", event_type="function") == 4
        assert metric(text, "ductape_runs_total", status="completed", event_type="function") == 2
        assert metric(text, "ductape_runs_total", status="retried", event_type="function") == 1
        assert metric(text, "ductape_runs_total", status="failed", event_type="function") == 1
        assert metric(text, "ductape_run_duration_seconds_count", event_type="function") == 4
        assert metric(text, "ductape_run_lateness_seconds_count") == 4
        assert metric(text, "ductape_run_lateness_seconds_bucket", le="0.25") == 1  # the retry
        assert metric(text, "ductape_run_lateness_seconds_bucket", le="5.0") == 4
        again = raw.get("/metrics").text  # nothing new: nothing counted twice
        assert metric(again, "ductape_runs_total", status="started", event_type="function") == 4

        clock.advance(minutes=6)  # no scrape for longer than the lease (5 min): the stream lapses and goes
        assert dt.store.expire_streams(clock.now()) == 1
        dt.job.schedule(SHOP)  # written by nobody: no stream was live
        dt.drain()
        lapsed = raw.get("/metrics").text
        assert metric(lapsed, "ductape_metrics_gaps_total") == 1  # it says it could not count what it missed
        assert metric(lapsed, "ductape_runs_total", status="completed", event_type="function") == 2
        dt.job.schedule(SHOP)
        dt.drain()
        after = raw.get("/metrics").text  # and counts again from there
        assert metric(after, "ductape_runs_total", status="completed", event_type="function") == 3
    finally:
        raw.close()
        server.stop()
        elsewhere.close()


def test_metrics_from_an_unknown_source_or_a_bad_lease_are_refused_by_name(dt: Ductape) -> None:
    with pytest.raises(ValidationError, match="metrics_from"):
        create_app(dt, metrics_from="prometheus")
    for bad in (0, -1, float("nan"), float("inf"), 1e12):
        with pytest.raises(ValidationError, match="metrics_lease"):
            create_app(dt, metrics_from="store", metrics_lease=bad)
        with pytest.raises(ValidationError, match="events_lease"):
            create_app(dt, events_lease=bad)


def test_rescued_leases_are_counted(api: Api, job: dict[str, Any], clock: FakeClock) -> None:
    api.dt.job.schedule(SHOP)
    api.dt.store.acquire_runs("dead-worker", 10, api.dt.options.lease, clock.now())  # then it dies
    clock.advance(minutes=1)
    api.dt.drain()
    assert metric(api.raw().get("/metrics").text, "ductape_leases_rescued_total") == 1


def test_a_run_lost_too_often_is_counted_and_logged_as_failed_not_rescued(
    api: Api, job: dict[str, Any], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A run whose worker dies at each attempt (a poison pill) fails for good at the rescue past ``max_rescues``:
    it was counted in ``ductape_leases_rescued_total`` and logged as rescued, never as failed, so no alert on
    failures saw this dead letter."""
    dt = api.dt
    dt.job.schedule(SHOP)
    for _ in range(dt.options.max_rescues):  # lost, rescued, claimed again (not by this process's worker)
        (run,) = dt.store.acquire_runs("dead-worker", 10, dt.options.lease, clock.now())
        clock.advance(minutes=1)
        dt.store.rescue_expired(clock.now(), dt.options.max_rescues)
    dt.store.acquire_runs("dead-worker", 10, dt.options.lease, clock.now())
    clock.advance(minutes=1)
    with caplog.at_level(logging.WARNING, logger="ductape_jobs.worker"):
        dt.drain()  # its rescue: lost once more than max_rescues allows
    text = api.raw().get("/metrics").text
    assert metric(text, "ductape_leases_rescued_total") == 0
    assert metric(text, "ductape_runs_total", status="failed", event_type="function") == 1
    said = [r.getMessage() for r in caplog.records if run.id in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"run {run.id} failed for good: lease expired")
    assert dt.store.get_run(run.id).phase is RunPhase.FAILED  # type: ignore[union-attr]


def test_health_and_readiness(api: Api, dt: Ductape) -> None:
    raw = api.raw()
    assert raw.get("/healthz").json() == {"status": "ok"}
    assert raw.get("/readyz").status_code == 200
    dt.store.close()  # the store is gone: not ready, still alive
    unready = raw.get("/readyz")
    assert unready.status_code == 503 and unready.json()["status"] == "unavailable"
    assert raw.get("/healthz").status_code == 200


def test_readiness_answers_503_with_its_reason_within_a_probes_timeout(api: Api, dt: Ductape) -> None:
    """A store that does not answer (its server away, a connection hanging): /readyz waited 5 s, past a kubelet
    probe's default 1 s, so the probe never read the 503; and its reason was empty (str(TimeoutError()))."""
    from ductape_jobs.api.ops import READY_WITHIN

    hung = threading.Event()
    dt.store.next_wakeup = lambda: hung.wait(10)  # type: ignore[method-assign,assignment,return-value]
    try:
        unready = api.raw().get("/readyz")
    finally:
        hung.set()
    assert READY_WITHIN < 1
    assert unready.status_code == 503
    assert unready.json() == {"status": "unavailable", "detail": f"the store does not answer within {READY_WITHIN:g} s"}


def test_the_event_stream_tells_when_runs_change(api: Api, job: dict[str, Any]) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    ready = threading.Event()
    stop = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {api.admin_key}"}
        with httpx.stream("GET", f"{api.url}/api/v1/events", headers=headers, timeout=10) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event:
                    seen.append((event, json.loads(line.removeprefix("data: "))))
                    ready.set()
                elif line.startswith(": keep-alive"):
                    seen.append(("keep-alive", {}))
                if stop.is_set():
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(10), "no first event"
    assert seen[0] == (
        "runs",
        {
            "at": "2026-03-02T12:00:00Z",
            "latest_run_id": None,
            "latest_finished_at": None,
            "running": 0,
            "queued": 0,
        },
    )
    wait_for(lambda: any(e == "keep-alive" for e, _ in seen), what="a keep-alive comment")

    api.dt.job.schedule(SHOP)
    queued = wait_for(lambda: [d for e, d in seen if e == "runs" and d["queued"] == 1], what="the queued run")
    api.dt.drain()
    done = wait_for(lambda: [d for e, d in seen if e == "runs" and d["latest_finished_at"]], what="the ended run")
    assert done[-1]["latest_run_id"] == queued[0]["latest_run_id"]
    assert (done[-1]["queued"], done[-1]["running"]) == (0, 0)
    stop.set()


def test_the_event_stream_of_a_product_key_shows_its_product_only(api: Api, job: dict[str, Any]) -> None:
    api.dt.job.schedule(SHOP)
    blog_key = api.key(product_tag="blog")
    with httpx.stream(
        "GET", f"{api.url}/api/v1/events", headers={"Authorization": f"Bearer {blog_key}"}, timeout=10
    ) as response:
        data = next(line for line in response.iter_lines() if line.startswith("data: "))
    assert json.loads(data.removeprefix("data: "))["latest_run_id"] is None


def test_event_streams_end_when_the_server_stops(dt: Ductape) -> None:
    server = LiveServer(create_app(dt, events_poll=0.05, dashboard=False)).start()
    from ductape_jobs.apikeys import ApiKeys

    key = ApiKeys(dt.store, dt.clock).create("k").key
    lines: list[str] = []

    def listen() -> None:
        with httpx.stream("GET", f"{server.url}/api/v1/events", headers={"X-API-Key": key}, timeout=10) as r:
            lines.extend(r.iter_lines())

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    wait_for(lambda: any(line.startswith("data: ") for line in lines), what="the first event")
    server.stop()
    listener.join(timeout=5)
    assert not listener.is_alive()


def test_metrics_answer_without_the_stores_series_while_the_store_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """An operations probe: with the store away, a scrape waited for the pool's own timeout (about 40 s) and then
    answered 503 with no series at all, the process's run counters included: Prometheus (10 s by default) lost the
    target for the whole outage. Now the store's gauges read NaN after ``STORE_WITHIN`` (``ductape_store_up``
    0), and a read that has not answered is not repeated by the next scrapes. The store here is real and held by
    another transaction's lock on ``runs``, as a server that stopped answering holds a query."""
    import psycopg

    from ductape_jobs.api import ops

    require_postgres()
    schema = f"ops_{secrets.token_hex(6)}"
    monkeypatch.setattr(ops, "STORE_WITHIN", 0.3)
    dt = Ductape(with_query(PG_URL, schema=schema, application_name=schema), clock=clock)
    server = LiveServer(create_app(dt)).start()
    try:
        dt.function("report")(lambda input, ctx: None)
        dt.job.create(JOB)
        dt.job.schedule(SHOP)
        dt.drain()
        dt.job.schedule(SHOP)  # due: the queue's depth is 1
        scrape = lambda: httpx.get(server.url + "/metrics", timeout=10)  # noqa: E731
        assert metric(scrape().text, "ductape_store_up") == 1 and metric(scrape().text, "ductape_queue_depth") == 1
        with psycopg.connect(PG_URL, options=f"-c search_path={schema}") as holder:
            holder.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")  # until this transaction ends
            for _ in range(3):  # the first read waits on the lock; the next scrapes do not read again
                answer = scrape()
                assert answer.status_code == 200, answer.text
                assert metric(answer.text, "ductape_store_up") == 0
                assert math.isnan(metric(answer.text, "ductape_queue_depth"))
                assert math.isnan(metric(answer.text, "ductape_webhook_deliveries_pending"))
                assert metric(answer.text, "ductape_runs_total", status="completed", event_type="function") == 1
            waiting = pg_admin(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                [schema],
            )
            assert waiting == [(1,)]  # one read held, not one a scrape
        wait_for(lambda: metric(scrape().text, "ductape_store_up") == 1, 10)
        assert metric(scrape().text, "ductape_queue_depth") == 1
    finally:
        server.stop()
        dt.close()
        pg_admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
