"""What the routes share: calling the (blocking) client off the event loop, reading JSON bodies, documenting
them with the models that validate them, pages, and the translation of errors into HTTP answers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import msgspec
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from ductape_jobs.api.schemas import Message, Problem
from ductape_jobs.client import Ductape
from ductape_jobs.errors import ConflictError, DuctapeError, NotFoundError, StoreError, ValidationError
from ductape_jobs.inputs import invalid
from ductape_jobs.limits import MAX_BODY_BYTES, check_page, read_json
from ductape_jobs.logs import redact

T = TypeVar("T")
MAX_LIMIT = 10_000

# Request bodies are read as JSON objects and validated by the client (so a 422 says exactly what the Python
# API says); these models document them in the OpenAPI schema, under their own names.
BODY_MODELS: dict[str, type[BaseModel]] = {}


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking client or store call in the thread pool."""
    return await run_in_threadpool(functools.partial(fn, *args, **kwargs))


def client(request: Request) -> Ductape:
    dt: Ductape = request.app.state.ductape
    return dt


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` answers 413, whether its ``Content-Length`` says so
    up front or it streams past the bound (the route then never sees it)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        received = 0

        async def bounded() -> AsgiMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, bounded, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes:,} bytes; send less (a large batch in parts)"

    async def _too_large(self, send: Send) -> None:
        await JSONResponse({"detail": self._message()}, status_code=413)({"type": "http"}, _nothing, send)


async def _nothing() -> AsgiMessage:
    return {"type": "http.disconnect"}


async def json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty optional body). ``ValidationError`` (422) otherwise."""
    raw = await _body(request)
    if not raw.strip():
        if optional:
            return {}
        raise ValidationError("body", "is required (a JSON object)")
    data = read_json(raw, "body")
    if not isinstance(data, dict):
        raise ValidationError("body", f"must be a JSON object, not {type(data).__name__}")
    return data


async def json_array(request: Request) -> list[Any]:
    """The request's JSON array. ``ValidationError`` (422) otherwise."""
    raw = await _body(request)
    if not raw.strip():
        raise ValidationError("body", "is required (a JSON array)")
    data = read_json(raw, "body")
    if not isinstance(data, list):
        raise ValidationError("body", f"must be a JSON array, not {type(data).__name__}")
    return data


async def _body(request: Request) -> bytes:
    """The request's body; a client that went away before sending all of it is a 400 that nobody reads (not an
    "Exception in ASGI application" logged with its traceback)."""
    try:
        return await request.body()
    except ClientDisconnect:
        raise HTTPException(400, "the client closed the connection before its body was sent") from None


def body_doc(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` of a route whose JSON body ``model`` describes."""
    BODY_MODELS[model.__name__] = model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def body_list_doc(model: type[BaseModel], *, max_items: int) -> dict[str, Any]:
    """``openapi_extra`` of a route whose JSON body is an array of ``model``, at most ``max_items`` long."""
    BODY_MODELS[model.__name__] = model
    items = {"$ref": f"#/components/schemas/{model.__name__}"}
    schema = {"type": "array", "items": items, "maxItems": max_items}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def add_body_schemas(openapi: dict[str, Any]) -> dict[str, Any]:
    """Put the body models (and the models they use) into ``components.schemas``."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, model in BODY_MODELS.items():
        js = _refs(model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True))
        for sub, definition in js.pop("$defs", {}).items():
            schemas.setdefault(sub, definition)
        schemas[name] = js
    return openapi


def _refs(node: Any) -> Any:
    """``{"x-ref": "Name"}`` (a field documented by another body model) as a ``$ref`` to it."""
    if isinstance(node, dict):
        if "x-ref" in node:
            return {"$ref": f"#/components/schemas/{node['x-ref']}"}
        return {key: _refs(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_refs(item) for item in node]
    return node


#: What one page of a list holds at most of its records' own data (a run's input, output, session and error; a
#: schedule's input), roughly: a page of 10,000 runs of a megabyte each was built whole in the server's memory.
MAX_PAGE_BYTES = 8 * 1024 * 1024
#: Records a page's first read takes from the store, and the fewest a later read takes; the most a later read takes
#: (sized by the largest record seen: a run's input, output and session are at most about 1.5 MB, so what one read
#: may hold past ``MAX_PAGE_BYTES`` is bounded, not the 10,000 records of a page).
PAGE_CHUNK = 100
PAGE_READ_MOST = 1_000


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=_Identified)


async def page_within_bytes(
    fetch: Callable[..., list[R]], limit: int, offset: int, size_of: Callable[[R], int]
) -> tuple[list[R], bool]:
    """Up to ``limit`` records from ``offset`` (``fetch(limit=, offset=)``, a blocking call), read a part at a time
    (``PAGE_CHUNK``, ``PAGE_READ_MOST``) and stopped once their data passes ``MAX_PAGE_BYTES`` (one record at least),
    and whether more follow: a page cut by its size says ``has_more``, and the next one goes on from its end. A record
    that a write meanwhile moved into the next read (a newer run listed first) is not listed twice."""
    check_page(limit, offset)
    items: list[R] = []
    seen: set[str] = set()
    used = 0
    read = 0  # records the reads went past: the next read's offset
    largest = 0  # the largest record seen: a later read takes as many of that size as the page has room for
    while True:
        # a read of 100, then of as many of the largest record seen as the page has room for, at most PAGE_READ_MOST:
        # reads of 100 made a page of 10,000 small runs 100 queries, each walking the offset again (20 times slower)
        room = (MAX_PAGE_BYTES - used) // max(largest, 1) if items else PAGE_CHUNK
        want = min(max(PAGE_CHUNK, min(room, PAGE_READ_MOST)), limit - len(items))
        found = await call(fetch, limit=want + 1, offset=offset + read)
        for record in found[:want]:
            read += 1
            if record.id in seen:
                continue
            size = size_of(record)
            largest = max(largest, size)
            if items and used + size > MAX_PAGE_BYTES:
                return items, True
            items.append(record)
            seen.add(record.id)
            used += size
        if len(found) <= want:
            return items, False
        if len(items) >= limit:
            return items, True


def data_size(*values: Any) -> int:
    """The size of ``values`` as JSON, in bytes (what a page counts of a record)."""
    return sum(len(msgspec.json.encode(v)) for v in values if v is not None)


def paged(limit: int, offset: int) -> tuple[int, Callable[[list[T]], tuple[list[T], bool]]]:
    """Ask for one more than ``limit`` to tell whether another page follows."""
    ask = limit + 1 if 1 <= limit < MAX_LIMIT else limit

    def cut(found: list[T]) -> tuple[list[T], bool]:
        return found[:limit], len(found) > limit

    return ask, cut


# ------------------------------------------------------------------------------------------- errors

_MEANING = {
    401: "no API key, or an unknown or revoked one",
    403: "the API key lacks the scope the route needs, or is limited to another product or env",
    404: "no such record (or one this API key does not see)",
    409: "the change conflicts with what is stored",
    413: "the request body is over the size limit",
    422: "bad input: each problem's field and rule; nothing was written",
    429: "too many of these open at once (the answer says which bound): try again once one has closed",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route documents (401 and 422 always)."""
    return {
        code: {"description": _MEANING[code], "model": Problem if code == 422 else Message}
        for code in sorted({401, 422, *codes})
    }


def problem(errors: list[dict[str, str]]) -> JSONResponse:
    """A 422 listing each problem's field and rule, keys, tokens and secrets masked in both (``answer``)."""
    return JSONResponse({"detail": [{k: redact(v) for k, v in e.items()} for e in errors]}, status_code=422)


def answer(status: int, detail: str) -> JSONResponse:
    """An error's answer, its text masked as a log line is (``logs.redact``): an API key or a session token a caller
    sent in the wrong place came back whole (``GET /runs/<key>``: ``run 'dtk_...' not found``), to be kept by proxies'
    and gateways' error logs, while the server's own log masked it (a security probe)."""
    return JSONResponse({"detail": redact(detail)}, status_code=status)


def on_ductape_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ValidationError):
        return problem([exc.to_dict()])
    if isinstance(exc, NotFoundError):
        return answer(404, str(exc))
    if isinstance(exc, ConflictError):
        return answer(409, str(exc))
    if isinstance(exc, StoreError):
        return answer(503, f"the store failed: {exc}")
    assert isinstance(exc, DuctapeError)
    return answer(500, str(exc))


def on_request_validation(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own checks (a query parameter that is not a number, ...) in the API's 422 shape."""
    assert isinstance(exc, RequestValidationError)
    found = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:] or [loc[0]]
        found.append(invalid({**err, "loc": loc}).to_dict())
    return problem(found)
