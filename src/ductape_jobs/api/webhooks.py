"""``/api/v1/webhooks``: lifecycle webhooks (the SDK's ``setWebhook``) and their deliveries.

The secret signs each delivery (``X-Ductape-Signature``, as callbacks are signed) and is answered once, when
the webhook is created. A webhook covers every env of its product, so these routes need a key that is not
limited to an env; a key limited to a product manages that product's webhooks only. They need the ``admin`` scope.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from ductape_jobs.answers import DeliveryOut, WebhookOut
from ductape_jobs.api.auth import ADMIN, Me, Principal
from ductape_jobs.api.common import body_doc, call, client, json_object, paged, responses
from ductape_jobs.api.schemas import Page, WebhookList
from ductape_jobs.errors import NotFoundError
from ductape_jobs.inputs import WebhookRequest
from ductape_jobs.limits import check_page
from ductape_jobs.models import Webhook

router = APIRouter(prefix="/webhooks", tags=["webhooks"], dependencies=[ADMIN])  # every route: the admin scope


def _check_env(me: Principal) -> None:
    if me.env is not None:
        raise HTTPException(403, "webhooks cover every env of a product: use a key that is not limited to an env")


async def visible_webhook(request: Request, me: Principal, webhook_id: str) -> Webhook:
    hook = await call(client(request).webhooks.get, webhook_id)
    if me.product_tag is not None and hook.product_tag != me.product_tag:
        raise NotFoundError("webhook", webhook_id)
    return hook


@router.post("", status_code=201, openapi_extra=body_doc(WebhookRequest), responses=responses(403))
async def create_webhook(request: Request, me: Me) -> WebhookOut:
    """Send a product's lifecycle events (``job.scheduled``, ``job.started``, ``job.completed``, ``job.failed``,
    ``job.cancelled``, ``job.paused``, ``job.resumed``) to ``url``. The answer carries the ``secret`` (drawn
    when not given): keep it, it is never shown again. ``url``'s host must be, and resolve only to, public
    addresses: loopback, private, link-local, unique-local, multicast, reserved and cloud metadata addresses are
    refused (422) unless the server allows their network (``ductape serve --webhook-allow CIDR``)."""
    body = await json_object(request)
    _check_env(me)
    given = body.get("product_tag")
    if me.product_tag is not None and isinstance(given, str) and given.strip() != me.product_tag:
        raise HTTPException(403, f"this API key may only set webhooks for product_tag {me.product_tag!r}")
    hook, secret = await call(client(request).webhooks.create, body)
    return WebhookOut.of(hook, secret)


@router.get("", responses=responses(403))
async def list_webhooks(request: Request, me: Me, product_tag: str | None = None) -> WebhookList:
    """The webhooks (without their secrets), oldest first (``product_tag``: that product's)."""
    _check_env(me)
    hooks = await call(client(request).webhooks.list, me.narrowed(product_tag, None)["product_tag"])
    return WebhookList(items=[WebhookOut.of(h) for h in hooks])


@router.get("/{webhook_id}", responses=responses(403, 404))
async def get_webhook(request: Request, webhook_id: str, me: Me) -> WebhookOut:
    """One webhook (``webhooks.get``), without its secret."""
    _check_env(me)
    return WebhookOut.of(await visible_webhook(request, me, webhook_id))


@router.delete("/{webhook_id}", status_code=204, responses=responses(403, 404))
async def delete_webhook(request: Request, webhook_id: str, me: Me) -> Response:
    """Delete a webhook and its deliveries (pending ones are not sent)."""
    _check_env(me)
    await visible_webhook(request, me, webhook_id)
    await call(client(request).webhooks.delete, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", responses=responses(403, 404))
async def list_deliveries(
    request: Request, webhook_id: str, me: Me, limit: int = 100, offset: int = 0, after: str | None = None
) -> Page[DeliveryOut]:
    """A webhook's deliveries, newest first: status (pending, delivered, failed), attempts, last error. ``after``: a
    delivery's id, the last of the page before: those past it, found by the index where a deep ``offset`` counts
    every delivery before it (422 when the webhook has no such delivery)."""
    _check_env(me)
    check_page(limit, offset)  # the query first, as webhooks.deliveries checks it
    await visible_webhook(request, me, webhook_id)
    ask, cut = paged(limit, offset)
    deliveries = client(request).webhooks.deliveries
    items, more = cut(await call(deliveries, webhook_id, limit=ask, offset=offset, after=after or None))
    return Page[DeliveryOut](items=[DeliveryOut.of(d) for d in items], limit=limit, offset=offset, has_more=more)
