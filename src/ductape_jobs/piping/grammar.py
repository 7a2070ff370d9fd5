"""The piping grammar: a scanner over the text that builds a small AST.

::

    template    := ( text | "$$" | placeholder )*
    placeholder := "$" SOURCE segment*                      $Input{user}{id}, $Now
                 | "$" FUNCTION "(" [ arg ( "," arg )* ] ")"  $Concat($Input{a}, ' ', 'b')
    segment     := "{" KEY "}" | "{[" DIGITS "]}"            a key, or a list index
    arg         := placeholder | 'text' | "text" | NUMBER | true | false | null

``$$`` is a literal ``$``. A ``$`` that cannot start a placeholder (``$5``, ``$USD``: not followed by a
source, ``{`` or ``(``) is literal text too. Anything that looks like a placeholder but is not a valid
one raises ``PipingSyntaxError`` with its position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any, TypeAlias

from msgspec import Struct

from ductape_jobs.limits import number_rule
from ductape_jobs.piping.errors import PipingSyntaxError
from ductape_jobs.piping.functions import FUNCTIONS, PipingFunction, is_name

#: Source name -> (fewest, most) ``{key}`` segments, and how it is written.
SOURCES: dict[str, tuple[int, int | None, str]] = {
    "Input": (1, None, "$Input{key}..."),
    "Session": (1, None, "$Session{key}..."),
    "Variable": (2, None, "$Variable{app}{key}..."),
    "Constant": (2, None, "$Constant{app}{key}..."),
    "Secret": (1, 1, "$Secret{key}"),
    "Now": (0, 0, "$Now"),
    "Sequence": (2, None, "$Sequence{sequence_tag}{event_tag}..."),
}

_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None}
_STRING_ESCAPES = {"n": "\n", "t": "\t"}
_NUMBER_CHARS = frozenset("0123456789+-.eE")


# ------------------------------------------------------------------------------------------------ AST


class Literal(Struct, frozen=True):
    """Plain text in a template, or a literal function argument (str, int, float, bool, None)."""

    value: Any

    def __str__(self) -> str:
        if isinstance(self.value, str):
            return "'" + self.value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        if isinstance(self.value, bool) or self.value is None:
            return {True: "true", False: "false", None: "null"}[self.value]
        return repr(self.value)


class Reference(Struct, frozen=True):
    """``$Input{items}{[0]}`` is ``Reference("Input", ("items", 0))``."""

    source: str
    path: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        return "$" + self.source + "".join(f"{{[{k}]}}" if isinstance(k, int) else f"{{{k}}}" for k in self.path)


class Call(Struct, frozen=True):
    """``$Uppercase($Input{name})`` is ``Call("Uppercase", (Reference("Input", ("name",)),))``."""

    name: str
    args: tuple[Node, ...]

    def __str__(self) -> str:
        return f"${self.name}({', '.join(map(str, self.args))})"


Node: TypeAlias = Literal | Reference | Call


def iter_references(node: Node) -> Iterator[Reference]:
    if isinstance(node, Reference):
        yield node
    elif isinstance(node, Call):
        for arg in node.args:
            yield from iter_references(arg)


class Template(Struct, frozen=True):
    """A parsed text: literal text and placeholders, in order. Adjacent text is merged into one ``Literal``."""

    text: str
    parts: tuple[Node, ...]

    @property
    def whole(self) -> Reference | Call | None:
        """The placeholder when the text is exactly one placeholder (its value keeps its type), else None."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], Literal):
            return self.parts[0]
        return None

    @property
    def is_static(self) -> bool:
        """True when there is nothing to resolve (the text may still contain ``$$`` escapes)."""
        return all(isinstance(p, Literal) for p in self.parts)

    def references(self) -> list[Reference]:
        return [ref for part in self.parts for ref in iter_references(part)]


#: The longest text ``parse`` keeps compiled, and how many it keeps: a definition's templates and most inputs are
#: short. A text of up to 65,536 characters (an input's string) cached whole, 4,096 of them, held about 2 GiB in a
#: server whose callers sent them, refused or not (a probe: 0.53 MiB a request); these bound the cache to some MiB.
CACHED_TEXT, CACHED_TEXTS = 512, 1024


def parse(text: str) -> Template:
    """Compile ``text``. Cached when short (``CACHED_TEXT``): the same definition is resolved on every run."""
    return _cached(text) if len(text) <= CACHED_TEXT else _compile(text)


def _compile(text: str) -> Template:
    return Template(text, _Parser(text).template())


_cached = lru_cache(maxsize=CACHED_TEXTS)(_compile)


def forget_parsed() -> None:
    """Empty ``parse``'s cache (a function registered since: cached templates were checked without it)."""
    _cached.cache_clear()


# -------------------------------------------------------------------------------------------- scanner


def _is_name_start(c: str) -> bool:
    return c.isascii() and c.isalpha()


def _is_name_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _hint(name: str) -> str:
    for known in (*SOURCES, *FUNCTIONS):
        if known.lower() == name.lower():
            return f" (did you mean ${known}?)"
    return ""


def _count(n: int) -> str:
    return f"{n} key" if n == 1 else f"{n} keys"


#: How deep function calls may nest (``$Upper($Lower(...))`` is 2): beyond, a syntax error, not a stack overflow.
MAX_NESTING = 32


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, reason: str, position: int) -> PipingSyntaxError:
        return PipingSyntaxError(self.text, position, reason)

    def excerpt(self, start: int, end: int | None = None, width: int = 40) -> str:
        """The offending text for a message, cut short when long."""
        fragment = self.text[start:end]
        return fragment if len(fragment) <= width else fragment[:width] + "..."

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.peek().isspace():
            self.pos += 1

    def name(self) -> str:
        start = self.pos
        if _is_name_start(self.peek()):
            self.pos += 1
            while _is_name_char(self.peek()):
                self.pos += 1
        return self.text[start : self.pos]

    # -- template

    def template(self) -> tuple[Node, ...]:
        text = self.text
        parts: list[Node] = []
        chunk: list[str] = []
        while (dollar := text.find("$", self.pos)) >= 0:
            chunk.append(text[self.pos : dollar])
            self.pos = dollar + 1
            if self.peek() == "$":
                chunk.append("$")
                self.pos += 1
                continue
            name = self.name()
            if not name or (name not in SOURCES and self.peek() not in ("{", "(")):
                chunk.append(text[dollar : self.pos])  # "$5", "$USD": not a placeholder
                continue
            if literal := "".join(chunk):
                parts.append(Literal(literal))
            chunk = []
            parts.append(self.placeholder(dollar, name))
        chunk.append(text[self.pos :])
        if literal := "".join(chunk):
            parts.append(Literal(literal))
        return tuple(parts)

    def placeholder(self, start: int, name: str) -> Reference | Call:
        """``self.pos`` is just past ``$name``."""
        if name in SOURCES:
            return self.reference(start, name)
        if self.peek() == "(":
            return self.call(start, name)
        if name in FUNCTIONS:
            raise self.fail(f"${name} is a function: call it as ${name}(...)", start)
        sources = ", ".join(f"${s}" for s in SOURCES)
        raise self.fail(f"unknown source '${name}'{_hint(name) or f'; sources are {sources}'}", start)

    def reference(self, start: int, source: str) -> Reference:
        text = self.text
        path: list[str | int] = []
        while self.peek() == "{":
            opening = self.pos
            closing = text.find("}", opening + 1)
            if closing < 0 or text.find("{", opening + 1, closing) >= 0:
                raise self.fail(f"unclosed '{{' in '{self.excerpt(start, closing if closing >= 0 else None)}'", opening)
            path.append(self.segment(text[opening + 1 : closing], opening))
            self.pos = closing + 1
        fewest, most, usage = SOURCES[source]
        if len(path) < fewest or (most is not None and len(path) > most):
            if most is None:
                need = f"needs at least {_count(fewest)}"
            else:
                need = "takes no {key}" if most == 0 else f"takes exactly {_count(most)}"
            raise self.fail(f"${source} {need} ({usage}), got '{self.excerpt(start, self.pos)}'", start)
        return Reference(source, tuple(path))

    def segment(self, raw: str, position: int) -> str | int:
        if not raw:
            raise self.fail("empty key '{}'", position)
        if raw.startswith("[") or raw.endswith("]"):
            digits = raw[1:-1]
            if not (raw.startswith("[") and raw.endswith("]") and digits.isascii() and digits.isdigit()):
                raise self.fail(f"a list index is a whole number in brackets, like {{[0]}}; got '{{{raw}}}'", position)
            return int(digits)
        return raw

    # -- function calls

    def call(self, start: int, name: str) -> Call:
        function = FUNCTIONS.get(name)
        if function is None:
            raise self.fail(f"unknown function '${name}'{_hint(name)}", start)
        if self.depth >= MAX_NESTING:
            raise self.fail(f"functions nest deeper than {MAX_NESTING} levels", start)
        self.depth += 1
        try:
            return self._call(start, name, function)
        finally:
            self.depth -= 1

    def _call(self, start: int, name: str, function: PipingFunction) -> Call:
        opening = self.pos
        self.pos += 1
        args: list[Node] = []
        self.skip_spaces()
        if self.peek() == ")":
            self.pos += 1
        else:
            while True:
                args.append(self.arg(start, opening))
                self.skip_spaces()
                c = self.peek()
                self.pos += 1
                if c == ")":
                    break
                if c == "":
                    raise self.fail(f"unclosed '(' in '{self.excerpt(start)}'", opening)
                if c != ",":
                    raise self.fail(f"expected ',' or ')' after an argument, got {c!r}", self.pos - 1)
        if not function.accepts(len(args)):
            plural = "" if (function.max_args if function.max_args is not None else function.min_args) == 1 else "s"
            raise self.fail(
                f"${name} takes {function.arity} argument{plural}, got {len(args)}: '{self.excerpt(start, self.pos)}'",
                start,
            )
        return Call(name, tuple(args))

    def arg(self, call: int, opening: int) -> Node:
        self.skip_spaces()
        start = self.pos
        c = self.peek()
        if c == "":
            raise self.fail(f"unclosed '(' in '{self.excerpt(call)}'", opening)
        if c == "$":
            self.pos += 1
            name = self.name()
            if not name:
                raise self.fail("expected a placeholder or a function after '$'", start)
            return self.placeholder(start, name)
        if c in ("'", '"'):
            return self.string()
        if c in _NUMBER_CHARS:
            return self.number()
        if _is_name_start(c):
            word = self.name()
            if word in _WORDS:
                return Literal(_WORDS[word])
            raise self.fail(f"unexpected {word!r} (quote text: '{word}')", start)
        if c in (",", ")"):
            raise self.fail("expected an argument", start)
        raise self.fail(f"unexpected {c!r} in arguments", start)

    def string(self) -> Literal:
        text, start = self.text, self.pos
        quote = text[start]
        out: list[str] = []
        self.pos += 1
        while self.pos < len(text):
            c = text[self.pos]
            if c == "\\" and self.pos + 1 < len(text):
                escaped = text[self.pos + 1]
                out.append(_STRING_ESCAPES.get(escaped, escaped))
                self.pos += 2
            elif c == quote:
                self.pos += 1
                return Literal("".join(out))
            else:
                out.append(c)
                self.pos += 1
        raise self.fail(f"unclosed string {self.excerpt(start)!r}", start)

    def number(self) -> Literal:
        start = self.pos
        while self.peek() and self.peek() in _NUMBER_CHARS:
            self.pos += 1
        raw = self.text[start : self.pos]
        for convert in (int, float):
            try:
                value = convert(raw)
            except ValueError:
                continue
            rule = number_rule(value)  # as an input's own numbers (a probe: $Default(1e309, 0) gave a FUNCTION inf)
            if rule is not None:
                raise self.fail(f"number {raw!r} {rule}", start)
            return Literal(value)
        raise self.fail(f"bad number {raw!r}", start)


def register_function(
    name: str,
    fn: Callable[..., Any],
    min_args: int,
    max_args: int | None,
    *,
    lazy: bool = False,
    missing_ok: Iterable[int] = (),
    replace: bool = False,
) -> PipingFunction:
    """Make ``$<name>(...)`` available. Raises ``ValueError`` for a bad name, bad arity or a taken name."""
    if not is_name(name):
        raise ValueError(f"bad function name {name!r}: use an ASCII letter, then letters, digits or '_'")
    if name in SOURCES:
        raise ValueError(f"{name!r} is a source name, not a function name")
    if name in FUNCTIONS and not replace:
        raise ValueError(f"function ${name} is already registered (pass replace=True to replace it)")
    if min_args < 0 or (max_args is not None and max_args < min_args):
        raise ValueError(f"bad arity for ${name}: min_args={min_args}, max_args={max_args}")
    guarded = frozenset(missing_ok)
    if any(i < 0 or (max_args is not None and i >= max_args) for i in guarded):
        raise ValueError(f"missing_ok for ${name} names an argument that does not exist: {sorted(guarded)}")
    entry = PipingFunction(name, fn, min_args, max_args, lazy, guarded)
    FUNCTIONS[name] = entry
    forget_parsed()  # cached templates were checked against the old registry
    return entry
