"""What every product-backed executor does first: find the run's product, env and event definition."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from ductape_jobs.errors import ExecutorNotFoundError, HttpError, PipingFailure, PipingTooLarge, ValidationError
from ductape_jobs.executors.base import RunContext
from ductape_jobs.limits import path_segment
from ductape_jobs.models import JobEventTypes, Run
from ductape_jobs.piping import has_placeholders, parse, render, resolve
from ductape_jobs.piping.grammar import Node, iter_references
from ductape_jobs.products import EventRef, Products, expand
from ductape_jobs.products.model import ProductSpec
from ductape_jobs.redaction import URL_SCHEME, connection_secrets


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


def definition(value: Any, ctx: RunContext, where: str, *, each: Callable[[Node, str], str] | None = None) -> Any:
    """An event definition with ``${VAR}`` read from the environment and data piping resolved: at most
    ``limits.MAX_FILLED_BYTES`` of JSON filled in, past which the attempt fails for good (a definition that reads
    ``$Input{...}`` 1,000 times would send a thousand inputs). ``each``: ``value`` is one text, each placeholder's
    value in it as ``each`` makes it (``piping.render``)."""
    if ctx.scope is None or not has_placeholders(value):  # nothing to fill in (a fresh copy, the caller's)
        return expand(value, where)
    expanded = expand(value, where, as_data=True)  # the environment's values are data, never placeholders
    try:
        return resolve(expanded, ctx.scope) if each is None else render(parse(expanded), ctx.scope, each=each)
    except PipingTooLarge as exc:
        raise PipingFailure(f"{where}: {exc}") from None


#: What a placeholder reads that others than the product's owner wrote: a caller's input and session, an earlier
#: event's answer. Filling an ACTION's path, such a value is one segment (``path_of``).
DATA_SOURCES = frozenset({"Input", "Session", "Sequence"})


def reads_data(template: Any) -> bool:
    """Whether a text of ``template`` (a text, or a list of them) has a placeholder reading ``DATA_SOURCES``."""
    texts = template if isinstance(template, list) else [template]
    return any(
        reads_data_node(part) for text in texts if isinstance(text, str) and "$" in text for part in parse(text).parts
    )


def path_of(template: str, ctx: RunContext, where: str) -> str:
    """An ACTION's ``path`` as ``definition`` makes a value, each placeholder that reads ``DATA_SOURCES`` filling one
    segment (``limits.path_segment``: URL-encoded, ``/`` too; ``.`` and ``..`` fail the attempt for good): a path
    that piped ``$Input{user}`` sent ``../../admin/export?all=1#`` as written, leaving the action's path with its
    auth. The owner's own values (``$Secret``, ``$Variable``, ``$Constant``: Telegram's ``/bot<token>/``) stay as
    written."""

    def segment(placeholder: Node, text: str) -> str:
        return path_segment(text, where) if reads_data_node(placeholder) else text

    try:
        return str(definition(template, ctx, where, each=segment))
    except ValidationError as exc:
        raise HttpError(str(exc), retryable=False) from None


def reads_data_node(placeholder: Node) -> bool:
    """Whether ``placeholder`` reads ``DATA_SOURCES`` (a caller's or an earlier event's data), in a function's too."""
    return any(ref.source in DATA_SOURCES for ref in iter_references(placeholder))


#: What a value piped into a URL's scheme or authority may be: a host name's labels (or a port's digits, a user's
#: name). ``:``, ``/``, ``@``, ``?``, ``#`` or ``%`` would change which host a request goes to.
_HOST_PART = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


class Target(NamedTuple):
    """A URL the engine sends to (``url_of``), and whether the caller chose its host (``chosen``): the whole URL is one
    placeholder reading ``DATA_SOURCES`` (``$Input{callback_url}``), or its host holds such a placeholder
    (``http://$Input{host}:8080/x``, ``https://$Input{tenant}.example.com``, ``http://api.$Input{domain}``: the caller's
    labels, with a wildcard DNS name or the caller's own domain, name any address). Such a request is sent only to
    an address the network guard allows (``targets.TargetPolicy``, webhooks' allowlist), as a webhook is; a host
    the owner wrote whole is the owner's, loopback or private, whatever port or user part the caller gives."""

    url: str
    chosen: bool


def url_of(template: str, ctx: RunContext, where: str) -> Target:
    """A URL the engine sends to (an app's ``base_url``, a callback's, a push or SMS provider's ``url``) as
    ``definition`` makes a value, each placeholder that reads ``DATA_SOURCES``: in the path, the query or the
    fragment, one segment (``path_of``'s rule); in the scheme or the authority, a host name's labels
    (``_HOST_PART``: ``tenant-1``, ``eu.api``; a value that would add a port, a user part or a path fails the attempt
    for good). A ``base_url`` of ``http://$Input{tenant}.example.com`` given ``127.0.0.1:8080/x?#`` sent the app's
    auth to the host the input named (a security probe). A URL that is one placeholder and nothing else is the
    caller's to give, whole (``$Input{callback_url}``), within the network guard (``Target``)."""
    parsed = parse(template) if "$" in template else None
    whole = parsed.whole if parsed is not None else None
    if whole is not None and reads_data_node(whole):
        return Target(str(definition(template, ctx, where)), chosen=True)
    filled: list[str] = []

    def mark(placeholder: Node, text: str) -> str:
        if not reads_data_node(placeholder):
            return text
        filled.append(text)
        return f"\x00{len(filled) - 1}\x00"

    marked = str(definition(template, ctx, where, each=mark))
    start = marked.find("://") + 3 if "://" in marked else 0
    authority_end = min((i for i in (marked.find(c, start) for c in "/?#") if i >= 0), default=len(marked))
    authority = marked[start:authority_end]
    host_start = start + authority.rfind("@") + 1  # after a user part
    port = authority.rfind(":")
    host_end = start + port if port > max(authority.rfind("]"), host_start - start - 1) else authority_end
    out: list[str] = []
    pos = 0
    chosen = False  # a placeholder in the host (not the user part, not the port: the host stays the owner's)
    for match in re.finditer(r"\x00(\d+)\x00", marked):
        text = filled[int(match.group(1))]
        if match.start() < authority_end:
            chosen = chosen or host_start <= match.start() < host_end
            if not _HOST_PART.fullmatch(text):
                raise HttpError(
                    f"{where}: a value piped into the URL's host must be a host name's labels (letters, digits, "
                    "'-' and '.'): it would change where the request goes",
                    retryable=False,
                )
            value = text
        else:
            try:
                value = path_segment(text, where)
            except ValidationError as exc:
                raise HttpError(str(exc), retryable=False) from None
        out.append(marked[pos : match.start()] + value)
        pos = match.end()
    return Target("".join(out) + marked[pos:], chosen=chosen)


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
    if not URL_SCHEME.match(url):  # read from the environment: the product could not check it (the value unquoted)
        raise ExecutorNotFoundError(f"{where}: the URL does not start with a scheme and :// (such as postgresql://)")
    return url


__all__ = ["JobEventTypes", "connection_url", "definition", "locate", "owner_env"]
