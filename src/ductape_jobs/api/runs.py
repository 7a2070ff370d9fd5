"""``/api/v1/runs``: run history, one run with its attempts, and retrying a failed or cancelled run."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request

from ductape_jobs.answers import RunOut
from ductape_jobs.api.auth import READ, WRITE, Me, Principal
from ductape_jobs.api.common import body_doc, call, client, data_size, json_object, page_within_bytes, responses
from ductape_jobs.api.schedules import EmptyRequest
from ductape_jobs.api.schemas import Page
from ductape_jobs.inputs import parse
from ductape_jobs.models import Run

router = APIRouter(tags=["runs"])


async def visible_run(request: Request, me: Principal, run_id: str) -> Run:
    """The run with its attempts, or 404 when it does not exist or this key does not see its product."""
    run = await call(client(request).job.run, run_id)
    me.check_visible(run.product_tag, run.env, "run", run_id)
    return run


@router.get("/runs", responses=responses(403), dependencies=[READ])
async def list_runs(
    request: Request,
    me: Me,
    phase: str | None = None,
    job_id: str | None = None,
    job_tag: str | None = None,
    since: str | None = None,
    until: str | None = None,
    product_tag: str | None = None,
    env: str | None = None,
    limit: int = 100,
    offset: int = 0,
    after: str | None = None,
) -> Page[RunOut]:
    """Runs, newest due time first. ``phase``: ``failed`` lists the dead letters; ``since``/``until``:
    due-time bounds, Unix seconds or ms, or ISO 8601; ``product_tag``, ``env``: of that product, in that env;
    ``after``: a run's id, the last of the page before: the runs past it (found by the index, where a deep
    ``offset`` counts every run before it; 422 when there is no such run). Attempts are left out (``GET
    /runs/{run_id}`` has them)."""
    scope = me.narrowed(product_tag, env)
    fetch = functools.partial(
        client(request).job.runs,
        phase=phase or None,
        job_id=job_id or None,
        job_tag=job_tag or None,
        since=since or None,
        until=until or None,
        product_tag=scope["product_tag"],
        env=scope["env"],
        after=after or None,
    )
    items, more = await page_within_bytes(
        fetch, limit, offset, lambda r: data_size(r.input, r.output, r.session, r.error)
    )
    return Page[RunOut](items=[RunOut.of(r) for r in items], limit=limit, offset=offset, has_more=more)


@router.get("/runs/{run_id}", responses=responses(404), dependencies=[READ])
async def get_run(request: Request, run_id: str, me: Me) -> RunOut:
    """One run with its attempts (worker, start, end, outcome, error), timings and output."""
    return RunOut.of(await visible_run(request, me, run_id))


@router.post(
    "/runs/{run_id}/retry",
    openapi_extra=body_doc(EmptyRequest, required=False),
    responses=responses(404, 409),
    dependencies=[WRITE],
)
async def retry_run(request: Request, run_id: str, me: Me) -> RunOut:
    """One more attempt of a failed or cancelled run, now (409 in any other phase)."""
    parse(EmptyRequest, await json_object(request, optional=True))  # a field it does not take: 422, nothing done
    await visible_run(request, me, run_id)
    return RunOut.of(await call(client(request).job.retry, run_id))
