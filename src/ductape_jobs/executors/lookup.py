"""What every product-backed executor does first: find the run's product, env and event definition."""

from __future__ import annotations

from typing import Any

from ductape_jobs.errors import ExecutorNotFoundError, PipingFailure, PipingTooLarge, ValidationError
from ductape_jobs.executors.base import RunContext
from ductape_jobs.models import JobEventTypes, Run
from ductape_jobs.piping import has_placeholders, resolve
from ductape_jobs.products import EventRef, Products, expand
from ductape_jobs.products.model import ProductSpec
from ductape_jobs.redaction import connection_secrets


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
    ``limits.MAX_FILLED_BYTES`` of JSON filled in, past which the attempt fails for good (a definition that reads
    ``$Input{...}`` 1,000 times would send a thousand inputs)."""
    expanded = expand(value, where)
    if ctx.scope is None or not has_placeholders(expanded):  # nothing to fill in (a fresh copy, the caller's)
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


def connection_url(products: Products, product: ProductSpec, kind: str, tag: str, run: Run) -> str:
    """The URL of the product's database or broker ``tag`` (``kind``: ``database`` or ``broker``) for ``run.env``,
    ``${VAR}`` read. Its password is learned as one of the product's secrets before anything connects: a driver's
    error that quotes it is masked in whatever the run writes (a URL read from the environment only now was not
    known when the product was added)."""
    owners = product.databases if kind == "database" else product.brokers
    where = f"products.{product.tag}.{kind}s.{tag}.envs.{run.env}"
    url = str(expand(owner_env(owners[tag].envs, run, kind, tag), where))
    products.secrets.of(product.tag).learn(connection_secrets(url))
    return url


__all__ = ["JobEventTypes", "connection_url", "definition", "locate", "owner_env"]
