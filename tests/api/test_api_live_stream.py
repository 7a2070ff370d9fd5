"""The live stream (``/api/v1/events``) over the real app and store: it sends the lifecycle events of runs a worker
completed (``drain``), each with its position as ``id``; a reconnect with ``Last-Event-ID`` goes on from there with
no event lost or doubled, and is told to reload when the events after it are gone; a product key gets its
product's events only."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from apikit import BLOG, SHOP, Api, wait_for

from ductape_jobs import FakeClock
from ductape_jobs.api import events

RUN_EVENTS = ["job.scheduled", "run.queued", "job.started", "job.completed"]


@dataclass
class Message:
    event: str
    id: str | None
    data: dict[str, Any]


@dataclass
class Listener:
    """An SSE client in a thread: every message it got (``event``, ``id``, ``data``), and each bare ``id:``."""

    api: Api
    key: str
    last_event_id: str | None = None
    messages: list[Message] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    keepalives: int = 0
    status: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        with httpx.stream("GET", f"{self.api.url}/api/v1/events", headers=headers, timeout=10) as response:
            self.status = response.status_code
            event: str | None = None
            event_id: str | None = None
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("id: "):
                    event_id = line.removeprefix("id: ")
                    self.ids.append(event_id)
                elif line.startswith("data: ") and event:
                    self.messages.append(Message(event, event_id, json.loads(line.removeprefix("data: "))))
                elif line.startswith(": keep-alive"):
                    self.keepalives += 1
                elif line == "":
                    event, event_id = None, None

    def of(self, kind: str) -> list[Message]:
        return [m for m in self.messages if m.event == kind]

    def lifecycle(self, expect: int) -> list[Message]:
        return wait_for(lambda: len(self.of("lifecycle")) >= expect and self.of("lifecycle"), what=f"{expect} events")

    def opened(self) -> Listener:
        """Once the stream is registered (its first message was sent after that)."""
        wait_for(lambda: self.of("runs") or self.of("reload"), what="the stream's first message")
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def test_the_stream_sends_the_lifecycle_events_of_runs_a_worker_completed(api: Api, job: dict[str, Any]) -> None:
    listener = Listener(api, api.admin_key).opened()
    made = api.dt.job.schedule(SHOP)
    api.dt.drain()
    events = listener.lifecycle(4)
    listener.close()
    assert [m.data["name"] for m in events] == RUN_EVENTS
    assert all(m.data["job_id"] == made.job_id and m.data["product_tag"] == "shop" for m in events)
    completed = events[-1].data
    run_id = completed["run_id"]
    assert completed["payload"]["status"] == "completed" and completed["payload"]["run_id"] == run_id
    assert completed["at"] == "2026-03-02T12:00:00Z"  # as the REST answers spell a time
    assert api.dt.job.run(run_id).phase.value == "completed"
    ids = [m.id for m in events]
    assert all(ids) and len(set(ids)) == 4  # each event its own position, in order
    seqs = [int(str(i).rsplit("-", 1)[1]) for i in ids]
    assert seqs == sorted(seqs)


def test_the_stream_spells_times_as_the_rest_answers_do(api: Api, job: dict[str, Any], clock: FakeClock) -> None:
    """Each time of the stream (an event's ``at``, its payload's times, the runs message's) is spelled as
    ``GET /runs/{id}`` answers it: ISO 8601 with ``Z`` (the stream wrote ``+00:00``)."""
    clock.advance(milliseconds=20)  # a time with a fraction of a second
    listener = Listener(api, api.admin_key).opened()
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    started, completed = (m.data for m in listener.lifecycle(4)[-2:])
    run = api.client().get(f"/runs/{completed['run_id']}").json()
    assert run["completed_at"] == "2026-03-02T12:00:00.020000Z"
    assert (completed["at"], completed["payload"]["completed_at"]) == (run["completed_at"],) * 2
    assert (started["at"], started["payload"]["started_at"]) == (run["started_at"],) * 2
    finished = wait_for(
        lambda: [m.data for m in listener.of("runs") if m.data["latest_finished_at"]], what="the runs message"
    )
    assert finished[-1]["latest_finished_at"] == run["completed_at"] and finished[-1]["at"] == run["completed_at"]
    listener.close()


def test_a_reconnect_with_last_event_id_resumes_without_loss_or_duplicates(api: Api, job: dict[str, Any]) -> None:
    first = Listener(api, api.admin_key).opened()
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    before = first.lifecycle(4)
    first.close()  # the connection broke after the browser got the second event (say)
    got = before[:2]
    api.dt.job.schedule(SHOP)  # while it is away
    api.dt.drain()
    again = Listener(api, api.admin_key, last_event_id=got[-1].id).opened()
    after = again.lifecycle(6)
    again.close()
    assert again.of("reload") == []
    assert [m.data["name"] for m in after] == RUN_EVENTS[2:] + RUN_EVENTS
    assert after[:2] == before[2:4]  # the same events, with the same ids
    ids = [m.id for m in got + after]
    assert len(ids) == len(set(ids)) == 8  # none lost, none twice


def test_a_reconnect_after_its_events_were_pruned_is_told_to_reload(
    api: Api, job: dict[str, Any], clock: FakeClock
) -> None:
    first = Listener(api, api.admin_key).opened()
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    seen = first.lifecycle(4)[0].id
    first.close()
    clock.advance(minutes=2)  # its lease lapsed: the next prune expires it and prunes what it pinned
    api.dt.prune()
    api.dt.job.schedule(SHOP)  # not recorded: no stream, no webhook
    api.dt.drain()
    again = Listener(api, api.admin_key, last_event_id=seen)
    (reload,) = wait_for(lambda: again.of("reload"), what="the reload event")
    assert again.messages[0] == reload  # first of all, before any other event
    assert reload.data["last_event_id"] == seen and "reload" in reload.data["reason"]
    assert reload.id and reload.id != seen and reload.id.split("-")[0] != str(seen).split("-")[0]  # a new epoch
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    assert [m.data["name"] for m in again.lifecycle(4)] == RUN_EVENTS  # and it goes on from there
    again.close()


def test_a_stream_renews_its_lease_so_the_pruner_keeps_its_events(
    api: Api, job: dict[str, Any], clock: FakeClock
) -> None:
    listener = Listener(api, api.admin_key).opened()
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    listener.lifecycle(4)
    for _ in range(12):  # two minutes, past the lease of 30 s four times, renewed by the stream every 10 s
        clock.advance(seconds=10)
        target = listener.keepalives + 2  # a keep-alive after 0.3 s of quiet: it polled (every 0.05 s) meanwhile
        wait_for(lambda target=target: listener.keepalives >= target, what="the stream polling on")
    api.dt.prune()
    assert api.dt.store.expire_streams(clock.now()) == 0  # its lease is current
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    assert [m.data["name"] for m in listener.lifecycle(8)][4:] == RUN_EVENTS
    assert listener.of("reload") == []
    listener.close()


def test_a_product_key_streams_its_products_events_only(api: Api, job: dict[str, Any]) -> None:
    blog = Listener(api, api.key(product_tag="blog")).opened()
    admin = Listener(api, api.admin_key).opened()
    api.dt.job.schedule(SHOP)
    api.dt.job.schedule(BLOG)
    api.dt.drain()
    admin.lifecycle(8)
    api.dt.job.schedule(SHOP)  # only another product's events last: the blog stream's id moves past them
    api.dt.drain()
    every = admin.lifecycle(12)
    mine = blog.lifecycle(4)
    wait_for(lambda: blog.ids and blog.ids[-1] == every[-1].id, what="the bare id past the shop events")
    blog.close()
    admin.close()
    assert [m.data["product_tag"] for m in mine] == ["blog"] * 4
    assert [m.data["name"] for m in mine] == RUN_EVENTS
    assert len(blog.of("lifecycle")) == 4


def test_a_last_event_id_that_is_not_a_position_is_refused(api: Api) -> None:
    answer = api.client().get("/events", headers={"Last-Event-ID": "yesterday"})
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["field"] == "Last-Event-ID" and "yesterday" in problem["message"]


def test_a_stream_lease_is_not_renewed_more_often_than_a_third_of_it(api: Api, clock: FakeClock) -> None:
    """The store sees the renewals: a stream's lease is extended with its clock, not per poll."""
    listener = Listener(api, api.admin_key).opened()
    clock.advance(timedelta(seconds=5))
    listener.close()
    assert api.dt.store.expire_streams(clock.now() + timedelta(seconds=26)) == 1  # still the lease of T0 + 30 s


def test_a_webhook_created_while_a_stream_is_open_gets_only_later_changes(
    api: Api, job: dict[str, Any], clock: FakeClock
) -> None:
    """The stream has every event written; a webhook created afterwards is not sent the earlier ones."""
    listener = Listener(api, api.admin_key).opened()
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    listener.lifecycle(4)
    clock.advance(seconds=1)
    hook, _ = api.dt.webhooks.create(
        {"product_tag": "shop", "url": "http://127.0.0.1:9/h", "events": ["job.completed"]}
    )
    assert api.dt.webhooks.deliveries(hook.id) == []  # the completion before it was created is not its
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    listener.lifecycle(8)
    listener.close()
    (delivery,) = api.dt.webhooks.deliveries(hook.id)
    assert delivery.event == "job.completed"


def test_a_polls_messages_are_one_write(api: Api, job: dict[str, Any]) -> None:
    """A soak probe: each message of a poll (up to 500 events) was its own write, so a client that closed the stream
    got them all written to a dead socket, and asyncio logged ``socket.send() raised exception.`` for each past the
    fifth (about 150 lines a disconnect; 47% of a day's ``serve`` log). A poll's messages are one write now: the
    app (the one the server runs) is called here as the server calls it, and its writes are counted."""
    first = Listener(api, api.admin_key).opened()
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    since = first.lifecycle(4)[0].id
    first.close()
    api.dt.job.schedule_many([SHOP] * 100)
    api.dt.drain()  # 403 lifecycle events after ``since``: the stream's first poll
    writes: list[bytes] = []

    async def main() -> None:
        gone = asyncio.Event()
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                writes.append(message["body"])
                if b"".join(writes).count(b"event: lifecycle") >= 403:
                    gone.set()

        headers = [(b"authorization", f"Bearer {api.admin_key}".encode()), (b"last-event-id", str(since).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
                 "path": "/api/v1/events", "raw_path": b"/api/v1/events", "query_string": b"", "root_path": "",
                 "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
        await asyncio.wait_for(api.server.app(scope, receive, send), 20)

    asyncio.run(main())
    lifecycle = [w for w in writes if b"event: lifecycle" in w]
    assert sum(w.count(b"event: lifecycle") for w in lifecycle) == 403
    assert len(lifecycle) <= 2, len(lifecycle)  # a poll reads at most 500 events: one write each


def test_live_streams_are_bounded_by_key_and_by_server(
    api: Api, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each live stream reads the store every poll: a read key opened 800 and every other request of the server went
    from about 5 to 250 ms. A key may hold ``MAX_STREAMS_PER_KEY`` open and the server ``MAX_STREAMS`` (429 past
    either, naming it); one that closes frees its place."""
    monkeypatch.setattr(events, "MAX_STREAMS_PER_KEY", 2)
    monkeypatch.setattr(events, "MAX_STREAMS", 3)
    key = api.key(scope="read")
    held = [Listener(api, key).opened(), Listener(api, key).opened()]

    third = api.client(key).get("/events")
    other = Listener(api, api.admin_key).opened()  # another key: its own two
    fourth = api.client(api.key("other", scope="read")).get("/events")

    assert (third.status_code, third.json()["detail"]) == (
        429,
        "this API key has 2 live event streams open, its most: close one first",
    )
    assert (fourth.status_code, fourth.json()["detail"]) == (
        429,
        "this server has 3 live event streams open, its most: try again later",
    )
    held[0].stop.set()
    api.dt.job.schedule(SHOP)  # a message: the listener reads it, sees it should stop and closes its connection
    open_streams = api.server.app.state.open_streams
    wait_for(lambda: open_streams.by_key.total() == 2, what="the closed stream's place freed")
    again = Listener(api, key).opened()
    assert again.status == 200
    for listener in (held[1], other, again):
        listener.close()


def test_streams_opened_at_once_cannot_pass_the_cap_of_their_key(
    api: Api, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap is checked before ``await call(store.open_stream, ...)`` and counted only once the response's
    generator first runs: requests that arrive together all pass the check (800 opened at once by one read key
    are as many as before). ``open_stream`` is slowed to 200 ms here (a PostgreSQL write under load)."""
    monkeypatch.setattr(events, "MAX_STREAMS_PER_KEY", 2)
    slow_open = api.dt.store.open_stream

    def open_stream(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.2)
        return slow_open(*args, **kwargs)

    monkeypatch.setattr(api.dt.store, "open_stream", open_stream)
    key = api.key(scope="read")
    statuses: list[int] = []
    stop = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.stream("GET", f"{api.url}/api/v1/events", headers=headers, timeout=10) as response:
            statuses.append(response.status_code)
            if response.status_code == 200:
                stop.wait(5)

    threads = [threading.Thread(target=listen, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: len(statuses) == 8, what="8 answers")
    try:
        assert sorted(statuses) == [200, 200] + [429] * 6, sorted(statuses)
    finally:
        stop.set()
        for t in threads:
            t.join(5)


def test_streams_whose_clients_vanish_free_their_places(api: Api, job: dict[str, Any]) -> None:
    """Clients that go away at once, after the first bytes, or mid-way: every place comes back."""

    key = api.key(scope="read")
    host, port = "127.0.0.1", api.server.port
    request = (f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n").encode()
    for i in range(30):
        s = socket.create_connection((host, port))
        s.sendall(request)
        if i % 3 == 1:
            s.recv(10)
        elif i % 3 == 2:
            s.recv(10)
            time.sleep(0.1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        s.close()
    open_streams = api.server.app.state.open_streams
    wait_for(lambda: open_streams.by_key.total() == 0, timeout=5, what=f"places freed: {open_streams.by_key}")
