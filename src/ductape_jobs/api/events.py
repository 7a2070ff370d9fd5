"""``/api/v1/events``: Server-Sent Events, so a dashboard refreshes when runs change.

The stream polls the store every ``events_poll`` (1 s) for a cheap fingerprint of the runs (the newest run,
the latest end, how many are running and waiting; ``Store.run_activity``) and sends ::

    event: runs
    data: {"at": "...", "latest_run_id": "...", "latest_finished_at": "...", "running": 1, "queued": 0}

once at the start and whenever the fingerprint changes, and a ``: keep-alive`` comment when nothing happened
for ``events_keepalive`` (15 s). A key limited to a product gets that product's fingerprint. At every poll the
stream also checks that its caller may still call: it ends once its key is revoked, or its login session
ended or expired.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ductape_jobs.api.auth import READ, Me, Principal, still_authorized
from ductape_jobs.api.common import call, client, responses
from ductape_jobs.errors import StoreError
from ductape_jobs.models import RunActivity

router = APIRouter(tags=["events"])
log = logging.getLogger("ductape_jobs.api")


def _message(event: str, data: dict[str, object]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _payload(activity: RunActivity, at: str) -> dict[str, object]:
    return {
        "at": at,
        "latest_run_id": activity.latest_run_id,
        "latest_finished_at": activity.latest_finished_at.isoformat() if activity.latest_finished_at else None,
        "running": activity.running,
        "queued": activity.queued,
    }


async def stream(request: Request, me: Principal) -> AsyncIterator[str]:
    settings = request.app.state.settings
    stopping = request.app.state.stopping
    dt = client(request)
    yield "retry: 2000\n\n"
    last: RunActivity | None = None
    quiet = 0.0
    while not stopping.is_set():
        try:
            if not await still_authorized(request, me):
                log.info("event stream: its key was revoked or its session ended; closing it")
                return
        except StoreError as exc:
            log.warning("event stream: the store failed (%s); trying again", exc)
        now = dt.clock.now()
        activity: RunActivity | None = last
        try:
            activity = await call(dt.store.run_activity, now, **me.scope())
        except StoreError as exc:
            log.warning("event stream: the store failed (%s); trying again", exc)
        if activity is not None and activity != last:
            last, quiet = activity, 0.0
            yield _message("runs", _payload(activity, now.isoformat()))
        elif quiet >= settings.events_keepalive:
            quiet = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(settings.events_poll)
        quiet += settings.events_poll


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}, **responses()},
    dependencies=[READ],
)
async def events(request: Request, me: Me) -> StreamingResponse:
    """A Server-Sent Events stream: ``event: runs`` whenever runs are created, start or end (browsers:
    ``new EventSource("/api/v1/events", {withCredentials: true})`` after the dashboard's login)."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(request, me), media_type="text/event-stream", headers=headers)
