"""Push and SMS through a provider's HTTP API (FCM-, Expo- or Twilio-like): one request per notification.

The request body is ``ProviderSettings.body_template`` with ``{{name}}`` placeholders filled, or a default
body. A string that is exactly one placeholder takes the value as is (a list stays a list); placeholders
inside longer strings are replaced by text (JSON for lists and dicts, empty for ``None``). An unknown
placeholder is a configuration error (non-retryable).

* push placeholders: ``tokens`` (list), ``title``, ``body``, ``data`` (dict);
  default body ``{"tokens": [...], "title": ..., "body": ..., "data": {...}}``
* SMS placeholders: ``to``, ``body``, ``sender``; default body ``{"to": ..., "body": ..., "from": sender}``
  (``from`` left out when there is no sender)

The body is JSON unless ``headers`` set ``Content-Type: application/x-www-form-urlencoded`` (Twilio).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from ductape_jobs.executors.http import HttpAuth, HttpError, HttpRequestSpec, build_request, perform

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class ProviderSettings:
    """A push or SMS provider endpoint: ``method`` (POST) to ``url`` with ``auth`` and ``headers``."""

    url: str
    auth: HttpAuth | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body_template: dict[str, Any] | None = None
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
) -> dict[str, Any]:
    """Send one push request for all ``tokens``; returns the response summary of :func:`perform`."""
    if not tokens:
        raise HttpError("a push notification needs at least one device token", retryable=False)
    values = {"tokens": list(tokens), "title": title, "body": body, "data": dict(data or {})}
    return await _send(client, provider, values, values)


async def send_sms(
    client: httpx.AsyncClient, provider: ProviderSettings, *, to: str, body: str, sender: str | None
) -> dict[str, Any]:
    """Send one SMS request; returns the response summary of :func:`perform`."""
    if not to:
        raise HttpError("an SMS needs a recipient number", retryable=False)
    default: dict[str, Any] = {"to": to, "body": body}
    if sender:
        default["from"] = sender
    return await _send(client, provider, {"to": to, "body": body, "sender": sender}, default)


def render_template(template: Any, values: dict[str, Any]) -> Any:
    """``template`` with its ``{{name}}`` placeholders filled from ``values`` (see the module doc)."""
    if isinstance(template, dict):
        return {key: render_template(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [render_template(item, values) for item in template]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template.strip())
    if whole:
        return _value(whole.group(1), values)
    return _PLACEHOLDER.sub(lambda m: _text(_value(m.group(1), values)), template)


async def _send(
    client: httpx.AsyncClient, provider: ProviderSettings, values: dict[str, Any], default: dict[str, Any]
) -> dict[str, Any]:
    payload = default if provider.body_template is None else render_template(provider.body_template, values)
    spec = HttpRequestSpec(
        method=provider.method,
        base_url=provider.url,
        headers=dict(provider.headers),
        body=payload,
        auth=provider.auth,
        timeout=provider.timeout,
    )
    return await perform(client, build_request(spec, {}), provider.timeout)


def _value(name: str, values: dict[str, Any]) -> Any:
    if name not in values:
        known = ", ".join(sorted(values))
        raise HttpError(f"unknown placeholder {{{{{name}}}}} in the provider body template (known: {known})", False)
    return values[name]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
