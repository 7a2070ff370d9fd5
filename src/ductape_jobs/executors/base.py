"""The executor protocol and the context a run's event receives."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from msgspec import Struct, field

from ductape_jobs.logs import logger
from ductape_jobs.models import JobEventTypes, Run

if TYPE_CHECKING:
    from ductape_jobs.piping import Scope
    from ductape_jobs.products.model import ProductSpec
else:  # what help() and inspect.signature() resolve RunContext's fields to (msgspec reads the annotations then):
    ProductSpec = Scope = Any  # a product's model (pydantic) is not loaded for them, nor piping before its time


RUN_LOG = logger("ductape_jobs.run")


class RunContext(Struct, frozen=True):
    """What an event knows about the run it serves (the second argument of a FUNCTION)."""

    run_id: str
    job_id: str
    job_tag: str
    env: str
    product_tag: str
    event_tag: str
    attempt: int
    retry_count: int
    max_retries: int
    scheduled_at: datetime
    app: str | None = None
    input: dict[str, Any] = field(default_factory=dict)  # the run's input, data piping resolved
    product: ProductSpec | None = None
    scope: Scope | None = None  # what $Input/$Session/$Variable/... resolve against for the event's definition
    logger: logging.Logger = RUN_LOG

    @classmethod
    def of(
        cls,
        run: Run,
        input: dict[str, Any] | None = None,
        product: ProductSpec | None = None,
        scope: Scope | None = None,
    ) -> RunContext:
        return cls(
            run_id=run.id,
            job_id=run.job_id,
            job_tag=run.job_tag,
            env=run.env,
            product_tag=run.product_tag,
            event_tag=run.event_tag,
            attempt=run.attempt,
            retry_count=run.retry_count,
            max_retries=run.max_retries,
            scheduled_at=run.scheduled_at,
            app=run.app,
            input=run.input if input is None else input,
            product=product,
            scope=scope,
        )


class Executor(Protocol):
    """Runs events of one type. Raise to fail the attempt (``ExecutionError.retryable`` decides retries);
    return a JSON-serialisable value to keep as the run's output."""

    event_type: JobEventTypes

    async def execute(self, run: Run, ctx: RunContext) -> Any: ...


@runtime_checkable
class Closable(Protocol):
    """An executor that holds connections (an HTTP client, broker connections, a database pool). Its owner
    (``ExecutorRegistry.aclose``) closes it in the event loop it was used in."""

    async def close(self) -> None: ...
