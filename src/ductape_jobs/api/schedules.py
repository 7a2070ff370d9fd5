"""``/api/v1/schedule``, ``/api/v1/schedules`` and ``/api/v1/preview``: scheduling jobs and controlling the
scheduled job instances (pause, resume, cancel, trigger, a new cadence)."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from ductape_jobs.answers import DispatchOut, JobHistoryOut, RunOut, ScheduleOut
from ductape_jobs.api.auth import READ, WRITE, Me, Principal
from ductape_jobs.api.common import (
    MAX_PAGE_BYTES,
    body_doc,
    body_list_doc,
    call,
    client,
    data_size,
    json_array,
    json_object,
    page_within_bytes,
    responses,
)
from ductape_jobs.api.schemas import DispatchList, Page, PreviewOut
from ductape_jobs.errors import ValidationError
from ductape_jobs.inputs import Count, RepeatOptions, ScheduleRequest, parse
from ductape_jobs.job_control import check_reason
from ductape_jobs.job_reports import HISTORY_LIMIT
from ductape_jobs.limits import MAX_BATCH, MAX_TEXT, check_page
from ductape_jobs.models import Schedule

router = APIRouter(tags=["schedules"])

_REPEAT_REF = WithJsonSchema({"x-ref": "RepeatOptions"})  # IJobRepeatOptions (common.add_body_schemas)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReasonRequest(_Body):
    """``{"reason": "..."}``, kept on the schedule (optional)."""

    reason: Annotated[str, Field(max_length=MAX_TEXT)] | None = None

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, value: object) -> object:
        """In the Python call's words (``job_control.check_reason``)."""
        try:
            check_reason(value)
        except ValidationError as exc:
            raise ValueError(exc.rule) from None
        return value


class EmptyRequest(_Body):
    """No fields (an empty object, or no body)."""


class PreviewRequest(_Body):
    """The next fire times of ``repeat`` (``IJobRepeatOptions``) from ``start`` (default now)."""

    repeat: Annotated[Any, _REPEAT_REF]  # validated by job.preview, which names its fields repeat.*
    start: Annotated[Any, WithJsonSchema({"type": ["integer", "number", "string", "null"]})] = Field(
        default=None, description="Unix seconds or ms, or ISO 8601; default now"
    )
    count: Count = Field(default=10, description="how many times, 1 to 10000")


async def visible_schedule(request: Request, me: Principal, job_id: str) -> Schedule:
    """The schedule, or 404 when it does not exist or this key does not see its product."""
    schedule = await call(client(request).job.get, job_id)
    me.check_visible(schedule.product_tag, schedule.env, "schedule", job_id)
    return schedule


@router.post(
    "/schedule",
    status_code=201,
    openapi_extra=body_doc(ScheduleRequest),
    responses=responses(403),
    dependencies=[WRITE],
)
async def schedule(request: Request, me: Me) -> DispatchOut:
    """Schedule the job ``event`` (``job.schedule``, the SDK's ``dispatch()``): now, at ``start_at``, or on
    ``repeat`` (cron in a time zone, or every N ms)."""
    body = await json_object(request)
    me.check_may_schedule(body)
    return DispatchOut.of(await call(client(request).job.schedule, body))


@router.post(
    "/schedule/batch",
    status_code=201,
    openapi_extra=body_list_doc(ScheduleRequest, max_items=MAX_BATCH),
    responses=responses(403),
    dependencies=[WRITE],
)
async def schedule_batch(request: Request, me: Me) -> DispatchList:
    """Schedule many jobs at once (``job.schedule_many``, bulk enqueue): the body is a JSON array of
    ``IJobProcessorInput``, at most 10,000 of them, stored in one transaction, all or nothing. A bad request
    answers 422 naming its index (``[2].start_at``) and nothing is stored; for a key limited to a product (or
    env), one for another answers 403 naming its index. Answers one dispatch result per request, in order."""
    batch = await json_array(request)
    for i, item in enumerate(batch):
        if isinstance(item, dict):
            me.check_may_schedule(item, at=f"[{i}]")
    results = await call(client(request).job.schedule_many, batch)
    return DispatchList(items=[DispatchOut.of(r) for r in results])


@router.get("/schedules", responses=responses(403), dependencies=[READ])
async def list_schedules(
    request: Request,
    me: Me,
    status: str | None = None,
    job_tag: str | None = None,
    product_tag: str | None = None,
    env: str | None = None,
    limit: int = 100,
    offset: int = 0,
    after: str | None = None,
) -> Page[ScheduleOut]:
    """Scheduled job instances, newest first (``status``: active, paused, cancelled, completed; ``product_tag``,
    ``env``: of that product, in that env; ``after``: a schedule's ``job_id``, the last of the page before: those
    past it, found by the index, where a deep ``offset`` counts every schedule before it; 422 when there is none)."""
    scope = me.narrowed(product_tag, env)
    fetch = functools.partial(
        client(request).job.list,
        status=status or None,
        job_tag=job_tag or None,
        product_tag=scope["product_tag"],
        env=scope["env"],
        after=after or None,
    )
    items, more = await page_within_bytes(fetch, limit, offset, lambda s: data_size(s.input))
    return Page[ScheduleOut](items=[ScheduleOut.of(s) for s in items], limit=limit, offset=offset, has_more=more)


@router.get("/schedules/{job_id}", responses=responses(404), dependencies=[READ])
async def get_schedule(request: Request, job_id: str, me: Me) -> ScheduleOut:
    """One scheduled job instance."""
    return ScheduleOut.of(await visible_schedule(request, me, job_id))


@router.get("/schedules/{job_id}/history", responses=responses(404), dependencies=[READ])
async def history(request: Request, job_id: str, me: Me, limit: int = HISTORY_LIMIT) -> JobHistoryOut:
    """The schedule's executions, newest first (at most ``limit``, 1 to 10000), each numbered from 1 in order of
    due time, with the total, successful and failed counts over all its runs (``job.history``). The executions stop
    once their results and errors pass about 8 MiB (``cut``: how many of ``limit`` were left out)."""
    check_page(limit)  # the query first, as job.history checks it (a 404 said nothing of the bad limit)
    await visible_schedule(request, me, job_id)
    return JobHistoryOut.of(await call(client(request).job.history, job_id, limit, max_bytes=MAX_PAGE_BYTES))


@router.post(
    "/schedules/{job_id}/pause",
    openapi_extra=body_doc(ReasonRequest, required=False),
    responses=responses(404),
    dependencies=[WRITE],
)
async def pause(request: Request, job_id: str, me: Me) -> ScheduleOut:
    """Pause: no new occurrence starts; runs already queued still run. Only an active schedule pauses."""
    body = parse(ReasonRequest, await json_object(request, optional=True))
    await visible_schedule(request, me, job_id)
    return ScheduleOut.of(await call(client(request).job.pause, job_id, body.reason))


@router.post(
    "/schedules/{job_id}/resume",
    openapi_extra=body_doc(EmptyRequest, required=False),
    responses=responses(404),
    dependencies=[WRITE],
)
async def resume(request: Request, job_id: str, me: Me) -> ScheduleOut:
    """Resume a paused schedule from now (occurrences that fell in the pause are skipped)."""
    parse(EmptyRequest, await json_object(request, optional=True))
    await visible_schedule(request, me, job_id)
    return ScheduleOut.of(await call(client(request).job.resume, job_id))


@router.post(
    "/schedules/{job_id}/cancel",
    openapi_extra=body_doc(ReasonRequest, required=False),
    responses=responses(404),
    dependencies=[WRITE],
)
async def cancel(request: Request, job_id: str, me: Me) -> ScheduleOut:
    """Cancel for good; its runs that have not started are cancelled too (running ones finish)."""
    body = parse(ReasonRequest, await json_object(request, optional=True))
    await visible_schedule(request, me, job_id)
    return ScheduleOut.of(await call(client(request).job.cancel, job_id, body.reason))


@router.post(
    "/schedules/{job_id}/trigger",
    openapi_extra=body_doc(EmptyRequest, required=False),
    responses=responses(404, 409),
    dependencies=[WRITE],
)
async def trigger(request: Request, job_id: str, me: Me) -> RunOut:
    """Run the schedule once now, outside its cadence (``triggered_by=manual``); answers the new run."""
    parse(EmptyRequest, await json_object(request, optional=True))
    await visible_schedule(request, me, job_id)
    return RunOut.of(await call(client(request).job.trigger, job_id))


@router.put(
    "/schedules/{job_id}/repeat", openapi_extra=body_doc(RepeatOptions), responses=responses(404), dependencies=[WRITE]
)
async def reschedule(request: Request, job_id: str, me: Me) -> ScheduleOut:
    """A new cadence from now (``job.reschedule``): the body is ``IJobRepeatOptions``."""
    body = await json_object(request)
    parse(RepeatOptions, body, prefix="repeat")  # the body first, as job.reschedule checks it
    await visible_schedule(request, me, job_id)
    return ScheduleOut.of(await call(client(request).job.reschedule, job_id, body))


@router.post("/preview", openapi_extra=body_doc(PreviewRequest), responses=responses(), dependencies=[READ])
async def preview(request: Request, me: Me) -> PreviewOut:
    """The next fire times of a cadence, stored nowhere (``job.preview``)."""
    req = parse(PreviewRequest, await json_object(request))
    return PreviewOut(times=await call(client(request).job.preview, req.repeat, req.start, req.count))
