"""Signed callback webhooks.

A callback is ``POST <url>`` with a JSON body and two headers::

    X-Ductape-Timestamp: <unix seconds>
    X-Ductape-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

The signed string is the timestamp, a dot, then the exact body bytes as sent (compact UTF-8 JSON), so a
receiver must verify the raw body before parsing it. Signing the timestamp lets receivers refuse replays:
:func:`verify_signature` rejects timestamps more than ``tolerance_s`` seconds away from its clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx

from ductape_jobs.executors.http import HttpError, HttpRequestSpec, build_request, encode_json, perform
from ductape_jobs.executors.http.request import pin
from ductape_jobs.redaction import WEBHOOK_EXTENSION, Secrets
from ductape_jobs.targets import TargetPolicy

SIGNATURE_HEADER = "X-Ductape-Signature"
TIMESTAMP_HEADER = "X-Ductape-Timestamp"
_SCHEME = "sha256="


def sign(secret: str, body: bytes, timestamp: int | str) -> str:
    """The ``X-Ductape-Signature`` value for ``body`` sent at ``timestamp``: ``sha256=<hex>``."""
    message = f"{timestamp}.".encode() + body
    return _SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes | str,
    timestamp: int | str,
    signature: str,
    tolerance_s: float | None = 300,
    *,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` (the ``X-Ductape-Signature`` header) signs the raw ``body`` with ``secret`` at
    ``timestamp`` (the ``X-Ductape-Timestamp`` header), and that timestamp is within ``tolerance_s``
    seconds of ``now`` (default: the current time; ``None`` tolerance skips the age check).
    Malformed input gives ``False``, never an exception."""
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    if tolerance_s is not None and abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    raw = body.encode() if isinstance(body, str) else bytes(body)
    return hmac.compare_digest(sign(secret, raw, ts).encode(), signature.strip().lower().encode())


async def post_callback(
    client: httpx.AsyncClient,
    url: str,
    payload: Any,
    *,
    secret: str,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    timestamp: int | None = None,
    address: str | None = None,
    follow_redirects: bool | None = None,
    webhook: bool = False,
    secrets: Secrets | None = None,
    guard: TargetPolicy | None = None,
) -> dict[str, Any]:
    """POST ``payload`` as JSON to ``url``, signed with ``secret`` (see the module doc); returns the response
    summary of :func:`perform`. ``headers`` are added but cannot replace the Content-Type or the signature
    headers. ``timestamp`` (unix seconds) defaults to now. ``address``: connect to this IP address instead of
    resolving the URL's host (the Host header and TLS name stay the host's), for a target checked beforehand.
    ``follow_redirects`` overrides the client's setting. ``webhook``: ``url`` is a webhook's, shown (in errors,
    in a trace span) as ``redaction.redact_webhook_url`` shows it. ``secrets``: the product's, masked before what
    the answer's start and a body past its bound are cut to (``perform``). ``guard``: the URL is the caller's, sent
    to only where the policy allows (``perform``)."""
    if not secret:
        raise HttpError("a callback needs a secret to sign with", retryable=False)
    try:
        body = encode_json(payload)
    except (TypeError, ValueError) as exc:
        raise HttpError(f"the callback payload is not JSON: {exc}", retryable=False) from exc
    spec = HttpRequestSpec(
        method="POST",
        base_url=url,
        headers={**(headers or {}), "Content-Type": "application/json"},
        body=body,
        timeout=timeout,
    )
    request = build_request(spec, {})
    if webhook:
        request.extensions[WEBHOOK_EXTENSION] = True
    if address is not None:
        pin(request, address)
    ts = int(time.time()) if timestamp is None else timestamp
    request.headers[TIMESTAMP_HEADER] = str(ts)
    request.headers[SIGNATURE_HEADER] = sign(secret, request.content, ts)
    return await perform(client, request, timeout, follow_redirects=follow_redirects, secrets=secrets, guard=guard)
