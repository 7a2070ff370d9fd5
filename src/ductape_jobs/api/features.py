"""``/api/v1/features``: run a product's feature now (``ductape.feature.run``), list feature runs
(``feature.runs``), read one back with each event's result (``feature.get``), carry on an unfinished one
(``feature.resume``) and run a failed one again (``feature.retry``). A key limited to a product (and env) may run
only that product's features and sees only its runs (another's answers 404)."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ductape_jobs.answers import FeatureRunOut
from ductape_jobs.api.auth import READ, WRITE, Me, Principal
from ductape_jobs.api.common import body_doc, call, client, data_size, json_object, page_within_bytes, responses
from ductape_jobs.api.schedules import EmptyRequest
from ductape_jobs.api.schemas import Page
from ductape_jobs.errors import ValidationError
from ductape_jobs.features import FeatureRun
from ductape_jobs.inputs import Session, parse

router = APIRouter(tags=["features"])


class FeatureRunRequest(BaseModel):
    """What ``POST /features/{tag}/run`` takes (``ductape.feature.run``'s arguments)."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(min_length=1)
    product_tag: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict, description="the feature's input (its schema applies)")
    session: Session | str | None = Field(default=None, description="a session token: 'tag:jwt' or {tag, token}")


@router.post(
    "/features/{tag}/run", openapi_extra=body_doc(FeatureRunRequest), responses=responses(403), dependencies=[WRITE]
)
async def run_feature(request: Request, tag: str, me: Me) -> FeatureRunOut:
    """Run feature ``tag`` now and answer with the finished run (``status`` completed or failed, each event's
    result). Bad input answers 422 and stores nothing."""
    body = await json_object(request)
    me.check_may_schedule(body)
    unknown = sorted(set(body) - set(FeatureRunRequest.model_fields))
    if unknown:
        raise ValidationError(unknown[0] or "body", "is not a known field")  # as invalid() names a key of no name
    for field in ("env", "product_tag"):
        if not isinstance(body.get(field), str) or not body[field].strip():
            raise ValidationError(field, "is required (a non-empty string)")
    run = await call(
        client(request).feature.run,
        tag,
        env=body["env"],
        product_tag=body["product_tag"],
        input=body.get("input"),
        session=body.get("session"),
    )
    return FeatureRunOut.of(run)


async def visible_feature_run(request: Request, me: Principal, run_id: str) -> FeatureRun:
    """The feature run, or 404 when it does not exist or this key does not see its product."""
    run = await call(client(request).feature.get, run_id)
    me.check_visible(run.product_tag, run.env, "feature run", run_id)
    return run


@router.get("/features/runs", responses=responses(403), dependencies=[READ])
async def list_feature_runs(
    request: Request,
    me: Me,
    feature_tag: str | None = None,
    status: str | None = None,
    product_tag: str | None = None,
    env: str | None = None,
    limit: int = 100,
    offset: int = 0,
    after: str | None = None,
) -> Page[FeatureRunOut]:
    """Feature runs, newest first (``feature.runs``; ``status``: running, completed or failed; ``product_tag``,
    ``env``: of that product, in that env; ``after``: a feature run's id, the last of the page before: the runs past
    it, found by the index where a deep ``offset`` counts every run before it; 422 when there is no such run). Their
    events are left out (``GET /features/runs/{run_id}`` has them)."""
    scope = me.narrowed(product_tag, env)
    fetch = functools.partial(
        client(request).feature.runs,
        feature_tag=feature_tag or None,
        status=status or None,
        product_tag=scope["product_tag"],
        env=scope["env"],
        after=after or None,
    )
    items, more = await page_within_bytes(fetch, limit, offset, lambda r: data_size(r.input, r.session, r.error))
    return Page[FeatureRunOut](items=[FeatureRunOut.of(r) for r in items], limit=limit, offset=offset, has_more=more)


@router.get("/features/runs/{run_id}", responses=responses(404), dependencies=[READ])
async def get_feature_run(request: Request, run_id: str, me: Me) -> FeatureRunOut:
    """One feature run with each event's result."""
    return FeatureRunOut.of(await visible_feature_run(request, me, run_id))


@router.post("/features/runs/{run_id}/resume", responses=responses(404, 409), dependencies=[WRITE])
async def resume_feature_run(request: Request, run_id: str, me: Me) -> FeatureRunOut:
    """Carry on an unfinished run (its driver died) from the first event that had not finished, and answer with
    the finished run (``feature.resume``). A finished run is answered as it is; 409 while another driver's lease
    on it has not expired."""
    parse(EmptyRequest, await json_object(request, optional=True))
    await visible_feature_run(request, me, run_id)
    return FeatureRunOut.of(await call(client(request).feature.resume, run_id))


@router.post("/features/runs/{run_id}/retry", responses=responses(404, 409), dependencies=[WRITE])
async def retry_feature_run(request: Request, run_id: str, me: Me) -> FeatureRunOut:
    """Run a failed run again (``feature.retry``): its failed and skipped events run, completed ones are kept;
    answers with the finished run. 409 unless the run failed."""
    parse(EmptyRequest, await json_object(request, optional=True))
    await visible_feature_run(request, me, run_id)
    return FeatureRunOut.of(await call(client(request).feature.retry, run_id))
