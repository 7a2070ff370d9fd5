"""Building the HTTP request of an ACTION (or a provider call) from resolved values and the SDK's input shape."""

from __future__ import annotations

import datetime as _dt
import enum
import json
import re
import uuid
from decimal import Decimal
from importlib import metadata
from typing import Any, Literal

import httpx
from msgspec import Struct, field

from ductape_jobs.errors import HttpError, ValidationError
from ductape_jobs.limits import PATH_PARAM, as_text, check_headers, header_rule, path_segment
from ductape_jobs.redaction import (
    REDACT_EXTENSION,
    SENT_SECRETS_EXTENSION,
    basic_credentials,
    fields_without,
    repr_without,
    url_secrets,
)

AuthKind = Literal["none", "bearer", "basic", "header", "query"]
_AUTH_KINDS = ("none", "bearer", "basic", "header", "query")
_AUTH_NEEDS = {"bearer": ("token",), "basic": ("username",), "header": ("name", "value"), "query": ("name", "value")}


_FORM = "application/x-www-form-urlencoded"

try:
    _USER_AGENT = f"ductape-jobs/{metadata.version('ductape-jobs')}"
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    _USER_AGENT = "ductape-jobs"

#: HttpAuth's fields that hold secrets: never in its repr (nor rich's).
_SECRET = frozenset({"token", "password", "value"})


class HttpAuth(Struct, frozen=True):
    """How a request authenticates.

    ``bearer``: ``Authorization: Bearer <token>``; ``basic``: ``Authorization: Basic base64(username:password)``;
    ``header``: header ``<name>: <value>``; ``query``: query parameter ``<name>=<value>`` (hidden in error messages).
    """

    kind: AuthKind
    token: str | None = None
    username: str | None = None
    password: str | None = None
    name: str | None = None
    value: str | None = None

    def __repr__(self) -> str:
        return repr_without(self, _SECRET)

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return fields_without(self, _SECRET)

    def __post_init__(self) -> None:
        if self.kind not in _AUTH_KINDS:
            raise ValidationError("auth.kind", f"must be one of {', '.join(_AUTH_KINDS)}, not {self.kind!r}")
        for attr in _AUTH_NEEDS.get(self.kind, ()):
            if not getattr(self, attr):
                raise ValidationError(f"auth.{attr}", f"is required for {self.kind} auth")
        for attr in ("token", "name", "value"):
            if any(ch in (getattr(self, attr) or "") for ch in "\r\n"):
                raise ValidationError(f"auth.{attr}", "must not contain line breaks")

    def apply(self, headers: httpx.Headers, query: dict[str, Any]) -> None:
        if self.kind == "bearer":
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.kind == "basic":
            headers["Authorization"] = "Basic " + basic_credentials(str(self.username), self.password or "")
        elif self.kind == "header":
            headers[str(self.name)] = str(self.value)
        elif self.kind == "query":
            query[str(self.name)] = self.value


class HttpRequestSpec(Struct, frozen=True):
    """A resolved request template: the app's base URL and auth with the action's method, path and defaults."""

    method: str
    base_url: str
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any | None = None
    auth: HttpAuth | None = None
    timeout: float = 30.0


def build_request(spec: HttpRequestSpec, input: dict[str, Any]) -> httpx.Request:
    """The request for ``spec`` with the SDK input ``{"params", "query", "body", "headers"}`` applied.

    ``params`` fill ``:key`` segments and ``{key}`` placeholders of the path (URL-encoded). ``query`` and
    ``headers`` merge over the spec's (the input wins, also over the auth header/parameter; ``None`` values
    are dropped). ``body`` is merged key by key over a dict spec body, otherwise it replaces it. Dicts,
    lists and scalars are sent as JSON (or form-encoded when the Content-Type says so), ``str`` as UTF-8
    text, ``bytes`` as is. Any problem raises a non-retryable :class:`HttpError`.
    """
    if not isinstance(input, dict):
        raise HttpError(f"the request input must be an object, not {type(input).__name__}", retryable=False)
    params, extra_query, extra_headers = (_section(input, key) for key in ("params", "query", "headers"))
    url = _join(spec.base_url, _fill_path(spec.path, params))

    query: dict[str, Any] = dict(spec.query)
    headers = httpx.Headers({"User-Agent": _USER_AGENT})
    _merge_headers(headers, spec.headers)
    if spec.auth is not None:
        spec.auth.apply(headers, query)
    query.update(extra_query)
    try:
        check_headers(extra_headers, "input.headers")  # checked at schedule() too; stored inputs are held to it
    except ValidationError as exc:
        raise HttpError(str(exc), retryable=False) from None
    _merge_headers(headers, extra_headers)

    body = spec.body
    override = input.get("body")
    if override is not None:
        body = {**body, **override} if isinstance(body, dict) and isinstance(override, dict) else override

    redact = (spec.auth.name,) if spec.auth is not None and spec.auth.kind == "query" else ()
    try:
        target = httpx.URL(url)
        if target.scheme not in ("http", "https") or not target.host:
            raise HttpError(f"{url!r} is not an absolute http(s) URL", retryable=False)
        target = target.copy_merge_params(_as_params(query))
        content = _encode_body(body, headers)
        request = httpx.Request(spec.method.upper(), target, headers=headers, content=content)
    except (TypeError, ValueError, httpx.InvalidURL) as exc:
        raise HttpError(f"cannot build {spec.method.upper()} request: {exc}", retryable=False) from exc
    request.extensions[REDACT_EXTENSION] = redact
    request.extensions[SENT_SECRETS_EXTENSION] = _sent_secrets(spec)
    request.extensions["timeout"] = httpx.Timeout(spec.timeout).as_dict()
    return request


#: A request's extension: it is pinned to an address (``pin``), so ``perform`` sends it on a connection of its own.
PINNED_EXTENSION = "ductape_pinned"


def pin(request: httpx.Request, address: str) -> None:
    """Send ``request`` to ``address`` (an IP address checked beforehand) rather than to what its host resolves to
    when it is sent (a DNS answer that changed since cannot redirect it): its Host header and TLS name stay the
    host's. ``perform`` sends it on a connection of its own, through no proxy: a client's pool keys connections by
    the address, so a request for another host name at that address took a TLS connection verified for the first
    (a review), and a proxy would be told the address, its certificate checked against it."""
    host = request.url.host
    request.url = request.url.copy_with(host=address)
    request.extensions[PINNED_EXTENSION] = True
    if request.url.scheme == "https":
        request.extensions["sni_hostname"] = host


def _sent_secrets(spec: HttpRequestSpec) -> list[str]:
    """The credentials the engine builds into ``spec``'s request: a basic auth's ``Authorization: Basic`` (an answer
    echoing its request's headers kept it, a security probe) and its URL's (``redaction.url_secrets``)."""
    found = url_secrets(spec.base_url)
    if spec.auth is not None and spec.auth.kind == "basic":
        found.append(basic_credentials(str(spec.auth.username), spec.auth.password or ""))
    return found


def _section(input: dict[str, Any], key: str) -> dict[str, Any]:
    value = input.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HttpError(f"input.{key} must be an object, not {type(value).__name__}", retryable=False)
    return value


def _fill_path(path: str, params: dict[str, Any]) -> str:
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        value = params.get(name)
        if value is None:
            missing.append(name)
            return match.group(0)
        try:
            return path_segment(value, f"input.params.{name}")
        except ValidationError as exc:
            raise HttpError(str(exc), retryable=False) from None

    filled = PATH_PARAM.sub(fill, path)
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        raise HttpError(f"missing path parameter(s) {names} for path {path!r}", retryable=False)
    return filled


def _as_params(values: dict[str, Any]) -> dict[str, str | list[str]]:
    """A query's or a form's values as sent: each as text (``limits.as_text``: an object as JSON, as a path's value
    and a header's are; it went as Python wrote it), a list as the parameter repeated (a ``None`` in it empty, as
    httpx sends it), ``None`` left out."""
    return {
        str(k): ["" if item is None else as_text(item) for item in v] if isinstance(v, list | tuple) else as_text(v)
        for k, v in values.items()
        if v is not None
    }


def _join(base_url: str, path: str) -> str:
    if not path:
        return base_url
    if not base_url:
        return path
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def _check_header(name: str, value: str) -> None:
    rule = header_rule(name, value)
    if rule is not None:
        raise HttpError(f"invalid header {name!r}: {rule}", retryable=False)


def _merge_headers(headers: httpx.Headers, extra: dict[str, Any]) -> None:
    for name, value in extra.items():
        if value is None:
            continue
        text = as_text(value)
        _check_header(str(name), text)
        headers[str(name)] = text  # replaces any case variant


def _encode_body(body: Any, headers: httpx.Headers) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        return body.encode()
    if isinstance(body, dict) and headers.get("Content-Type", "").lower().startswith(_FORM):
        return str(httpx.QueryParams(_as_params(body))).encode("ascii")
    headers.setdefault("Content-Type", "application/json")
    return encode_json(body)


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; datetimes, dates, UUIDs, Decimals and enums are written as text."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
