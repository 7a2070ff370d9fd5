"""``/api/v1/jobs``: job definitions (``IProductJob``), shared by every product."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ductape_jobs.api.auth import READ, WRITE, Me
from ductape_jobs.api.common import body_doc, call, client, json_object, responses
from ductape_jobs.api.schemas import JobList, JobOut
from ductape_jobs.models import JobDefinition, JobUpdate

router = APIRouter(tags=["jobs"])


@router.post(
    "/jobs", status_code=201, openapi_extra=body_doc(JobDefinition), responses=responses(403, 409), dependencies=[WRITE]
)
async def create_job(request: Request, me: Me) -> JobOut:
    """Create a job definition (``job.create``): name, tag, event_type, event_tag, executions, intervals (ms)."""
    body = await json_object(request)
    me.check_unlimited("creating a job definition")
    return JobOut.of(await call(client(request).job.create, body))


@router.get("/jobs", responses=responses(), dependencies=[READ])
async def list_jobs(request: Request, me: Me) -> JobList:
    """Every job definition, by tag."""
    return JobList(items=[JobOut.of(j) for j in await call(client(request).job.fetch_all)])


@router.get("/jobs/{tag}", responses=responses(404), dependencies=[READ])
async def get_job(request: Request, tag: str, me: Me) -> JobOut:
    """One job definition (``job.fetch``)."""
    return JobOut.of(await call(client(request).job.fetch, tag))


@router.patch("/jobs/{tag}", openapi_extra=body_doc(JobUpdate), responses=responses(403, 404), dependencies=[WRITE])
async def update_job(request: Request, tag: str, me: Me) -> JobOut:
    """Change some fields of a job (``job.update``); the tag stays. Schedules that follow the job's cadence
    take the new one."""
    body = await json_object(request)
    me.check_unlimited("changing a job definition")
    dt = client(request)
    await call(dt.job.fetch, tag)  # 404 before validating the changes
    return JobOut.of(await call(dt.job.update, tag, body))


@router.delete("/jobs/{tag}", status_code=204, responses=responses(403, 404, 409), dependencies=[WRITE])
async def delete_job(request: Request, tag: str, me: Me) -> Response:
    """Delete a job definition; 409 while an active or paused schedule uses it (cancel those first)."""
    me.check_unlimited("deleting a job definition")
    await call(client(request).job.delete, tag)
    return Response(status_code=204)
