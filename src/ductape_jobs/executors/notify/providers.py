"""Push and SMS through a provider's HTTP API (FCM-, Expo- or Twilio-like): one request per notification.

The request body (JSON, or a form when the provider's headers say so):

* push: ``{"tokens": [...], "title": ..., "body": ..., "data": {...}}``
* SMS: ``{"to": ..., "body": ..., "from": sender}`` (``from`` left out when there is no sender)

The body is JSON unless ``headers`` set ``Content-Type: application/x-www-form-urlencoded`` (Twilio).
"""

from __future__ import annotations

from typing import Any

import httpx
from msgspec import Struct, field

from ductape_jobs.executors.http import HttpAuth, HttpError, HttpRequestSpec, build_request, perform
from ductape_jobs.redaction import Secrets
from ductape_jobs.targets import TargetPolicy


class ProviderSettings(Struct, frozen=True):
    """A push or SMS provider endpoint: ``method`` (POST) to ``url`` with ``auth`` and ``headers``."""

    url: str
    auth: HttpAuth | None = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    timeout: float = 30.0


async def send_push(
    client: httpx.AsyncClient,
    provider: ProviderSettings,
    *,
    tokens: list[str],
    title: str,
    body: str,
    data: dict[str, Any] | None,
    secrets: Secrets | None = None,
    guard: TargetPolicy | None = None,
) -> dict[str, Any]:
    """Send one push request for all ``tokens``; returns the response summary of :func:`perform`."""
    if not tokens:
        raise HttpError("a push notification needs at least one device token", retryable=False)
    values = {"tokens": list(tokens), "title": title, "body": body, "data": dict(data or {})}
    return await _send(client, provider, values, secrets, guard)


async def send_sms(
    client: httpx.AsyncClient,
    provider: ProviderSettings,
    *,
    to: str,
    body: str,
    sender: str | None,
    secrets: Secrets | None = None,
    guard: TargetPolicy | None = None,
) -> dict[str, Any]:
    """Send one SMS request; returns the response summary of :func:`perform`."""
    if not to:
        raise HttpError("an SMS needs a recipient number", retryable=False)
    default: dict[str, Any] = {"to": to, "body": body}
    if sender:
        default["from"] = sender
    return await _send(client, provider, default, secrets, guard)


async def _send(
    client: httpx.AsyncClient,
    provider: ProviderSettings,
    payload: dict[str, Any],
    secrets: Secrets | None,
    guard: TargetPolicy | None,
) -> dict[str, Any]:
    """``payload`` sent to the provider (``guard``: its URL's host is the caller's, ``perform``)."""
    spec = HttpRequestSpec(
        method=provider.method,
        base_url=provider.url,
        headers=dict(provider.headers),
        body=payload,
        auth=provider.auth,
        timeout=provider.timeout,
    )
    return await perform(client, build_request(spec, {}), provider.timeout, secrets=secrets, guard=guard)
