"""What every product-backed executor does first: find the run's product, env and event definition."""

from __future__ import annotations

from typing import Any

from ductape_jobs.errors import ExecutorNotFoundError, PipingFailure, PipingTooLarge, ValidationError
from ductape_jobs.executors.base import RunContext
from ductape_jobs.models import JobEventTypes, Run
from ductape_jobs.piping import resolve
from ductape_jobs.products import EventRef, Products, expand
from ductape_jobs.products.model import ProductSpec


def locate(products: Products, run: Run, ctx: RunContext) -> tuple[ProductSpec, EventRef]:
    """The product and event of ``run``; a permanent failure when this worker does not know them."""
    product = ctx.product
    if product is None:
        raise ExecutorNotFoundError(
            f"product {run.product_tag!r} is not configured in this worker: load its product file "
            f"(Ductape(..., product_file=...)) to run {run.event_type.name} events"
        )
    if run.env not in product.envs:
        raise ExecutorNotFoundError(f"product {product.tag!r} has no env {run.env!r}")
    try:
        return product, products.locate(product, run.event_type, run.event_tag, run.app)
    except ValidationError as exc:
        raise ExecutorNotFoundError(exc.rule) from None


def definition(value: Any, ctx: RunContext, where: str) -> Any:
    """An event definition with ``${VAR}`` read from the environment and data piping resolved: at most
    ``limits.MAX_INPUT_BYTES`` of JSON filled in, past which the attempt fails for good (a definition that reads
    ``$Input{...}`` 1,000 times would send a thousand inputs)."""
    expanded = expand(value, where)
    if ctx.scope is None:
        return expanded
    try:
        return resolve(expanded, ctx.scope)
    except PipingTooLarge as exc:
        raise PipingFailure(f"{where}: {exc}") from None


def owner_env(mapping: dict[str, Any], run: Run, kind: str, tag: str) -> Any:
    try:
        return mapping[run.env]
    except KeyError:
        raise ExecutorNotFoundError(f"{kind} {tag!r} has no settings for env {run.env!r}") from None


__all__ = ["JobEventTypes", "definition", "locate", "owner_env"]
