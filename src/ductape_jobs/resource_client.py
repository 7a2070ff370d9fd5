"""``ductape.resources``: what the shared resources' limits hold now (``resources.py``).

``use()`` lists each stored limit (a product's resource, or a job's own ``concurrency``/``rate``) with its runs
executing, its starts in the current rate window and its due runs waiting; ``waiting()`` lists the due runs a
limit holds, each naming the limit (``Run.waiting_on``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ductape_jobs.limits import check_page
from ductape_jobs.models import Run, check_tag
from ductape_jobs.resources import ResourceUse

if TYPE_CHECKING:
    from ductape_jobs.clock import Clock
    from ductape_jobs.store.limits import LimitsStore


class Resources:
    """``ductape.resources``: reads of the store's limits, as of the clock's now."""

    def __init__(self, store: LimitsStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def use(self, product_tag: str | None = None) -> list[ResourceUse]:
        """Every stored limit (of one product), with how much of it is taken now."""
        product = None if product_tag is None else check_tag(product_tag, "product_tag")
        return self._store.resource_use(self._clock.now(), product)

    def waiting(self, product_tag: str | None = None, limit: int = 100) -> list[Run]:
        """Due runs held by a limit at the last claim, in the order they will be claimed."""
        product = None if product_tag is None else check_tag(product_tag, "product_tag")
        check_page(limit)
        return self._store.waiting_runs(self._clock.now(), product, limit)


class AsyncResources:
    """``await ductape.resources.use(...)`` / ``waiting(...)`` on an ``AsyncDuctape``: ``Resources``' methods."""

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def use(self, product_tag: str | None = None) -> list[ResourceUse]:
        return await asyncio.to_thread(self._resources.use, product_tag)

    async def waiting(self, product_tag: str | None = None, limit: int = 100) -> list[Run]:
        return await asyncio.to_thread(self._resources.waiting, product_tag, limit)
