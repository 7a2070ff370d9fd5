"""Lifecycle webhooks: created through the API, events POSTed to a local server with a signature that
verifies, a delivery retried after a 500, every attempt recorded."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from apikit import BLOG, SHOP, Api, problems

from ductape_jobs import FakeClock, StoreError, ValidationError
from ductape_jobs.executors.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from ductape_jobs.limits import LONE_SURROGATE
from ductape_jobs.webhooks import Webhooks
from support import Recorder

SECRET = "a-webhook-secret-of-32-characters"


def deliver(api: Api) -> int:
    api.dt.webhooks.flush()  # what the worker handed to the background thread is queued
    return asyncio.run(api.dt.webhooks.deliver_due())


def events_of(receiver: Recorder) -> list[str]:
    return [seen.json()["event"] for seen in receiver.seen]


def test_create_list_delete_and_the_secret_is_shown_once(api: Api, receiver: Recorder) -> None:
    c = api.client()
    made = c.post("/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": ["job.completed"]})
    assert made.status_code == 201, made.text
    hook = made.json()
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 30
    given = c.post(
        "/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": ["job.failed"], "secret": SECRET}
    ).json()
    assert given["secret"] == SECRET

    listed = c.get("/webhooks").json()["items"]
    assert [w["id"] for w in listed] == [hook["id"], given["id"]]
    assert all(w["secret"] is None for w in listed)
    assert SECRET not in c.get("/webhooks").text and hook["secret"] not in c.get("/webhooks").text
    shown = c.get(f"/webhooks/{given['id']}")
    assert shown.status_code == 200 and shown.json() == {**given, "secret": None}  # webhooks.get, no secret

    assert c.delete(f"/webhooks/{hook['id']}").status_code == 204
    assert [w["id"] for w in c.get("/webhooks").json()["items"]] == [given["id"]]
    assert c.delete(f"/webhooks/{hook['id']}").status_code == 404
    assert c.get(f"/webhooks/{hook['id']}").status_code == 404
    assert c.get(f"/webhooks/{hook['id']}/deliveries").status_code == 404
    for params, field in (({"limit": 0}, "limit"), ({"offset": -1}, "offset")):  # the query first: 422, not 404
        with pytest.raises(ValidationError) as raised:
            api.dt.webhooks.deliveries(hook["id"], **params)
        assert raised.value.field == field
        answer = c.get(f"/webhooks/{hook['id']}/deliveries", params=params)
        assert problems(answer) == [(raised.value.field, raised.value.rule)]


def test_a_webhook_id_no_id_can_hold_is_422_naming_it(api: Api) -> None:
    """A lone surrogate in a webhook's id: get and deliveries said "not found" (404) where a schedule's, a run's or a
    webhook's delete say what is wrong with the id (422). The store is asked for that one webhook, as for any id
    (a NUL: 422 on PostgreSQL, which cannot hold one; SQLite can, so not found)."""
    for call in (api.dt.webhooks.get, api.dt.webhooks.deliveries):
        with pytest.raises(ValidationError) as raised:
            call("a\udce9b")
        assert (raised.value.field, raised.value.rule) == ("id", LONE_SURROGATE)
    assert api.client().get("/webhooks/a%00b").status_code == 404  # SQLite


def test_a_password_or_token_in_a_webhooks_url_is_sent_never_shown(api: Api, receiver: Recorder) -> None:
    """The receiver's credentials in the URL (user:password@, ?token=): every answer and listing masks them (the
    whole query; the path too, tests/api/test_api_webhook_urls.py); the store keeps the URL whole, which is what
    deliveries read."""
    c = api.client()
    url = receiver.url.replace("http://", "http://hook:Pa55word-x@") + "?token=T0ken-y&team=a"
    made = c.post("/webhooks", json={"product_tag": "shop", "url": url, "events": ["job.completed"]}).json()
    for text in (str(made), c.get("/webhooks").text, c.get(f"/webhooks/{made['id']}").text):
        assert "Pa55word-x" not in text and "T0ken-y" not in text and "hook:***@" in text and "?***" in text
    assert api.dt.webhooks.get(made["id"]).url == url  # kept whole: what deliveries are sent to


@pytest.mark.parametrize(
    "body",
    [
        {"product_tag": "shop", "url": "ftp://example.com/x", "events": ["job.completed"]},
        {"product_tag": "shop", "url": "http://example.com/x", "events": []},
        {"product_tag": "shop", "url": "http://example.com/x", "events": ["job.exploded"]},
        {"product_tag": "shop", "url": "http://example.com/x", "events": ["job.failed"], "secret": "short"},
        {"url": "http://example.com/x", "events": ["job.failed"]},
        {"product_tag": "shop", "url": "http://example.com/x", "events": ["job.failed"], "retries": 3},
        {"product_tag": "shop", "url": "http://example.com/x\r\nX-Injected: 1", "events": ["job.failed"]},
        {"product_tag": "shop", "url": "http://example.com/a b", "events": ["job.failed"]},
    ],
)
def test_bad_webhooks_are_422_and_nothing_is_stored(api: Api, body: dict[str, Any]) -> None:
    response = api.client().post("/webhooks", json=body)
    with pytest.raises(ValidationError) as raised:
        api.dt.webhooks.create(body)
    assert problems(response) == [(raised.value.field, raised.value.rule)]
    assert api.dt.webhooks.list() == []


def test_a_misspelt_field_is_named_rather_than_the_one_it_leaves_missing(api: Api) -> None:
    """``event`` for ``events`` answered only ``events: is required``, hiding the typo."""
    body = {"product_tag": "shop", "url": "http://example.com/x", "event": ["job.failed"]}
    assert problems(api.client().post("/webhooks", json=body)) == [("event", "is not a known field")]
    with pytest.raises(ValidationError, match=r"^evnt: is not a known field$"):  # was event: is required
        api.dt.job.schedule({"env": "prd", "product_tag": "shop", "evnt": "report"})


def test_events_are_delivered_signed_and_retried_after_a_500(
    api: Api, job: dict[str, Any], receiver: Recorder, clock: FakeClock
) -> None:
    c = api.client()
    events = ["job.scheduled", "job.started", "job.completed", "job.failed", "job.paused", "job.resumed"]
    hook = c.post(
        "/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": events, "secret": SECRET}
    ).json()
    other = c.post("/webhooks", json={"product_tag": "blog", "url": receiver.url, "events": ["job.started"]}).json()

    job_id = c.post("/schedule", json={**SHOP, "input": {"n": 1}}).json()["job_id"]
    c.post("/schedule", json=BLOG)  # blog's started event goes to the blog hook only
    api.dt.drain()
    assert deliver(api) == 4
    shop_events = [s for s in receiver.seen if s.json()["data"]["product_tag"] == "shop"]
    assert [s.json()["event"] for s in shop_events] == ["job.scheduled", "job.started", "job.completed"]
    assert [s.json()["event"] for s in receiver.seen if s.json()["data"]["product_tag"] == "blog"] == ["job.started"]

    for seen in shop_events:
        assert seen.method == "POST" and seen.headers["content-type"] == "application/json"
        ts, signature = seen.headers[TIMESTAMP_HEADER.lower()], seen.headers[SIGNATURE_HEADER.lower()]
        assert verify_signature(SECRET, seen.body, ts, signature)
        assert not verify_signature("another-secret-of-some-length!!", seen.body, ts, signature)
        body = seen.json()
        assert seen.headers["x-ductape-event"] == body["event"] and seen.headers["x-ductape-delivery"] == body["id"]
        assert body["data"]["job_id"] == job_id
    completed = shop_events[-1].json()["data"]
    assert (completed["status"], completed["attempt"], completed["job_tag"]) == ("completed", 1, "report")
    run = c.get(f"/runs/{completed['run_id']}").json()  # times spelled as the REST answers spell them
    assert completed["completed_at"] == shop_events[-1].json()["created_at"] == run["completed_at"]
    assert SECRET not in receiver.seen[0].body.decode()

    # A receiver that fails: the delivery is kept and sent again after a backoff.
    receiver.reply(500, {"error": "down"})
    recurring = api.dt.job.schedule({**SHOP, "repeat": {"every": 3_600_000}}).job_id
    assert deliver(api) == 1  # job.scheduled: answered 500
    (first,) = c.get(f"/webhooks/{hook['id']}/deliveries", params={"limit": 1}).json()["items"]
    assert (first["event"], first["status"], first["attempts"]) == ("job.scheduled", "pending", 1)
    assert "HTTP 500" in first["last_error"]
    assert deliver(api) == 0  # not due yet
    clock.advance(seconds=2)
    assert deliver(api) == 1
    (again,) = c.get(f"/webhooks/{hook['id']}/deliveries", params={"limit": 1}).json()["items"]
    assert (again["id"], again["status"], again["attempts"]) == (first["id"], "delivered", 2)
    assert again["delivered_at"] == "2026-03-02T12:00:02Z" and again["payload"]["data"]["job_id"] == recurring
    assert events_of(receiver)[-2:] == ["job.scheduled", "job.scheduled"]  # the same delivery, twice

    c.post(f"/schedules/{recurring}/pause")
    c.post(f"/schedules/{recurring}/resume")
    c.post(f"/schedules/{recurring}/cancel")  # job.cancelled: this hook does not take it
    assert deliver(api) == 2
    assert events_of(receiver)[-2:] == ["job.paused", "job.resumed"]

    history = c.get(f"/webhooks/{hook['id']}/deliveries").json()
    assert all(d["status"] == "delivered" for d in history["items"]) and len(history["items"]) == 6
    assert len(c.get(f"/webhooks/{other['id']}/deliveries").json()["items"]) == 1


def test_a_failing_run_sends_job_failed_once_it_fails_for_good(
    api: Api, job: dict[str, Any], receiver: Recorder, clock: FakeClock
) -> None:
    api.dt.function("report")(lambda input, ctx: 1 / 0)
    api.client().post("/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": ["job.failed"]})
    api.dt.job.schedule({**SHOP, "retries": 1})
    api.dt.drain()
    assert deliver(api) == 0  # the first attempt failed, a retry follows: not failed yet
    clock.advance(seconds=2)
    api.dt.drain()
    assert deliver(api) == 1
    data = receiver.last.json()["data"]
    assert (data["status"], data["attempt"]) == ("failed", 2) and data["error"].startswith("ZeroDivisionError")


def test_deliveries_give_up_after_the_last_attempt(
    api: Api, job: dict[str, Any], receiver: Recorder, clock: FakeClock
) -> None:
    api.dt.webhooks.max_attempts = 2
    hook = (
        api.client()
        .post("/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": ["job.scheduled"]})
        .json()
    )
    receiver.reply(503)
    receiver.reply(503)
    api.dt.job.schedule(SHOP)
    deliver(api)
    clock.advance(seconds=5)
    deliver(api)
    clock.advance(minutes=5)
    assert deliver(api) == 0
    (gave_up,) = api.client().get(f"/webhooks/{hook['id']}/deliveries").json()["items"]
    assert (gave_up["status"], gave_up["attempts"], gave_up["next_attempt_at"]) == ("failed", 2, None)


def test_a_sender_starts_no_delivery_its_hold_would_not_outlast_so_none_is_sent_twice(
    api: Api, job: dict[str, Any], receiver: Recorder, clock: FakeClock
) -> None:
    """A sender held a webhook for 60 s and sent its batch one after another: with a slow receiver the hold lapsed
    mid-batch, another sender took the webhook and the deliveries still claimed, and both sent them. A sender now
    starts a delivery only while its hold outlasts the send; those left are due again at once, in their place."""
    hook = (
        api.client()
        .post("/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": ["job.scheduled"]})
        .json()
    )
    for n in range(8):
        api.dt.job.schedule({**SHOP, "input": {"n": n}})
    other = Webhooks(api.dt.store, clock, allow=["127.0.0.0/8"])  # another process's sender, polling
    first_hold_ends = clock.now() + api.dt.webhooks.lease
    polled = False

    def slow(_: Any) -> None:  # each request takes 9 s (the timeout is 10 s)
        nonlocal polled
        clock.advance(seconds=9)
        if not polled and clock.now() > first_hold_ends:
            polled = True
            asyncio.run(other.deliver_due())

    receiver.on_request = slow
    assert deliver(api) == 8  # claimed; 4 started (at 0, 9, 18 and 27 s) while the hold outlasts a send
    assert len(receiver.seen) == 4 and not polled
    assert deliver(api) == 4  # the rest, at once: the other sender polls meanwhile and finds the webhook held
    assert polled
    sent = [seen.json()["id"] for seen in receiver.seen]
    made = api.client().get(f"/webhooks/{hook['id']}/deliveries").json()["items"][::-1]  # oldest first
    assert sent == [d["id"] for d in made]  # each once, in the order of their events
    assert {(d["status"], d["attempts"]) for d in made} == {("delivered", 1)}


def test_a_webhook_whose_sending_fails_lets_the_others_end_first_so_none_is_sent_twice(
    api: Api, job: dict[str, Any], receiver: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One webhook's send failed (its outcome could not be recorded): the batch's other webhooks went on sending
    after their webhooks were let go with what they had not sent, which the next poll claimed and sent too."""
    c = api.client()
    for name in ("a", "b"):
        c.post("/webhooks", json={"product_tag": "shop", "url": f"{receiver.url}/{name}", "events": ["job.scheduled"]})
    for n in range(4):
        api.dt.job.schedule({**SHOP, "input": {"n": n}})
    receiver.on_request = lambda seen: time.sleep(0.3 if seen.path == "/b" else 0)  # b answers slowly
    record, failures = api.dt.store.record_delivery, [StoreError("the store is away")]

    def flaky(*args: Any, **kw: Any) -> None:
        if failures:
            raise failures.pop()
        record(*args, **kw)

    monkeypatch.setattr(api.dt.store, "record_delivery", flaky)

    async def polls() -> None:  # as Webhooks.run does: one client, the next poll after a failed one
        async with httpx.AsyncClient() as client:
            with pytest.raises(StoreError):
                await api.dt.webhooks.deliver_due(client)
            while await api.dt.webhooks.deliver_due(client):
                pass
            await asyncio.sleep(1.5)  # anything still sending has sent by now

    asyncio.run(polls())
    sent = Counter(seen.json()["id"] for seen in receiver.seen)
    assert len(sent) == 8 and set(sent.values()) == {1}, sent


def test_no_webhook_means_no_delivery_rows(api: Api, job: dict[str, Any]) -> None:
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    assert api.dt.store.pending_events("webhooks", 10) == []  # no webhook takes them: not even written
    assert asyncio.run(api.dt.webhooks.deliver_due()) == 0


def test_a_product_key_manages_only_its_products_webhooks(api: Api, receiver: Recorder) -> None:
    blog_hook = (
        api.client()
        .post("/webhooks", json={"product_tag": "blog", "url": receiver.url, "events": ["job.started"]})
        .json()
    )
    shop = api.client(api.key(product_tag="shop"))
    made = shop.post("/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": ["job.started"]})
    assert made.status_code == 201
    assert [w["product_tag"] for w in shop.get("/webhooks").json()["items"]] == ["shop"]
    forbidden = shop.post("/webhooks", json={"product_tag": "blog", "url": receiver.url, "events": ["job.started"]})
    assert forbidden.status_code == 403
    assert shop.delete(f"/webhooks/{blog_hook['id']}").status_code == 404
    assert shop.get(f"/webhooks/{blog_hook['id']}").status_code == 404
    assert shop.get(f"/webhooks/{made.json()['id']}").json()["product_tag"] == "shop"
    assert shop.get(f"/webhooks/{blog_hook['id']}/deliveries").status_code == 404
    env_key = api.client(api.key(product_tag="shop", env="prd"))
    assert env_key.get("/webhooks").status_code == 403  # a webhook covers every env of its product
    assert env_key.get(f"/webhooks/{made.json()['id']}").status_code == 403


def test_a_slow_receiver_holds_its_own_webhook_and_never_another(
    api: Api, job: dict[str, Any], receiver: Recorder
) -> None:
    """``Webhooks.run`` sends each webhook's deliveries in a task of its own: an event of another webhook that falls
    due while one receiver takes seconds to answer is sent at once. A batch waited for its slowest webhook (up to
    the hold's end, 35 s) before the next was taken: one product's blackholed receiver held every other's."""
    c = api.client()
    c.post("/webhooks", json={"product_tag": "shop", "url": f"{receiver.url}/slow", "events": ["job.scheduled"]})
    c.post("/webhooks", json={"product_tag": "blog", "url": f"{receiver.url}/fast", "events": ["job.scheduled"]})
    arrived: list[tuple[str, float]] = []

    def answer(seen: Any) -> None:
        arrived.append((seen.path, time.monotonic()))
        if seen.path == "/slow":
            time.sleep(3)

    receiver.on_request = answer
    api.dt.job.schedule(SHOP)  # its delivery: 3 s to answer

    async def sending() -> float:
        stop = asyncio.Event()
        running = asyncio.create_task(api.dt.webhooks.run(stop, poll=timedelta(milliseconds=50)))
        while not arrived:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(api.dt.job.schedule, BLOG)  # another product's event, while /slow answers
        made = time.monotonic()
        while len(arrived) < 2:
            await asyncio.sleep(0.01)
        stop.set()
        await running  # the slow one finishes first
        return made

    made = asyncio.run(sending())
    assert [path for path, _ in arrived] == ["/slow", "/fast"]
    assert arrived[1][1] - made < 1.5  # not after the slow answer, 3 s after it began


def test_a_webhooks_deliveries_go_batch_after_batch_not_a_batch_a_poll(
    api: Api, job: dict[str, Any], receiver: Recorder
) -> None:
    """Its task's end wakes the loop: with each webhook sent by a task of its own, the loop found the webhook still
    held, and took its next batch a poll later (20 deliveries a second at the default poll; here, with a poll of
    30 s, one batch in the 20 s waited)."""
    api.client().post("/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": ["job.scheduled"]})
    api.dt.job.schedule_many([{**SHOP, "input": {"n": n}} for n in range(5 * api.dt.webhooks.batch)])
    wanted = 5 * api.dt.webhooks.batch

    async def sending() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(api.dt.webhooks.run(stop, poll=timedelta(seconds=30)))
        deadline = time.monotonic() + 20
        while len(receiver.seen) < wanted and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await running

    asyncio.run(sending())
    assert len(receiver.seen) == wanted


def test_at_most_max_sending_webhooks_are_sent_at_once(
    api: Api, job: dict[str, Any], receiver: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unbounded, every slow receiver's task took one of the HTTP client's 100 connections: past them, a healthy
    receiver's request waited for one until its timeout, recorded as that receiver's failure."""
    import threading

    from ductape_jobs import webhooks

    monkeypatch.setattr(webhooks, "MAX_SENDING", 2)
    for n in range(5):
        api.client().post(
            "/webhooks", json={"product_tag": "shop", "url": f"{receiver.url}/{n}", "events": ["job.scheduled"]}
        )
    api.dt.job.schedule(SHOP)
    lock, active, most = threading.Lock(), [0], [0]

    def answer(seen: Any) -> None:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1

    receiver.on_request = answer

    async def sending() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(api.dt.webhooks.run(stop, poll=timedelta(milliseconds=20)))
        deadline = time.monotonic() + 20
        while len(receiver.seen) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stop.set()
        await running

    asyncio.run(sending())
    assert len(receiver.seen) == 5 and most[0] == 2


def test_a_webhooks_failed_deliveries_are_logged_once_a_minute(
    api: Api, job: dict[str, Any], receiver: Recorder, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A probe's receiver was down: every failed attempt was a warning line, 2,000 a minute (700 MB of log a day)."""
    api.client().post("/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": ["job.scheduled"]})
    for _ in range(5):
        receiver.reply(503)
        api.dt.job.schedule(SHOP)
    with caplog.at_level("WARNING", logger="ductape_jobs"):
        assert deliver(api) == 5 and len(receiver.seen) == 5  # each one tried, each refused
        lines = [r.getMessage() for r in caplog.records if "webhook delivery" in r.getMessage()]
        assert len(lines) == 1 and "attempt 1 failed" in lines[0] and "503" in lines[0]
        clock.advance(minutes=1)
        receiver.reply(503)
        api.dt.job.schedule(SHOP)
        deliver(api)
    lines = [r.getMessage() for r in caplog.records if "webhook delivery" in r.getMessage()]
    assert len(lines) == 2 and "(4 more of this webhook's deliveries failed since the last such line)" in lines[1]


def test_a_delivery_given_up_is_logged_whatever_was_logged_last(
    api: Api, job: dict[str, Any], receiver: Recorder, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A review: a webhook's last failures within the minute, the delivery given up among them, were never logged."""
    api.dt.webhooks.max_attempts = 2
    api.client().post("/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": ["job.scheduled"]})
    receiver.reply(503)
    receiver.reply(503)
    receiver.reply(503)
    api.dt.job.schedule(SHOP)
    api.dt.job.schedule(SHOP)
    with caplog.at_level("WARNING", logger="ductape_jobs"):
        deliver(api)  # two first attempts: one line
        clock.advance(seconds=10)  # the backoff, within the minute
        deliver(api)  # the first delivery's second attempt: its last
    lines = [r.getMessage() for r in caplog.records if "webhook delivery" in r.getMessage()]
    assert len(lines) == 2 and "attempt 2 failed, given up" in lines[1], lines
