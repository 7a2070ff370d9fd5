"""``ductape webhook create|list|show|delete|deliveries``: lifecycle webhooks (``ductape.webhooks``), as the HTTP
API's ``/webhooks`` routes. The secret that signs deliveries is printed once, by ``create``; nothing else shows
it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ductape_jobs.cli import render
from ductape_jobs.cli.common import (
    AppOpt,
    JsonOpt,
    StoreOpt,
    WebhookAllowOpt,
    allow_webhooks_to,
    check_networks,
    client,
    emit,
    emit_secret,
    integer,
)
from ductape_jobs.models import Webhook, WebhookDelivery
from ductape_jobs.redaction import redact_webhook_url
from ductape_jobs.webhooks import EVENTS

if TYPE_CHECKING:
    from rich.table import Table

webhook_app = typer.Typer(
    help="Lifecycle webhooks: create (prints the secret once), list, show, delete, and their deliveries.",
    no_args_is_help=True,
)


def _table(hooks: list[Webhook]) -> Table:
    table = render.new_table(f"Webhooks ({len(hooks)})")
    render.id_column(table, "id")
    for column in ("product", "url", "events", "created"):  # a URL folds; words whole; a time wraps at its space
        table.add_column(column, overflow="fold" if column == "url" else "ellipsis")
    for w in hooks:
        url = render.new_text(redact_webhook_url(w.url))
        table.add_row(w.id, w.product_tag, url, ", ".join(w.events), render.when(w.created_at))
    return table


def _detail(w: Webhook) -> Table:
    rows = [
        ("id", w.id),
        ("product_tag", w.product_tag),
        ("url", redact_webhook_url(w.url)),
        ("events", ", ".join(w.events)),
    ]
    return render.fields(f"Webhook {w.id}", [*rows, ("created_at", render.when(w.created_at))])


def _deliveries(items: list[WebhookDelivery]) -> Table:
    table = render.new_table(f"Deliveries ({len(items)})")
    render.id_column(table, "id")
    for column in ("event", "status", "attempts", "last status", "took", "next attempt", "delivered"):
        table.add_column(column, no_wrap=True)
    table.add_column("last error", max_width=60)
    for d in items:
        table.add_row(
            d.id,
            d.event,
            d.status.value,
            str(d.attempts),
            "-" if d.last_status is None else str(d.last_status),
            render.ms(d.last_duration_ms),
            render.when(d.next_attempt_at),
            render.when(d.delivered_at),
            render.squeeze(render.first_line(d.last_error)),
        )
    return table


@webhook_app.command("create")
def webhook_create(
    product_tag: Annotated[
        str, typer.Option("--product-tag", "--product", help="The product whose events to send (every env of it).")
    ],
    url: Annotated[str, typer.Option(help="Where to POST them: an http(s) URL of a public address.")],
    event: Annotated[
        list[str] | None, typer.Option("--event", help=f"An event to send (repeatable): {', '.join(EVENTS)}.")
    ] = None,
    secret: Annotated[
        str | None, typer.Option(help="The signing secret (at least 16 characters); absent: one is drawn.")
    ] = None,
    webhook_allow: WebhookAllowOpt = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a webhook and print it with its secret, once (deliveries are signed with it; it is not shown
    again). Bad input, or a target that is not a public address, exits 2 naming the field."""
    check_networks(webhook_allow)
    request: dict[str, Any] = {"product_tag": product_tag, "url": url, "events": list(event or [])}
    if secret is not None:
        request["secret"] = secret
    with client(store, app_, creates="record") as dt:
        allow_webhooks_to(dt, webhook_allow)
        hook, drawn = dt.webhooks.create(request)
    about = (
        f"Created webhook {hook.id} ({hook.product_tag}: {', '.join(hook.events)} -> {redact_webhook_url(hook.url)}). "
        "Copy its secret now, it is not shown again:"
    )
    emit_secret(hook, as_json, about, drawn, field="secret")


@webhook_app.command("list")
def webhook_list(
    product_tag: Annotated[
        str | None, typer.Option("--product-tag", "--product", help="Only this product's webhooks.")
    ] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The webhooks (without their secrets), oldest first."""
    with client(store, app_) as dt:
        hooks = dt.webhooks.list(product_tag)
    emit(hooks, as_json, lambda: _table(hooks))


@webhook_app.command("show")
def webhook_show(webhook_id: str, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """One webhook (without its secret)."""
    with client(store, app_) as dt:
        hook = dt.webhooks.get(webhook_id)
    emit(hook, as_json, lambda: _detail(hook))


@webhook_app.command("delete")
def webhook_delete(webhook_id: str, store: StoreOpt = None, app_: AppOpt = None, as_json: JsonOpt = False) -> None:
    """Delete a webhook and its deliveries (pending ones are not sent)."""
    with client(store, app_) as dt:
        dt.webhooks.delete(webhook_id)
    emit({"deleted": webhook_id}, as_json, lambda: f"deleted webhook {webhook_id}")


@webhook_app.command("deliveries")
def webhook_deliveries(
    webhook_id: str,
    limit: Annotated[int, typer.Option(parser=integer, help="At most N, newest first.")] = 50,
    offset: Annotated[int, typer.Option(parser=integer, help="Skip the N newest.")] = 0,
    after: Annotated[
        str | None, typer.Option(help="The deliveries past this delivery id (the last one shown): the next page.")
    ] = None,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A webhook's deliveries, newest first: status, attempts, the last answer's status and error."""
    with client(store, app_) as dt:
        items = dt.webhooks.deliveries(webhook_id, limit=limit, offset=offset, after=after or None)
    emit(items, as_json, lambda: _deliveries(items))
