"""``/api/v1/jobs``: job definitions (``IProductJob``). A job belongs to a product (``product_tag``) or is
shared by every product (none). ``?product_tag=`` names the product whose jobs a call manages, as the seeds'
``ductape.product.jobs``; a key limited to a product manages that product's jobs (and reads the shared ones),
and only a key not limited to a product changes a shared job. A job definition covers every env of its product (deleting
it cancels its schedules in each, changing it changes their cadence): only a key not limited to an env changes one."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request, Response

from ductape_jobs.answers import JobOut
from ductape_jobs.api.auth import READ, WRITE, Me, Principal
from ductape_jobs.api.common import body_doc, call, client, json_object, responses
from ductape_jobs.api.schemas import JobList
from ductape_jobs.errors import ValidationError
from ductape_jobs.inputs import JobDefinition, JobUpdate
from ductape_jobs.jobs import Jobs

router = APIRouter(tags=["jobs"])

ProductQuery = Query(
    default=None,
    description="the product whose jobs to manage (as ductape.product(tag).jobs); a product-limited key: its own",
)


def _jobs(request: Request, me: Principal, product_tag: str | None) -> Jobs:
    """The jobs this call manages: a product's (named, or the key's own product), else the client's."""
    mine = me.product_tag
    if mine is not None and product_tag not in (None, mine):
        raise HTTPException(403, f"this API key may only manage the jobs of product {mine!r}")
    chosen = product_tag or mine
    dt = client(request)
    return dt.job if chosen is None else dt.product(chosen).jobs


def _check_every_env(me: Principal) -> None:
    if me.env is not None:
        raise HTTPException(
            403, "a job definition covers every env of its product: use a key that is not limited to an env"
        )


def _check_may_change(me: Principal, job: JobDefinition) -> None:
    _check_every_env(me)
    if me.product_tag is not None and job.product_tag != me.product_tag:
        raise HTTPException(
            403, f"job {job.tag!r} is shared by every product: only a key not limited to a product changes it"
        )


@router.post(
    "/jobs", status_code=201, openapi_extra=body_doc(JobDefinition), responses=responses(403, 409), dependencies=[WRITE]
)
async def create_job(request: Request, me: Me, product_tag: str | None = ProductQuery) -> JobOut:
    """Create a job definition (``job.create``): name, tag, event_type, event_tag, executions, intervals (ms),
    and the ``product_tag`` it belongs to (in the body or the query; none: a job shared by every product)."""
    body = await json_object(request)
    _check_every_env(me)
    given = body.get("product_tag")
    if isinstance(given, str) and product_tag is not None and given != product_tag:
        raise ValidationError("product_tag", f"the body says {given!r}, the query {product_tag!r}")
    jobs = _jobs(request, me, product_tag or (given if isinstance(given, str) else None))
    return JobOut.of(await call(jobs.create, body))


@router.get("/jobs", responses=responses(403), dependencies=[READ])
async def list_jobs(request: Request, me: Me, product_tag: str | None = ProductQuery) -> JobList:
    """Job definitions by tag: one product's (and, for a product-limited key, the shared ones it may run), or
    every job."""
    jobs = _jobs(request, me, product_tag)
    if me.product_tag is None:
        found = await call(jobs.fetch_all)
    else:
        every = await call(client(request).job.fetch_all)
        found = [j for j in every if j.product_tag in (None, me.product_tag)]
    return JobList(items=[JobOut.of(j) for j in found])


@router.get("/jobs/{tag}", responses=responses(403, 404), dependencies=[READ])
async def get_job(request: Request, tag: str, me: Me, product_tag: str | None = ProductQuery) -> JobOut:
    """One job definition (``job.fetch``): with a product, its own job of that tag, else the shared one."""
    return JobOut.of(await call(_jobs(request, me, product_tag).fetch, tag))


@router.patch("/jobs/{tag}", openapi_extra=body_doc(JobUpdate), responses=responses(403, 404), dependencies=[WRITE])
async def update_job(request: Request, tag: str, me: Me, product_tag: str | None = ProductQuery) -> JobOut:
    """Change some fields of a job (``job.update``); the tag and product stay. Schedules that follow the job's
    cadence take the new one."""
    body = await json_object(request)
    jobs = _jobs(request, me, product_tag)
    _check_may_change(me, await call(jobs.fetch, tag))  # 404 before validating the changes
    return JobOut.of(await call(jobs.update, tag, body))


@router.delete("/jobs/{tag}", status_code=204, responses=responses(403, 404, 409), dependencies=[WRITE])
async def delete_job(request: Request, tag: str, me: Me, product_tag: str | None = ProductQuery) -> Response:
    """Delete a job definition; its active or paused schedules are cancelled first (their history stays)."""
    jobs = _jobs(request, me, product_tag)
    _check_may_change(me, await call(jobs.fetch, tag))
    await call(jobs.delete, tag)
    return Response(status_code=204)
