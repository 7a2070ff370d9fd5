"""``/api/v1/resources``: what the shared resources' limits hold now (``ductape.resources``), and the runs
they hold back. A key limited to a product sees that product's resources and runs only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ductape_jobs.answers import RunOut
from ductape_jobs.api.auth import READ, Me
from ductape_jobs.api.common import call, client, responses
from ductape_jobs.resources import ResourceUse

router = APIRouter(tags=["resources"], dependencies=[READ])


class ResourceOut(BaseModel):
    """A limit (a product's resource, or a job's own ``job:<tag>``) and its use now."""

    product_tag: str | None = Field(description="its product; null: a shared job's own limit (as a job says it)")
    name: str
    concurrency: int | None = Field(description="runs executing at once, at most; null: no such limit")
    rate: str | None = Field(description="runs started per window, at most ('10/s'); null: no such limit")
    running: int = Field(description="its runs executing now")
    recent_starts: int = Field(description="its runs started within the rate's window before now")
    waiting: int = Field(description="its runs due now and not started")

    @classmethod
    def of(cls, use: ResourceUse) -> ResourceOut:
        limit = use.limit
        return cls(
            product_tag=limit.product_tag or None,
            name=limit.name,
            concurrency=limit.concurrency,
            rate=None if limit.rate is None else str(limit.rate),
            running=use.running,
            recent_starts=use.recent_starts,
            waiting=use.waiting,
        )


class ResourceList(BaseModel):
    items: list[ResourceOut]


class WaitingList(BaseModel):
    items: list[RunOut] = Field(description="due runs a limit holds (waiting_on names it), in claim order")


@router.get("/resources", responses=responses())
async def list_resources(request: Request, me: Me, product_tag: str | None = None) -> ResourceList:
    """Every resource's limits and current use: runs executing, starts in the rate window, runs waiting."""
    wanted = me.narrowed(product_tag, None)["product_tag"]
    found = await call(client(request).resources.use, wanted)
    return ResourceList(items=[ResourceOut.of(u) for u in found])


@router.get("/resources/waiting", responses=responses())
async def waiting_runs(request: Request, me: Me, product_tag: str | None = None, limit: int = 100) -> WaitingList:
    """Due runs held back by a limit, each with ``waiting_on`` naming the limit, in the order they will start."""
    wanted = me.narrowed(product_tag, None)["product_tag"]
    found = await call(client(request).resources.waiting, wanted, limit)
    env = me.scope()["env"]
    return WaitingList(items=[RunOut.of(r) for r in found if env is None or r.env == env])
