"""Sending a built request and turning the answer (or the failure) into a summary or an :class:`HttpError`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import ssl
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any

import httpx

from ductape_jobs import redaction
from ductape_jobs.errors import HttpError, TargetRefused, describe
from ductape_jobs.executors.http.request import PINNED_EXTENSION, pin
from ductape_jobs.redaction import REDACT_EXTENSION, SENT_SECRETS_EXTENSION, WEBHOOK_EXTENSION, Secrets
from ductape_jobs.targets import TargetPolicy

#: Response bodies longer than this are kept as truncated text (``"truncated": True``).
MAX_BODY_BYTES = 64 * 1024
#: How much of the body an error message quotes.
MESSAGE_BODY_CHARS = 500

#: Query parameters always hidden in messages, whatever the auth says (compared case-insensitively).
_KEPT_HEADERS = frozenset(
    {"content-type", "content-length", "location", "retry-after", "etag", "last-modified", "x-request-id",
     "request-id", "x-correlation-id"}
)  # fmt: skip
_KEPT_PREFIXES = ("x-ratelimit-", "ratelimit")
_RETRYABLE_STATUS = frozenset({408, 429})
_REDACTED = "REDACTED"
#: The extensions of the request ``perform`` is sending in this task: how its URLs are shown (``shown_url``).
_SENDING: ContextVar[Mapping[str, Any] | None] = ContextVar("ductape_http_sending", default=None)


class _ShownUrl(logging.Filter):
    """httpx logs every request's whole URL at INFO (``HTTP Request: POST <url> "HTTP/1.1 200 OK"``), which an
    application that logs INFO would write out with its secrets: an action's API key in the query, the token in a
    webhook's path, a product's secret anywhere in it. This filter on httpx's logger shows the URLs of the requests
    ``perform`` sends (a redirect's too) as its messages do, and masks the secrets the process knows in them (as
    the engine's own log lines are masked); other requests of the process are left as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        extensions, args = _SENDING.get(), record.args
        if extensions is not None and isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], httpx.URL):
            record.args = (args[0], redaction.mask_text(_shown(args[1], extensions)), *args[2:])
        return True


logging.getLogger("httpx").addFilter(_ShownUrl())


async def perform(
    client: httpx.AsyncClient,
    request: httpx.Request,
    timeout: float,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    follow_redirects: bool | None = None,
    secrets: Secrets | None = None,
    guard: TargetPolicy | None = None,
) -> dict[str, Any]:
    """Send ``request`` and return ``{"status", "duration_ms", "headers", "body", "truncated"}``.

    ``headers`` keeps a few useful response headers (lower-cased; content type, location, retry-after, ids,
    rate limits). ``body`` is the parsed JSON, else the text, ``None`` when empty; a body over
    ``max_body_bytes`` is not parsed but kept as that many bytes of text with ``truncated`` true.

    A non-2xx answer raises :class:`HttpError` with this summary as ``.details``: retryable for 5xx, 408
    and 429, not for other statuses. Transport errors and timeouts (``timeout`` seconds for the whole
    exchange) raise a retryable one. Messages name the method, the URL with secret query parameters
    hidden (a webhook's as ``redaction.redact_webhook_url`` shows it), the status and the start of the body.
    ``follow_redirects`` overrides the client's setting. ``secrets`` (the run's product's) are masked in what is
    cut here, before it is cut (the error's start of the body, a body past ``max_body_bytes``): a secret the
    answer echoes, cut where a caller's padding put the cut, was kept in part (the worker masks whole ones).
    ``guard``: the URL's host is the caller's (``lookup.Target``), sent to only where the policy allows, at the
    address checked (a refused one: a non-retryable ``HttpError``, nothing sent).
    """
    if secrets is not None:  # before anything of the answer is read
        secrets.learn(request.extensions.get(SENT_SECRETS_EXTENSION, ()))
    request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
    method = request.method
    url = shown_url(request)
    started = time.perf_counter()
    sending = _SENDING.set(request.extensions)
    try:
        async with asyncio.timeout(timeout):
            if guard is not None:
                await _guarded(request, guard, f"{method} {url}", started)
            async with contextlib.AsyncExitStack() as own:
                if request.extensions.get(PINNED_EXTENSION):  # a connection of its own (``pin``)
                    client = await own.enter_async_context(httpx.AsyncClient(trust_env=False, verify=_tls()))
                    follow_redirects = False  # a redirect's host would be resolved by the client, unchecked
                if follow_redirects is None:
                    response = await client.send(request, stream=True)
                else:
                    response = await client.send(request, stream=True, follow_redirects=follow_redirects)
                try:
                    raw, truncated = await _read_capped(response, max_body_bytes)
                finally:
                    await response.aclose()
    except (TimeoutError, httpx.TimeoutException) as exc:
        details = _failure(started, f"timed out after {timeout:g}s")
        raise HttpError(f"{method} {url} timed out after {timeout:g}s", True, details) from exc
    except httpx.HTTPError as exc:
        retryable = not isinstance(exc, httpx.UnsupportedProtocol | httpx.TooManyRedirects)
        reason = _scrub(describe(exc), request.url, url)
        raise HttpError(f"{method} {url} failed: {reason}", retryable, _failure(started, reason)) from exc
    finally:
        _SENDING.reset(sending)

    summary: dict[str, Any] = {
        "status": response.status_code,
        "duration_ms": int((time.perf_counter() - started) * 1000),
        "headers": _kept_headers(response.headers),
        "body": _parse_body(raw, truncated, response, secrets),
        "truncated": truncated,
    }
    if response.is_success:
        return summary
    status = response.status_code
    retryable = status >= 500 or status in _RETRYABLE_STATUS
    message = f"{method} {url} -> HTTP {status} {response.reason_phrase}".rstrip()
    snippet = _snippet(summary["body"], secrets)
    raise HttpError(f"{message}: {snippet}" if snippet else message, retryable, summary)


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS settings of a pinned request's client, made once (certifi's bundle, or ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR``, as a client reading the environment takes them): a client made with its own loaded the bundle
    each time, 40 ms of CPU a request, the event loop held meanwhile (a review: 50 webhook deliveries at once timed
    out)."""
    return httpx.create_ssl_context(trust_env=True)


#: How a refusal of a caller's host says what may be allowed: not the allowlist itself (the caller reads the run's
#: error; the operator's networks are not the caller's to learn).
_ALLOWED = " (or one of a network the process allows: --webhook-allow, $DUCTAPE_WEBHOOK_ALLOW, webhook_allow=)"


async def _guarded(request: httpx.Request, guard: TargetPolicy, what: str, started: float) -> None:
    """``request`` pinned to the address its host resolves to, if ``guard`` allows it; else a non-retryable
    ``HttpError`` (a host that does not resolve: a retryable one, as a transport failure is)."""
    try:
        address = await guard.resolve(str(request.url))
    except TargetRefused:  # not what it resolves to: the caller would learn the private network's names
        reason = f"not sent: a host the caller chooses must be a public address{_ALLOWED}"
        raise HttpError(f"{what} {reason}", False, _failure(started, reason)) from None
    except (OSError, UnicodeError, ValueError):
        reason = "not sent: its host did not resolve"
        raise HttpError(f"{what} {reason}", True, _failure(started, reason)) from None
    pin(request, str(address))


def redact_url(url: httpx.URL | str, names: Iterable[str | None] = ()) -> str:
    """``url`` as text with the password and secret query parameters (``names`` and well-known ones) hidden
    (``redaction.redact_url``, with this executor's ``REDACTED`` mask)."""
    return redaction.redact_url(str(url), names, mask=_REDACTED)


def shown_url(request: httpx.Request) -> str:
    """``request``'s URL as messages and trace spans show it: ``redact_url`` with the request's auth parameter
    (``REDACT_EXTENSION``), or ``redaction.redact_webhook_url`` for a webhook's delivery (``WEBHOOK_EXTENSION``)."""
    return _shown(request.url, request.extensions)


def _shown(url: httpx.URL, extensions: Mapping[str, Any]) -> str:
    if extensions.get(WEBHOOK_EXTENSION):
        return redaction.redact_webhook_url(str(url))
    return redact_url(url, extensions.get(REDACT_EXTENSION, ()))


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) > limit:
            return bytes(buffer[:limit]), True
    return bytes(buffer), False


def _parse_body(raw: bytes, truncated: bool, response: httpx.Response, secrets: Secrets | None) -> Any:
    if not raw:
        return None
    try:
        text = raw.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    if truncated and secrets is not None:  # kept as text: a secret the cut fell inside is masked whole
        text = secrets.mask_cut(text.rstrip("\ufffd"))  # a character the cut split is dropped first
    content_type = response.headers.get("content-type", "").lower()
    if not truncated and ("json" in content_type or not content_type):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _kept_headers(headers: httpx.Headers) -> dict[str, str]:
    return {
        name: headers[name]
        for name in dict.fromkeys(headers.keys())
        if name in _KEPT_HEADERS or name.startswith(_KEPT_PREFIXES)
    }


def _snippet(body: Any, secrets: Secrets | None) -> str:
    if body is None:
        return ""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    if secrets is not None:  # before the spaces are squeezed (a secret holding a line break) and the text cut
        text = secrets.mask_text(text)
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_BODY_CHARS else text[:MESSAGE_BODY_CHARS] + "..."


def _scrub(text: str, raw_url: httpx.URL, safe_url: str) -> str:
    return text.replace(str(raw_url), safe_url)


def _failure(started: float, error: str) -> dict[str, Any]:
    return {
        "status": None,
        "duration_ms": int((time.perf_counter() - started) * 1000),
        "headers": {},
        "body": None,
        "truncated": False,
        "error": error,
    }
