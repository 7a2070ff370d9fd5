"""``/api/v1/events``: Server-Sent Events, the dashboard's live stream of the store's lifecycle events.

Each stream is a *live stream* of the outbox (``OutboxStore.open_stream``): while one is open the store writes every
lifecycle event in the transaction of its change (``ductape_jobs.lifecycle``), and the stream sends each one its
caller may see (a key limited to a product or env: that product's, that env's), oldest first::

    event: lifecycle
    id: 1-0-42
    data: {"name": "job.completed", "job_id": "job_...", "run_id": "run_...", "product_tag": "shop",
           "at": "...", "payload": {... the webhook body's data ...}}

The ``id`` is the stream's position (``StreamPosition``: ``<epoch>-<txid>-<seq>``). A browser's ``EventSource``
sends the last one back as ``Last-Event-ID`` when it reconnects, and the stream goes on from there: no event lost,
none twice. When that cannot be (the events after it were pruned, or not written because no stream was open
meanwhile) it says so first, and goes on from the newest event::

    event: reload
    id: 2-0-57
    data: {"reason": "...", "last_event_id": "1-0-42"}

A ``Last-Event-ID`` that is not a position answers 422. When events the caller may not see moved the position, a
bare ``id:`` line (no event) moves the browser's ``Last-Event-ID`` with it.

The stream also polls a cheap fingerprint of the runs (the newest run, the latest end, how many are running and
waiting; ``Store.run_activity``) every ``events_poll`` (1 s) and sends ::

    event: runs
    data: {"at": "...", "latest_run_id": "...", "latest_finished_at": "...", "running": 1, "queued": 0}

once at the start and whenever it changes (the dashboard's pages refresh on it), and a ``: keep-alive`` comment
when nothing was sent for ``events_keepalive`` (15 s).

The stream holds a lease of ``events_lease`` (30 s) on its place in the outbox, renewed every third of it with
its position: the pruner keeps the events after it, and a stream that went away (its browser closed, its server
died) pins nothing once the lease lapsed. The lease also covers a reconnect: a browser back within it resumes.
When the last stream's lease lapsed, an engine process (every 30 s, ``Ductape.run_services``) or a prune drops the
outbox's triggers if no webhook wants them: without a dashboard or a webhook open, writing runs costs nothing
more.

At every poll the stream also checks that its caller may still call: it ends once its key is revoked, or its login
session ended or expired.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import StreamingResponse

from ductape_jobs.api.auth import READ, Me, Principal, still_authorized
from ductape_jobs.api.common import call, client, responses
from ductape_jobs.clock import iso_text, to_ms
from ductape_jobs.errors import StoreError
from ductape_jobs.lifecycle import LifecycleEvent, StreamPosition, StreamStart
from ductape_jobs.limits import MAX_STREAMS, MAX_STREAMS_PER_KEY
from ductape_jobs.logs import logger
from ductape_jobs.models import RunActivity

router = APIRouter(tags=["events"])
log = logger("ductape_jobs.api")

BATCH = 500  # events read per look at the outbox
LAST_EVENT_ID = "Last-Event-ID"


def _message(event: str, data: dict[str, object], event_id: str | None = None) -> str:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"


def _payload(activity: RunActivity, at: str) -> dict[str, object]:
    return {
        "at": at,
        "latest_run_id": activity.latest_run_id,
        "latest_finished_at": iso_text(activity.latest_finished_at) if activity.latest_finished_at else None,
        "running": activity.running,
        "queued": activity.queued,
    }


def lifecycle_data(event: LifecycleEvent) -> dict[str, Any]:
    """The ``data`` of an ``event: lifecycle`` message."""
    return {
        "name": event.name,
        "job_id": event.job_id,
        "run_id": event.run_id,
        "product_tag": event.product_tag,
        "at": iso_text(event.at),
        "payload": event.payload(),
    }


def reload_message(start: StreamStart, asked: StreamPosition) -> str:
    reason = (
        f"events after {asked} are no longer kept (pruned, or not recorded while no live stream was open): "
        "reload what you show; the stream goes on from the newest event"
    )
    return _message("reload", {"reason": reason, "last_event_id": str(asked)}, str(start.position))


class LiveStream:
    """One caller's stream: its place in the outbox (``position``), its lease, what it sent last."""

    def __init__(self, request: Request, me: Principal, start: StreamStart, name: str) -> None:
        self.request = request
        self.me = me
        self.name = name
        self.position = start.position
        self.settings = request.app.state.settings
        self.dt = client(request)
        self.lease = timedelta(seconds=self.settings.events_lease)
        self.renewed_at = self.dt.clock.now()

    async def renew(self, now: datetime) -> str | None:
        """Renew the lease (every third of it) with the position; a stream whose lease lapsed meanwhile opens
        again, from its position if it can (else the ``reload`` message it returns)."""
        if now - self.renewed_at < self.lease / 3:
            return None
        store = self.dt.store
        self.renewed_at = now
        if await call(store.renew_stream, self.name, self.position, now + self.lease, now):
            return None
        log.info("event stream: its lease lapsed; opening it again")
        asked = self.position
        start = await call(store.open_stream, self.name, asked, now + self.lease, now)
        self.position = start.position
        return reload_message(start, asked) if start.gap else None

    async def lifecycle(self) -> tuple[list[str], bool]:
        """The messages of the events after the position that the caller may see, and whether a batch was full
        (more are waiting)."""
        events = await call(self.dt.store.stream_events, self.position, BATCH)
        out: list[str] = []
        skipped = False
        for event in events:
            self.position = self.position.past(event)
            if self.me.sees(event.product_tag, str(event.values.get("env", ""))):
                out.append(_message("lifecycle", lifecycle_data(event), str(self.position)))
                skipped = False
            else:
                skipped = True
        if skipped:  # the browser's Last-Event-ID moves past the events it may not see
            out.append(f"id: {self.position}\n\n")
        return out, len(events) == BATCH


class OpenStreams:
    """How many live streams this server has open, in all and by API key (``MAX_STREAMS``, ``MAX_STREAMS_PER_KEY``)."""

    def __init__(self) -> None:
        self.by_key: Counter[str] = Counter()

    def refused(self, me: Principal) -> str | None:
        """Why another stream for ``me`` may not open now (``None``: it may)."""
        if self.by_key.total() >= MAX_STREAMS:
            return f"this server has {MAX_STREAMS} live event streams open, its most: try again later"
        if self.by_key[me.key.id] >= MAX_STREAMS_PER_KEY:
            return f"this API key has {MAX_STREAMS_PER_KEY} live event streams open, its most: close one first"
        return None

    def take(self, me: Principal) -> Callable[[], None]:
        """A place for a stream of ``me``, taken now (no ``await`` between the check and the count: requests that
        came together all passed the check before any of them was counted), or 429; returns its release, which
        may be called any number of times."""
        refused = self.refused(me)
        if refused is not None:
            raise HTTPException(429, refused)
        key = me.key.id
        self.by_key[key] += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.by_key[key] -= 1
            if not self.by_key[key]:
                del self.by_key[key]

        return release


class HeldStream(StreamingResponse):
    """A ``StreamingResponse`` that gives its stream's place back however it ends (its generator may never have run:
    a client gone before the first message)."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


async def stream(live: LiveStream, first: list[str]) -> AsyncIterator[str]:
    request, me, settings, dt = live.request, live.me, live.settings, live.dt
    stopping = request.app.state.stopping
    yield "retry: 2000\n\n" + "".join(first)
    last: RunActivity | None = None
    quiet = 0.0
    while not stopping.is_set():
        sent: list[str] = []
        more = False
        try:
            if not await still_authorized(request, me):
                log.info("event stream: its key was revoked or its session ended; closing it")
                return
            now = dt.clock.now()
            reload = await live.renew(now)
            sent += [reload] if reload else []
            messages, more = await live.lifecycle()
            sent += messages
            activity = await call(dt.store.run_activity, now, **me.scope())
            if activity != last:
                last = activity
                sent.append(_message("runs", _payload(activity, iso_text(to_ms(now)))))
        except StoreError as exc:
            log.warning("event stream: the store failed (%s); trying again", exc)
        if sent:  # one write: a message a write (up to 500 a poll) wrote them all to a client gone meanwhile, and
            yield "".join(sent)  # asyncio logged each write past the fifth (a soak: 47% of a serve log)
            quiet = 0.0
        elif quiet >= settings.events_keepalive:
            quiet = 0.0
            yield ": keep-alive\n\n"
        if not more:
            await asyncio.sleep(settings.events_poll)
            quiet += settings.events_poll


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}, **responses(429)},
    dependencies=[READ],
)
async def events(
    request: Request,
    me: Me,
    last_event_id: Annotated[
        str | None,
        Header(
            alias=LAST_EVENT_ID,
            description="the `id` of the last event received (a browser's EventSource sends it when it "
            "reconnects): the stream goes on after it",
        ),
    ] = None,
) -> StreamingResponse:
    """A Server-Sent Events stream: ``event: lifecycle`` for each lifecycle event of the caller's products (with
    its position as ``id``), ``event: runs`` whenever runs are created, start or end, and ``event: reload`` when
    a reconnect cannot resume (browsers: ``new EventSource("/api/v1/events", {withCredentials: true})`` after
    the dashboard's login)."""
    asked = StreamPosition.parse(last_event_id, LAST_EVENT_ID) if last_event_id else None
    release = request.app.state.open_streams.take(me)  # counted before the first await
    dt = client(request)
    now = dt.clock.now()
    name = f"dashboard:{uuid.uuid4().hex}"
    lease = timedelta(seconds=request.app.state.settings.events_lease)
    try:
        start = await call(dt.store.open_stream, name, asked, now + lease, now)
    except BaseException:
        release()
        raise
    first = [reload_message(start, asked)] if start.gap and asked is not None else []
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    live = LiveStream(request, me, start, name)
    return HeldStream(stream(live, first), release, media_type="text/event-stream", headers=headers)
