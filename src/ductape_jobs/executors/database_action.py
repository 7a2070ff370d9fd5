"""DATABASE_ACTION events: a named, parameterised SQL statement against the env's database."""

from __future__ import annotations

import asyncio
from typing import Any

from ductape_jobs.executors.base import RunContext
from ductape_jobs.executors.databases import DatabasePool, Statement, run_statement
from ductape_jobs.executors.lookup import connection_url, locate
from ductape_jobs.models import JobEventTypes, Run
from ductape_jobs.products import Products


class DatabaseActionExecutor:
    """Input values (``{data, filter}``) are always bound as parameters, never spliced into the SQL."""

    event_type = JobEventTypes.DATABASE_ACTION

    def __init__(self, products: Products) -> None:
        self.products = products
        self.pool = DatabasePool()  # owned: closed by close() (the client's close, or the end of a drain)

    async def execute(self, run: Run, ctx: RunContext) -> Any:
        product, ref = locate(self.products, run, ctx)
        assert ref.owner is not None
        url = connection_url(self.products, product, "database", ref.owner, run)
        action = product.databases[ref.owner].actions[ref.name]
        return await run_statement(url, Statement(action.sql), ctx.input, timeout=action.timeout, pool=self.pool)

    async def close(self) -> None:
        await asyncio.to_thread(self.pool.close)
