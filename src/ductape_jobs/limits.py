"""Every bound on input, in one place (the README's "Limits" table lists them), and the bound on what a run records.

The Python API, the CLI and the HTTP API check the same numbers; a value over a bound is a
``ValidationError`` naming the field (HTTP 422), and nothing is written. A run's output over ``MAX_OUTPUT_BYTES``
fails that attempt instead (``store.codec``: a ``ResultError``, not retried). The bounds keep every value within
what the engine and both stores represent (64-bit integers, ``datetime`` up to year 9999, JSON that the
encoder and the browser can walk).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import quote

from ductape_jobs.errors import ValidationError, field_path

E = TypeVar("E", bound=Enum)

#: An HTTP request body (413 above it).
MAX_BODY_BYTES = 1024 * 1024
#: Live event streams (``GET /api/v1/events``) one server keeps open at once, and those of one API key: each reads
#: the store every poll (800 open made other requests 50 times slower). 429 past either.
MAX_STREAMS = 256
MAX_STREAMS_PER_KEY = 16
#: A run's or feature run's ``input``, or a session's data, encoded as JSON.
MAX_INPUT_BYTES = 256 * 1024
#: A session token (a JWT: its data as JSON, base64-encoded, signed), as ``schedule()`` and ``session.verify`` take
#: it: ``session.start`` refuses data whose token would be longer (about 12 KB of ASCII JSON).
MAX_SESSION_TOKEN = 16_384
#: A run's ``output`` as the JSON text stored (ASCII: ``\u`` escapes, so characters are bytes); past it the attempt
#: fails with a ``ResultError`` naming both sizes, and nothing of the output is kept. Every list of runs, HTTP
#: answer and dashboard page reads outputs whole.
MAX_OUTPUT_BYTES = 1024 * 1024
#: A value with its placeholders filled in (an input, an event definition, a feature event's input), as JSON, counted
#: while it is filled in (``piping.resolve``): past it a run's attempt fails for good with a ``PipingFailure``, or
#: ``schedule()`` refuses it when it can tell. An event's whole output (up to ``MAX_OUTPUT_BYTES``) may be piped into
#: the next event's input, so it is that bound, not a stored input's: what it stops is a small input that reads a
#: large value many times (250 KB filling in 90 MB).
MAX_FILLED_BYTES = MAX_OUTPUT_BYTES
#: How deep objects and lists may nest inside an input (``{"a": {"b": 1}}`` is depth 2).
MAX_DEPTH = 32
#: How deep a product file nests, its structure and its values together. A value in it (an app's ``constants``, an
#: action's ``body``, a feature event's ``input``) nests at most ``MAX_DEPTH`` levels and starts at most ten levels
#: down (``products[0].features.f.sequence[0].events[0].input``), so every file whose values fit fits; the file's
#: parser stops past it, before its stack does.
MAX_FILE_DEPTH = 2 * MAX_DEPTH
#: The values a product file holds once its YAML aliases are expanded (each scalar, list and mapping one): aliases
#: share what they name while it is read, and expand wherever it is walked after, so nine levels of ten aliases
#: each (a billion values) are refused before anything walks them. A large product file holds a few thousand.
MAX_FILE_VALUES = 100_000
#: Items in one list, or keys in one object, inside an input.
MAX_ITEMS = 10_000
#: Characters in one string (or object key) inside an input.
MAX_STRING = 64 * 1024
#: Characters of free text: a reason, a name, a URL.
MAX_TEXT = 1_000
#: Milliseconds of any duration: ``every``, ``intervals``, ``timeout`` (ten years).
MAX_MILLIS = 10 * 366 * 24 * 3600 * 1000
#: Seconds of a product's timeouts (an action's, a database action's, SMTP's), which are finite and > 0 too: what a
#: database takes as a statement's timeout, milliseconds in a signed 32-bit integer (PostgreSQL's
#: ``statement_timeout``, SQLite's ``busy_timeout``), about 24.8 days. Past it (``1e300``, ``inf``) every run failed.
MAX_TIMEOUT_SECONDS = (2**31 - 1) // 1000
#: The shortest ``every`` / ``intervals`` (ms): a schedule makes at most ten runs a second.
MIN_EVERY = 100
#: Counts: ``executions``, ``repeat.limit``.
MAX_COUNT = 1_000_000_000
#: Requests in one ``schedule_many`` call.
MAX_BATCH = 10_000
#: The file of requests ``ductape schedule-many --file`` reads (6.7 KB a request at ``MAX_BATCH``): past it the
#: command stops reading and refuses it (``/dev/zero``, a wrong file, was read until memory ran out).
MAX_BATCH_FILE_BYTES = 64 * 1024 * 1024
#: ``retries`` of one run.
MAX_RETRIES = 1_000
#: ``limit`` of one page of a listing, and its ``offset``.
MAX_PAGE = 10_000
MAX_OFFSET = 1_000_000_000
#: Headers an ACTION's ``input.headers`` may not set: they frame or route the request (a caller choosing them
#: could smuggle a second request or switch the virtual host); the product's definition may.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
     "proxy-authorization", "proxy-authenticate", "proxy-connection", "expect"}
)  # fmt: skip
#: Control characters: C0 (NUL to U+001F, newline and tab too), DEL and C1 (U+0080 to U+009F), and the ones that
#: reorder or break what follows them on a line: the bidirectional embeddings, overrides and isolates (U+202A to
#: U+202E, U+2066 to U+2069) and the line and paragraph separators (U+2028, U+2029). A name, a tag, an env, a reason
#: holds none (``check_printable``): ESC or BEL in one would drive the terminal that shows it, a right-to-left
#: override would show a table's row in another order than it reads. Zero-width joiners and the left-to-right and
#: right-to-left marks stay allowed: emoji sequences and right-to-left scripts need them.
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_NAMES = {0x00: "NUL", 0x07: "BEL", 0x09: "tab", 0x0A: "newline", 0x0D: "carriage return", 0x1B: "ESC",
                  0x7F: "DEL"}  # fmt: skip
#: The latest time anything may be scheduled, end, or be asked about; a recurrence ends there.
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def check_json(value: Any, field: str) -> int:
    """``ValidationError`` naming the path when ``value`` nests deeper than ``MAX_DEPTH``, holds a list or
    object over ``MAX_ITEMS``, a string over ``MAX_STRING``, text with a lone surrogate (UTF-8 cannot encode it), or
    something that is not JSON. Walks without recursion, so no input can exhaust the stack. Returns a bound on the
    size of its JSON text in UTF-8 bytes (a character takes at most 6, an escape), so that ``check_object``
    encodes only a value that may be over ``MAX_INPUT_BYTES``; a value holding a subclass of a JSON type (``_PLAIN``)
    is bounded past it, and so encoded."""
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    size = 0
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, dict | list | tuple):
            children, keys = _children(node, where, depth)
            stack.extend(children)
            size += 2 + 2 * len(node) + keys  # brackets, a comma (and a colon) an item, the keys quoted
        else:
            size += _check_scalar(node, where)
        if type(node) not in _PLAIN:  # a subclass: what its methods answer may not be what the encoder writes
            size += MAX_INPUT_BYTES
    return size


def check_nesting(value: Any, field: str, limit: int = MAX_DEPTH) -> None:
    """``ValidationError`` naming the path when ``value`` nests lists and objects deeper than ``limit`` (counted as
    ``check_json`` counts: ``{"a": {"b": 1}}`` is depth 2). The one check of a product's free-form values, which
    may hold what YAML reads (a date) and are no run's input yet, and of a product file as a whole. Walks without
    recursion, as ``check_json``."""
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, dict | list | tuple):
            if depth >= limit:
                raise ValidationError(where, f"nests deeper than {limit} levels")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            path = "{}.{}" if isinstance(node, dict) else "{}[{}]"
            stack.extend((item, path.format(where, key), depth + 1) for key, item in items)


def check_free_data(value: Any, field: str) -> None:
    """``ValidationError`` naming the path when a product's free-form ``value`` (already bounded by ``check_nesting``)
    holds what JSON cannot send: bytes, a set (YAML's ``!!binary``, ``!!set``), a float that is not finite (``.nan``,
    ``.inf``), an integer past a signed 64 bits, or an object of any other type. Dates and times (what YAML reads
    from ``2024-01-01``) are sent as ISO text and stay. Such a value failed every run that sent it."""
    stack: list[tuple[Any, str]] = [(value, field)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            stack.extend((item, f"{where}.{key}") for key, item in node.items())
        elif isinstance(node, list | tuple):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node))
        elif node is None or isinstance(node, str | bool | datetime | date):
            continue
        elif isinstance(node, int | float):
            if (rule := number_rule(node)) is not None:
                raise ValidationError(where, rule)
        else:
            raise ValidationError(where, f"is a {type(node).__name__}, not JSON data")


def _children(
    node: dict[Any, Any] | list[Any] | tuple[Any, ...], where: str, depth: int
) -> tuple[list[tuple[Any, str, int]], int]:
    """The items of ``node`` to walk next, and a bound on its keys' size as JSON text."""
    if depth >= MAX_DEPTH:
        raise ValidationError(where, f"nests deeper than {MAX_DEPTH} levels")
    if len(node) > MAX_ITEMS:
        raise ValidationError(where, f"holds {len(node)} items; at most {MAX_ITEMS}")
    if not isinstance(node, dict):
        return [(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(node)], 0
    keys = 0
    for key in node:
        if not isinstance(key, str):
            raise ValidationError(where, f"has a key of type {type(key).__name__}; keys must be text")
        if len(key) > MAX_STRING:
            raise ValidationError(where, f"has a key of {len(key)} characters; at most {MAX_STRING}")
        if has_lone_surrogate(key):
            raise ValidationError(where, f"has a key that {LONE_SURROGATE}")
        keys += 6 * len(key) + 2
    return [(item, f"{where}.{key}", depth + 1) for key, item in node.items()], keys


#: The types whose size ``check_json`` bounds from what they answer (``len``, comparisons); a subclass of one
#: (``IntEnum``, a numpy scalar, a ``str`` whose ``__len__`` lies) makes ``check_object`` encode the value to
#: measure it.
_PLAIN = frozenset({dict, list, tuple, str, int, float, bool, type(None)})
#: A lone surrogate (half of a UTF-16 pair on its own: a file name decoded with ``surrogateescape``), which no
#: UTF-8 text holds. A character past the BMP is one code point in a ``str``, never a pair.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: The rule a text with one breaks, wherever it is refused (an input, a name, a filter, an output).
LONE_SURROGATE = "is text with a lone surrogate (UTF-8 cannot encode it)"


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (``LONE_SURROGATE``): what UTF-8 cannot encode."""
    return not text.isascii() and _SURROGATE.search(text) is not None


#: Bounds on a scalar's JSON text: a 64-bit integer, a float's ``repr`` (``-2.2250738585072014e-308``), ``false``.
_INT_TEXT, _FLOAT_TEXT, _CONSTANT_TEXT = 20, 24, 5


def number_rule(value: float) -> str | None:
    """The rule a number of an input breaks (a JSON number every store and language reads alike): a float finite, an
    integer a signed 64-bit one; ``None`` when it keeps it."""
    if isinstance(value, float):
        return None if value - value == 0 else "must be a finite number"  # inf - inf and nan - nan are nan
    return None if -(2**63) <= value < 2**63 else "is beyond a signed 64-bit integer"


def _check_scalar(node: Any, where: str) -> int:
    """Checks ``node`` (not a list or object); returns a bound on its size as JSON text."""
    if isinstance(node, str):
        if len(node) > MAX_STRING:
            raise ValidationError(where, f"is a string of {len(node)} characters; at most {MAX_STRING}")
        if has_lone_surrogate(node):
            raise ValidationError(where, LONE_SURROGATE)
        return 6 * len(node) + 2
    if isinstance(node, int | float) and not isinstance(node, bool):
        rule = number_rule(node)
        if rule is not None:
            raise ValidationError(where, rule)
        return _FLOAT_TEXT if isinstance(node, float) else _INT_TEXT
    if node is not None and not isinstance(node, bool):
        raise ValidationError(where, f"must be JSON data, not {type(node).__name__}")
    return _CONSTANT_TEXT


#: One encoder for every input (``json.dumps`` with options builds an encoder a call: most of a small input's cost).
#: The json module's, as the store's codec: the size measured is the text stored (floats as ``1e-05``, where
#: msgspec writes ``0.00001``), and subclasses of str, int and float (``Markup``, numpy's scalars) encode, which
#: msgspec refuses.
_ENCODE = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode


def check_object(value: Any, field: str) -> dict[str, Any]:
    """``value`` as a JSON object within every input limit (``check_json`` and ``MAX_INPUT_BYTES``)."""
    if not isinstance(value, dict):
        raise ValidationError(field, f"must be an object, not {type(value).__name__}")
    if check_json(value, field) <= MAX_INPUT_BYTES:  # small for sure: most inputs are not encoded here
        return value
    try:
        encoded = _ENCODE(value).encode()
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, f"must be JSON data: {exc}") from None
    check_size(encoded, field)
    return value


def check_size(encoded: bytes | str, field: str, limit: int = MAX_INPUT_BYTES) -> None:
    size = len(encoded)
    if size > limit:
        raise ValidationError(field, f"is {size} bytes as JSON; at most {limit}")


def check_time(value: datetime, field: str) -> datetime:
    if value > LATEST:
        raise ValidationError(field, f"is after {LATEST.date().isoformat()}, the latest time the engine takes")
    return value


#: An HTTP header's name (RFC 9110's token), and what its value may not hold: a control character but the tab (C0,
#: DEL, C1: NEL, CSI ...), or a Unicode line or paragraph separator (a proxy or a logger that reads the header as text
#: breaks its line there; a security probe sent U+0085, U+009B and U+2028 out as UTF-8).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def header_breaks(value: str) -> bool:
    """Whether a header's value holds what could end its line: a control character but the tab (C0, DEL, C1), or a
    Unicode line or paragraph separator. The tab, the bidirectional marks and any other text are a header's to hold."""
    return _HEADER_CONTROL.search(value) is not None


def as_text(value: Any) -> str:
    """How a value reads as text (a header's or a path parameter's value as sent, a placeholder's inside text), as in
    Ductape's JavaScript: a string as it is; an object, a list, a boolean and null as compact JSON (``true``,
    ``{"a":1}``); a number as ``str()``. An object in a path was sent as Python wrote it (``{'a': 1, 't': True}``)
    where the same value piped into the path was JSON (a probe)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | Mapping | list | tuple):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(value)


def header_rule(name: str, value: str) -> str | None:
    """The rule a header breaks, ``None`` when it is one to send. A line break would end the header (a header of
    the caller's); NUL or another control character, a space at either end, or a name with a space, failed the
    request in h11 as a transport error, retried as one."""
    if not _HEADER_NAME.fullmatch(name):
        return "is not a header name: letters, digits and !#$%&'*+-.^_`|~ only"
    if header_breaks(value):
        return "must not hold a line break or another control character"
    if value != value.strip(" \t"):
        return "must not begin or end with a space or a tab"
    return None


def check_headers(headers: Any, field: str) -> None:
    """``ValidationError`` naming ``field.<name>`` for a header in ``RESERVED_HEADERS``, or one ``header_rule``
    refuses (a ``None`` value is left out, as the request leaves it)."""
    if isinstance(headers, dict):
        for name, value in headers.items():
            if isinstance(name, str) and name.strip().lower() in RESERVED_HEADERS:
                raise ValidationError(
                    f"{field}.{name}", "frames or routes the request: only the product's definition sets it"
                )
            if value is not None:
                rule = header_rule(str(name), as_text(value))
                if rule is not None:
                    raise ValidationError(f"{field}.{name}", rule)


#: A parameter of an ACTION's path: ``:key`` at the start of a segment or ``{key}`` anywhere, filled from the input's
#: ``params``.
PATH_PARAM = re.compile(r"(?<![^/]):(\w+)|\{(\w+)\}")


def path_segment(value: Any, field: str) -> str:
    """``value`` as one segment of an ACTION's path: its text URL-encoded, ``/`` too. Empty, ``.`` and ``..`` are
    ``ValidationError`` naming ``field``: httpx resolves dot segments, so ``..`` stepped out of the action's path
    with the app's auth (``DELETE /accounts/a/subscriptions/..`` sent ``DELETE /accounts/a``)."""
    text = as_text(value)
    if text in ("", ".", ".."):
        raise ValidationError(field, f"{text!r} is not a path segment's value: it fills one segment of the path")
    return quote(text, safe="")


def check_path_params(path: str, params: Any, field: str) -> None:
    """At ``schedule()``: ``params`` (the input's) an object giving each parameter of the action's ``path``, each a
    segment's value (``path_segment``); ``ValidationError`` naming ``field`` (``input.params.<key>``) otherwise.
    ``params`` that is a placeholder (``$Session{params}``) is known only when its run starts, and checked then."""
    if isinstance(params, str) and "$" in params:
        return
    if params is not None and not isinstance(params, dict):
        raise ValidationError(field, f"must be an object, not {type(params).__name__}")
    given = params or {}
    for match in PATH_PARAM.finditer(path):
        name = match.group(1) or match.group(2)
        if given.get(name) is None:
            raise ValidationError(f"{field}.{name}", f"is required: the action's path {path!r} needs it")
        path_segment(given[name], f"{field}.{name}")


def check_page(limit: int, offset: int = 0) -> None:
    """A listing's page: ``limit`` a whole number from 1 to ``MAX_PAGE``, ``offset`` one from 0 to
    ``MAX_OFFSET``. The one page check of every listing (Python, CLI and HTTP)."""
    for field, value, low, high in (("limit", limit, 1, MAX_PAGE), ("offset", offset, 0, MAX_OFFSET)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationError(field, f"must be a whole number between {low} and {high}")


def printable_rule(text: str, what: str = "names") -> str | None:
    """The rule ``text`` breaks when it holds a control character (``CONTROL_CHARACTER``), naming the first one;
    ``None`` when it holds none."""
    found = CONTROL_CHARACTER.search(text)
    if found is None:
        return None
    code = ord(found.group())
    name = _CONTROL_NAMES.get(code) or unicodedata.name(found.group(), "")
    named = f", {name}" if name else ""
    return f"holds a control character (U+{code:04X}{named}); {what} are printable text"


def email_header_rule(text: str) -> str | None:
    """The rule the text of an email's header (a subject, an address) breaks: a control character, as written or once
    its encoded words are decoded (RFC 2047: ``=?utf-8?q?x=0D=0ABcc=3A...?=``, which the email package decodes and,
    before Python 3.11.10 and 3.12.5, wrote back out with its line breaks: CVE-2024-6923, headers and a body of the
    caller's in the message sent; a security probe). ``None`` when it keeps it."""
    what = "an email's address and subject fields"
    rule = printable_rule(text, what)
    if rule is not None or "=?" not in text:
        return rule
    from email.policy import default  # only for a text with an encoded word in it

    try:  # as a subject: every encoded word decoded, an address's display name's too
        decoded = str(default.header_factory("Subject", text))
    except Exception:  # the email package could not read it: nor could a mail client
        return "holds an encoded word (=?...?=) that cannot be decoded"
    rule = printable_rule(decoded, what)
    return None if rule is None else f"decodes (its =?...?= encoded words) to text that {rule}"


def seconds_rule(value: object) -> str | None:
    """The rule a timeout in seconds (a product's, a function's) breaks: a number, > 0 and at most
    ``MAX_TIMEOUT_SECONDS``; ``None`` when it keeps it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT_SECONDS:
        return f"must be seconds, > 0 and at most {MAX_TIMEOUT_SECONDS:,} (about 24.8 days)"
    return None


def check_printable(value: str, field: str, what: str = "names") -> str:
    """``value`` when it holds no control character, else ``ValidationError`` naming ``field``: the one check of
    every human-readable identifying text (a job's name and event tag, an env, a product tag, a reason, an API
    key's name). Free-form data (an input, an output) may hold any character; the CLI shows those escaped."""
    rule = printable_rule(value, what)
    if rule is not None:
        raise ValidationError(field, rule)
    return value


#: Each control character but newline and tab (C0, DEL, C1) -> its escape as Python writes it (``\\x1b``), and each
#: bidirectional embedding, override or isolate and line or paragraph separator (``CONTROL_CHARACTER``) ->
#: ``\\u202e``: a stored text never reorders the row it is shown in.
_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0)) if code not in (0x09, 0x0A)},
    **{code: f"\\u{code:04x}" for code in (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))},
}


#: ``_ESCAPES`` and newline and tab: a name shown in an error's one line (a name is never text laid out in lines).
_NAME_ESCAPES = {**_ESCAPES, 0x09: "\\t", 0x0A: "\\n"}


def read_json(raw: str | bytes, field: str, *, root: str = "") -> Any:
    """A caller's JSON text (an HTTP body, the CLI's ``--input``, a ``schedule-many`` file), read by one rule: text
    that is not JSON, or nests too deep for the decoder (it recurses once a level), is a ``ValidationError`` naming
    ``field``; an integer of more digits than Python converts is read as one past every bound (the field holding it
    is then named by the bounds' checks, not the whole text called invalid); a name given twice in one object is a
    ``ValidationError`` naming its path under ``root`` (``[3].event``, ``--input.to``): it was read as its last
    value, where another reader (a proxy's) may take the first. The depth the engine takes (``MAX_DEPTH``) is
    checked with the rest of the bounds where the value is used."""
    twice = False  # some object gave a name twice: it is a ``_Twice``, found by ``_given_twice``

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal twice
        made = dict(items)
        if len(made) == len(items):
            return made
        twice = True
        seen: set[str] = set()
        name = ""
        for key, _ in items:  # one pass, and one to count it: a count per name was quadratic (a review)
            if key in seen:
                name = key
                break
            seen.add(key)
        return _Twice(made, name, sum(key == name for key, _ in items))

    try:
        try:
            data = json.loads(raw, object_pairs_hook=pairs)
        except ValueError as exc:
            if "int_max_str_digits" not in str(exc):
                raise
            twice = False
            data = json.loads(raw, parse_int=_past_bounds, object_pairs_hook=pairs)
    except RecursionError:
        raise ValidationError(field, f"nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # not UTF-8, not JSON
        raise ValidationError(field, f"is not valid JSON: {exc}") from None
    if twice:
        raise _given_twice(data, root)
    return data


class _Twice(dict[str, Any]):
    """An object of ``read_json``'s in which ``name`` (the first repeated) was given ``count`` times."""

    def __init__(self, made: dict[str, Any], name: str, count: int) -> None:
        super().__init__(made)
        self.name, self.count = name, count


#: What an integer of more digits than Python converts (4,300) is read as: a number past every bound the fields
#: set, so that the field that holds it is named with its rule (``input.n: is beyond a signed 64-bit integer``).
_PAST_EVERY_BOUND = 2**64


def _past_bounds(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -_PAST_EVERY_BOUND if text.startswith("-") else _PAST_EVERY_BOUND


def _given_twice(data: Any, root: str) -> ValidationError:
    """The error of the first object (depth first, in document order) in which a name was given twice, naming the
    name by its path, each name in it shown as ``visible`` shows text and cut past 100 characters. The walk keeps
    one iterator a level and each place as a link to its parent's, so it holds memory for the depth, not for every
    item of a large list with a copy of its path (a review: 3.7 GB for a body of a megabyte)."""
    Link = tuple[Any, str | int] | None  # (the parent's link, this key)
    if isinstance(data, _Twice):
        return _twice_error(root, None, data)
    stack: list[tuple[Iterator[tuple[str | int, Any]], Link]] = [(_items(data), None)]
    while stack:
        items, link = stack[-1]
        for key, node in items:
            here: Link = (link, key)
            if isinstance(node, _Twice):
                return _twice_error(root, here, node)
            if isinstance(node, dict | list):
                stack.append((_items(node), here))
                break
        else:
            stack.pop()
    raise AssertionError("read_json flagged an object it did not return")  # pragma: no cover


def _items(node: dict[str, Any] | list[Any]) -> Iterator[tuple[str | int, Any]]:
    return iter(node.items()) if isinstance(node, dict) else iter(enumerate(node))


def _twice_error(root: str, link: Any, node: _Twice) -> ValidationError:
    keys: list[str | int] = [shown_name(node.name)]
    while link is not None:
        link, key = link
        keys.append(key if isinstance(key, int) else shown_name(key))
    return ValidationError(
        field_path(root, *reversed(keys)), f"is given {node.count} times in one object; give it once"
    )


def shown_name(name: str) -> str:
    """A name of a caller's JSON (or of a product file) as an error shows it: control characters escaped (newline and
    tab too: the error stays one line), cut past 100."""
    if not name:
        return "(an empty name)"
    return name[:100].translate(_NAME_ESCAPES) + ("…" if len(name) > 100 else "")


def visible(text: str) -> str:
    """``text`` with every control character but newline and tab written as its escape (ESC as ``\\x1b``, CSI as
    ``\\x9b``): what is shown never drives the terminal (a job named ``\\x1b]0;owned\\x07`` would retitle it, a
    ``\\x1b[2J`` clear it). The CLI shows every text so (rich's ``Text`` drops only BEL, BS, VT, FF and CR, and
    sends ESC as it is), and so is a log line written for a terminal (``logs.TextFormatter``)."""
    return text.translate(_ESCAPES)


def check_flag(value: object, field: str, *, optional: bool = False) -> bool | None:
    """``value`` when it is ``True`` or ``False`` (or ``None``, if ``optional``), else ``ValidationError`` naming
    ``field``: the one check of a public call's switches. Read as a truth value, ``"no"`` or ``"false"`` would be
    taken as ``True`` and ``""`` or ``0`` as ``False`` (``prune(dry_run="")`` deleted)."""
    if isinstance(value, bool) or (optional and value is None):
        return value
    allowed = "True, False or None" if optional else "True or False"
    raise ValidationError(field, f"must be {allowed}, not {type(value).__name__}")  # not the value: it may be a secret


def check_enum(kind: type[E], value: object, field: str) -> E | None:
    """``value`` as a member of ``kind`` (``None`` stays ``None``), or ``ValidationError`` naming ``field``
    and the allowed values. The one enum check of the listings' filters."""
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise ValidationError(field, f"{value!r} is not one of {allowed}") from None


__all__ = [
    "CONTROL_CHARACTER",
    "LATEST",
    "LONE_SURROGATE",
    "MAX_BATCH",
    "MAX_BATCH_FILE_BYTES",
    "MAX_BODY_BYTES",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_FILE_DEPTH",
    "MAX_FILE_VALUES",
    "MAX_INPUT_BYTES",
    "MAX_ITEMS",
    "MAX_MILLIS",
    "MAX_OFFSET",
    "MAX_OUTPUT_BYTES",
    "MAX_PAGE",
    "MAX_RETRIES",
    "MAX_STRING",
    "MAX_TEXT",
    "MAX_TIMEOUT_SECONDS",
    "MIN_EVERY",
    "RESERVED_HEADERS",
    "check_enum",
    "check_flag",
    "check_headers",
    "check_json",
    "check_nesting",
    "check_object",
    "check_page",
    "check_printable",
    "check_size",
    "check_time",
    "email_header_rule",
    "has_lone_surrogate",
    "header_breaks",
    "number_rule",
    "printable_rule",
    "read_json",
    "seconds_rule",
    "span_text",
    "visible",
]


def span_text(span: timedelta) -> str:
    """A duration as the docs write one: ``50 ms``, ``1.5 s``, ``-0.006 ms`` (not ``0:00:00.050000``)."""
    ms = span / timedelta(milliseconds=1)
    return f"{ms:g} ms" if abs(ms) < 1000 else f"{ms / 1000:g} s"
