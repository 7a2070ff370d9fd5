"""``ductape apikey create|list|revoke``: the keys of the HTTP API. A key is printed once, when created; the
store keeps only its salted hash and a visible prefix. ``--scope`` (read, write, admin) says what it may do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.cli import render
from ductape_jobs.cli.common import JsonOpt, OwnStoreOpt, client, emit, emit_secret
from ductape_jobs.models import ApiKey, KeyScope

if TYPE_CHECKING:
    from rich.table import Table

apikey_app = typer.Typer(help="API keys of the HTTP API (ductape serve): create, list, revoke.", no_args_is_help=True)


def _table(keys: list[ApiKey]) -> Table:
    table = render.new_table("API keys")
    render.id_column(table, "id")  # never cut or wrapped: revoke takes it
    for column in ("name", "prefix", "scope", "product", "env", "created", "last used", "revoked"):
        table.add_column(column)  # words whole; a time wraps at its space
    for k in keys:
        table.add_row(
            k.id,
            k.name,
            k.prefix,
            k.scope.value,
            k.product_tag or "any",
            k.env or "any",
            render.when(k.created_at),
            render.when(k.last_used_at),
            render.when(k.revoked_at) if k.revoked_at else "",
        )
    return table


@apikey_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="What the key is for (shown in listings).")],
    product: Annotated[
        str | None, typer.Option("--product", "--product-tag", help="Limit the key to this product_tag.")
    ] = None,
    env: Annotated[str | None, typer.Option(help="Limit the key to this env.")] = None,
    scope: Annotated[
        KeyScope,
        typer.Option(
            case_sensitive=False,
            help="What the key may do: read (lists, runs, dashboard read-only), write (also schedule, cancel, "
            "retry, trigger, job definitions) or admin (also webhooks). Each includes the ones before it.",
        ),
    ] = KeyScope.ADMIN,
    store: OwnStoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it (once: only its hash is kept)."""
    with client(store, None, creates="record") as dt:
        made = ApiKeys(dt.store, dt.clock).create(name, product_tag=product, env=env, scope=scope)
    k = made.record
    limits = f"scope {k.scope.value}, product {k.product_tag or 'any'}, env {k.env or 'any'}"
    about = f"Created API key {k.id} ({k.name}; {limits}). Copy it now, it is not shown again:"
    emit_secret(k, as_json, about, made.key, field="key")


@apikey_app.command("list")
def list_keys(store: OwnStoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every key (its prefix, never the key), revoked ones included."""
    with client(store, None) as dt:
        keys = ApiKeys(dt.store, dt.clock).list()
    emit(keys, as_json, lambda: _table(keys))


@apikey_app.command("revoke")
def revoke(key_id: str, store: OwnStoreOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke a key by id: it answers 401 from now on, and its dashboard logins end."""
    with client(store, None) as dt:
        k = ApiKeys(dt.store, dt.clock).revoke(key_id)
    emit(k, as_json, lambda: f"revoked API key {k.id} ({k.name}, {k.prefix})")
