"""Evaluating templates against a ``Scope``: ``resolve``, ``check`` and ``references``.

What a resolution builds is bounded as it is built (``_Budget``): a value filled in is at most ``limit`` bytes of
JSON (``limits.MAX_FILLED_BYTES`` by default: a whole output may be piped). Without it a stored input of 250 KB
whose 9,000 values each read a 10 KB ``$Session{...}`` value became 90 MB in memory (and an ACTION's body): the
bound on the stored text says nothing of what its placeholders fill in. Each piece is measured before it is made
(a value turned into text, each argument of a function as it is made), and the resolution stops at the first that
goes past the bound with ``PipingTooLarge``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from msgspec import Struct, field

from ductape_jobs.limits import MAX_FILLED_BYTES, number_rule
from ductape_jobs.piping.errors import Location, PipingError, PipingMissingError, PipingSyntaxError, PipingTooLarge
from ductape_jobs.piping.functions import FUNCTIONS, format_time, to_text
from ductape_jobs.piping.grammar import SOURCES, Call, Literal, Node, Reference, Template, parse

#: How each source's root is named in error messages ("no key 'email' in input.user").
_ROOT_NAMES = {
    "Input": "input",
    "Session": "session",
    "Variable": "variables",
    "Constant": "constants",
    "Secret": "secrets",
    "Sequence": "sequence",
}


class Scope(Struct):
    """What placeholders resolve against, for one run."""

    input: Mapping[str, Any] = field(default_factory=dict)
    session: Mapping[str, Any] | None = None  # verified session claims; None: the run has no session
    variables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # app -> key -> value
    constants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # app -> key -> value
    secrets: Mapping[str, str] = field(default_factory=dict)
    sequence: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # sequence tag -> event tag -> result
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("Scope.now must be a timezone-aware datetime")
        self.now = self.now.astimezone(UTC)

    def root(self, source: str) -> Any:
        return {
            "Input": self.input,
            "Session": self.session,
            "Variable": self.variables,
            "Constant": self.constants,
            "Secret": self.secrets,
            "Sequence": self.sequence,
        }[source]


# ------------------------------------------------------------------------------------------- lookups


def _where(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if key.isidentifier() else f"{where}[{key!r}]"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def lookup(ref: Reference, scope: Scope) -> Any:
    """The value ``ref`` points at. Raises ``PipingMissingError`` or ``PipingError`` naming the whole path."""
    if ref.source == "Now":
        return format_time(scope.now)
    node = scope.root(ref.source)
    if node is None:
        raise PipingMissingError(str(ref), "no session was given")
    where = _ROOT_NAMES[ref.source]
    for key in ref.path:
        if isinstance(key, int):
            if not isinstance(node, list | tuple):
                raise PipingError(str(ref), f"cannot take index [{key}] of {where}: it is {_kind(node)}")
            if key >= len(node):
                raise PipingMissingError(str(ref), f"index {key} out of range for {where} (length {len(node)})")
            node = node[key]
        else:
            if not isinstance(node, Mapping):
                hint = " (write {[0]} for a list index)" if isinstance(node, list | tuple) else ""
                raise PipingError(str(ref), f"cannot look up {key!r} in {where}: it is {_kind(node)}{hint}")
            if key not in node:
                raise PipingMissingError(str(ref), f"no key {key!r} in {where}")
            node = node[key]
        where = _where(where, key)
    return node


# ------------------------------------------------------------------------------------------- bounds

#: A string as JSON text, quoted and escaped as ``limits`` encodes an input (``ensure_ascii=False``): the one
#: measure of a text's size, so that a filled-in value is counted as a stored one is.
_QUOTED = json.encoder.encode_basestring


def _text_size(text: str) -> int:
    """The bytes of ``text`` as a JSON string in UTF-8 (its quotes and escapes included)."""
    quoted = _QUOTED(text)
    return len(quoted) if quoted.isascii() else len(quoted.encode("utf-8", "surrogatepass"))


def json_size(value: Any) -> int:
    """The bytes of ``value`` as compact JSON in UTF-8, as ``limits`` measures a stored input (a value that is not
    JSON's own, a ``datetime`` an event returned, as its text, as ``to_text`` writes it). A container is encoded to
    be measured: it is a value that exists already (an input's, a session's, an event's output), within its own
    source's bound, so what this makes is at most one such value, and only until it is counted."""
    kind = type(value)
    if kind is str:
        return _text_size(value)
    if kind is int:
        return len(int.__repr__(value))
    if value is None or kind is bool:
        return 4 if value is None or value else 5
    text = _MEASURE(value)
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


#: JSON as ``to_text`` writes an object in text and ``limits`` a stored input (compact, ``ensure_ascii=False``).
_MEASURE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def _frame(node: Mapping[Any, Any] | list[Any] | tuple[Any, ...]) -> int:
    """The bytes of a container's JSON text around its values: brackets, commas, and an object's keys and colons."""
    if not node:
        return 2
    if not isinstance(node, Mapping):
        return 1 + len(node)  # brackets, a comma between two items
    return 1 + 2 * len(node) + sum(_text_size(key if isinstance(key, str) else str(key)) for key in node)


class _Budget:
    """The bytes of JSON a resolution may still build (``limit`` in all). Everything it returns is counted: a
    container's brackets and keys, each string (literal or filled in) and each value a placeholder yields, as JSON."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise PipingTooLarge(self.limit)

    def fits(self, *values: Any) -> None:
        """``PipingTooLarge`` unless ``values`` together are within what is left (counted, not spent): what a piece
        will be made from is measured before it is made, and the measuring stops at the first past it. A string
        counts without its quotes, as it reads inside the text a function makes of it: what ``$Concat`` is given is
        never more than what it returns."""
        size = 0
        for value in values:
            size = self.fits_with(size, value)

    def fits_with(self, size: int, value: Any) -> int:
        """``size`` (what pieces before it measured) and ``value``'s, checked as ``fits`` checks them."""
        size += json_size(value) - (2 if isinstance(value, str) else 0)
        if size > self.left:
            raise PipingTooLarge(self.limit)
        return size


# ---------------------------------------------------------------------------------------- evaluation


def evaluate(node: Node, scope: Scope, *, limit: int = MAX_FILLED_BYTES) -> Any:
    """The value of ``node``. A function's arguments are together at most ``limit`` bytes as JSON
    (``PipingTooLarge``): a built-in function makes at most a few times what it is given."""
    return _evaluate(node, scope, _Budget(limit))


def _evaluate(node: Node, scope: Scope, budget: _Budget) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Reference):
        return lookup(node, scope)  # the value itself, shared: nothing is built
    function = FUNCTIONS.get(node.name)
    if function is None:  # unregistered after the template was parsed
        raise PipingError(str(node), f"unknown function ${node.name}")
    if function.lazy:
        args: list[Any] = [partial(_evaluate, arg, scope, budget) for arg in node.args]
    else:
        args, size = [], 0
        for arg in node.args:  # each measured as it is made, with those before it: $Concat of 4,000 references to
            args.append(_evaluate(arg, scope, budget))  # 10 KB is never made, nor one of calls each near the bound
            size = budget.fits_with(size, args[-1])
    try:
        result = function.fn(*args)
    except PipingError:
        raise
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise PipingError(str(node), str(exc)) from exc
    _check_numbers(result, node)
    return result


def _check_numbers(result: Any, node: Node) -> None:
    """Each number in what a function made (a registered one's: ``inf``, ``[inf, 2**70]``) is one an input may hold
    (``limits.number_rule``), as a literal's is: ``PipingError`` naming the call otherwise."""
    stack = [result]
    while stack:
        value = stack.pop()
        if isinstance(value, int | float) and not isinstance(value, bool):
            rule = number_rule(value)
            if rule is not None:
                raise PipingError(str(node), f"a number of its result {rule}")
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)


def render(
    template: Template, scope: Scope, *, limit: int = MAX_FILLED_BYTES, each: Callable[[Node, str], str] | None = None
) -> Any:
    """A whole placeholder keeps its value's type; anything else becomes text. At most ``limit`` bytes as JSON
    (``PipingTooLarge``). ``each``: the text is always made, each placeholder's value as ``each(placeholder, text)``
    gives it (an ACTION's path: what a caller sent, one URL-encoded segment), the template's own text as it is."""
    return _render(template, scope, _Budget(limit), each)


def _render(template: Template, scope: Scope, budget: _Budget, each: Callable[[Node, str], str] | None = None) -> Any:
    whole = template.whole
    if whole is not None and each is None:
        value = _evaluate(whole, scope, budget)
        budget.spend(json_size(value))
        return value
    budget.spend(2)  # the quotes of the text made
    texts = []
    for part in template.parts:
        value = _evaluate(part, scope, budget)
        if not isinstance(value, str):
            budget.fits(value)  # an object's JSON text is measured before it is made
        text = to_text(value)
        if each is not None and not isinstance(part, Literal):
            text = each(part, text)
        budget.spend(_text_size(text) - 2)  # escapes are a character's own: the parts' sizes add up
        texts.append(text)
    return "".join(texts)


def _located(key: str | int, exc: PipingError | PipingSyntaxError) -> None:
    if not isinstance(exc, PipingTooLarge):  # the whole value's bound: no place is to blame
        exc.at = (key, *exc.at)


#: What the caller's own ``input`` (at ``schedule()``) may read: its verified session, the time and the
#: functions. ``$Secret``, ``$Variable`` and ``$Constant`` belong to the product's own definitions.
CALLER_SOURCES: frozenset[str] = frozenset({"Session", "Now"})
#: What a product's own templates (event definitions, feature sequences) may read: everything.
TEMPLATE_SOURCES: frozenset[str] = frozenset(SOURCES)
#: What a template whose result is stored (the input of a feature's JOB or FEATURE event) may read: no secret.
STORED_SOURCES: frozenset[str] = TEMPLATE_SOURCES - {"Secret"}


def _allowed(template: Template, sources: frozenset[str]) -> None:
    for ref in template.references():
        if ref.source not in sources:
            allowed = ", ".join(f"${name}" for name in sorted(sources)) or "nothing"
            raise PipingError(
                str(ref),
                f"${ref.source} cannot be used here (this value may read {allowed}); "
                "write $$ for a literal $, or pass the value through ductape_jobs.literal()",
            )


def resolve(
    value: Any, scope: Scope, *, sources: frozenset[str] = TEMPLATE_SOURCES, limit: int = MAX_FILLED_BYTES
) -> Any:
    """Resolve every placeholder in ``value``, walking dicts (values only) and lists.

    Text without a placeholder is returned as it is (the same object); containers are always new.
    Resolved values are data: what a placeholder yields is never scanned again (a ``$Secret{...}`` inside
    an input value stays text). A reference to a source outside ``sources`` raises ``PipingError``. The
    result is at most ``limit`` bytes as JSON, counted as it is built: past it, ``PipingTooLarge`` (the bound of
    the whole value: it names no place), and no more of it is made.
    """
    return _resolve(value, scope, sources, _Budget(limit))


def _resolve(value: Any, scope: Scope, sources: frozenset[str], budget: _Budget) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            budget.spend(_text_size(value))
            return value
        template = parse(value)
        _allowed(template, sources)
        result = _render(template, scope, budget)
        return value if result == value and isinstance(result, str) else result
    if isinstance(value, Mapping):
        budget.spend(_frame(value))
        out: dict[Any, Any] = {}
        for key, item in value.items():
            try:
                out[key] = _resolve(item, scope, sources, budget)
            except (PipingError, PipingSyntaxError) as exc:
                _located(key, exc)
                raise
        return out
    if isinstance(value, list | tuple):
        budget.spend(_frame(value))
        items: list[Any] = []
        for index, item in enumerate(value):
            try:
                items.append(_resolve(item, scope, sources, budget))
            except (PipingError, PipingSyntaxError) as exc:
                _located(index, exc)
                raise
        return items if isinstance(value, list) else tuple(items)
    budget.spend(json_size(value))
    return value


def literal(value: Any) -> Any:
    """``value`` as data that no resolution will read as a placeholder: every ``$`` in its strings is doubled
    (``$$`` is a literal ``$``). Use it for text that comes from end users, or from an earlier resolution."""
    if isinstance(value, str):
        return value.replace("$", "$$") if "$" in value else value
    if isinstance(value, Mapping):
        return {key: literal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [literal(item) for item in value]
    return value


def has_placeholders(value: Any) -> bool:
    """Whether some string in ``value`` (dict values and list items, as the others walk it) holds a ``$``. Without
    one nothing in ``value`` is a placeholder: ``restrict`` and ``check`` raise nothing and ``resolve`` changes
    nothing, so a caller may skip them (one walk instead of three)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "$" in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def restrict(value: Any, sources: frozenset[str]) -> None:
    """Raise ``PipingError`` (or ``PipingSyntaxError``), located, for the first placeholder in ``value`` that
    reads a source outside ``sources``; nothing is evaluated."""
    for at, template in _templates(value):
        try:
            _allowed(template, sources)
        except PipingError as exc:
            exc.at = at
            raise


# ------------------------------------------------------------------------- definition-time inspection


def _texts(value: Any, at: Location = ()) -> Iterator[tuple[Location, str]]:
    """Every string in ``value`` that may hold a placeholder, with where it sits."""
    if isinstance(value, str):
        if "$" in value:
            yield at, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _texts(item, (*at, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _texts(item, (*at, index))


def _templates(value: Any) -> Iterator[tuple[Location, Template]]:
    for at, text in _texts(value):
        try:
            yield at, parse(text)
        except PipingSyntaxError as exc:
            exc.at = at
            raise


def references(value: Any) -> list[Reference]:
    """Every reference anywhere in ``value`` (function arguments included), in order, without repeats."""
    found = (ref for _, template in _templates(value) for ref in template.references())
    return list(dict.fromkeys(found))


def check(value: Any, scope: Scope, *, sources: set[str]) -> None:
    """Resolve only the references whose source is in ``sources``; raise ``PipingError`` for the first that fails.

    Used when part of the scope is known early (``{"Input"}`` at schedule time). Other references and
    function calls are not evaluated. A missing value where a function expects one may be missing (the
    first argument of ``$Default``) is not an error.
    """
    unknown = set(sources) - SOURCES.keys()
    if unknown:
        raise ValueError(f"unknown piping sources {sorted(unknown)}; sources are {sorted(SOURCES)}")
    for at, template in _templates(value):
        for part in template.parts:
            try:
                _check_node(part, scope, sources, missing_ok=False)
            except PipingError as exc:
                exc.at = at
                raise


def _check_node(node: Node, scope: Scope, sources: set[str], *, missing_ok: bool) -> None:
    if isinstance(node, Reference):
        if node.source in sources:
            _lookup_quietly(node, scope, missing_ok)
    elif isinstance(node, Call):
        function = FUNCTIONS.get(node.name)
        guarded = function.missing_ok if function is not None else frozenset()
        for index, arg in enumerate(node.args):
            _check_node(arg, scope, sources, missing_ok=missing_ok or index in guarded)


def _lookup_quietly(ref: Reference, scope: Scope, missing_ok: bool) -> None:
    try:
        lookup(ref, scope)
    except PipingMissingError:
        if not missing_ok:
            raise
