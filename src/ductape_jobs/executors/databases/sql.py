"""Statements with ``:name`` parameters: finding them, translating them for a driver, binding a run's input.

The tokenizer skips string literals, quoted identifiers, comments, PostgreSQL dollar quotes and ``::type``
casts, so ``'a:b'``, ``x::int`` and ``-- :note`` are left alone. Parameters are only ever bound by the
database server: the SQL text gets placeholders (``%(name)s``, ``:name`` or ``?``), never a value. psycopg and
sqlite3 send the values apart from the text; on MySQL/MariaDB (PyMySQL quotes values into the text it sends) the
statement is prepared on the server and executed with the values (``MySQLDriver.execute``), so where this tokenizer
and the server disagree about a literal (an executable comment ``/*! ... */``, a ``sql_mode``) a statement fails,
and a value never becomes SQL.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any, Literal

from msgspec import Struct

from ductape_jobs.errors import DatabaseError, ValidationError

Dialect = Literal["postgresql", "mysql", "sqlite"]
ParamStyle = Literal["pyformat", "named", "qmark"]  # %(name)s (psycopg), :name (sqlite3), ? (a MySQL PREPARE)

_PARAM = re.compile(r":([^\W\d]\w*(?:\.[^\W\d]\w*)*)")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_SAFE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = " \t\r\n\f\v"
_MISSING = object()


class Statement(Struct, frozen=True):
    """One SQL statement with named parameters written ``:name``, ``:data.name`` or ``:filter.id``."""

    sql: str

    def __post_init__(self) -> None:
        if not isinstance(self.sql, str) or not self.sql.strip():
            raise ValidationError("sql", "must be a non-empty string")

    @property
    def parameters(self) -> tuple[str, ...]:
        """The parameter names as written (without ``:``), each once, in order of appearance."""
        return compile_statement(self.sql, None, "named").names


class Compiled(Struct, frozen=True):
    """A statement translated for one driver: ``sql`` has its placeholders, ``keys`` maps each written
    parameter name to the key its value goes under in the driver's parameter dict; ``order``: the key of each
    placeholder in turn (``qmark``'s ``?`` are bound by position)."""

    sql: str
    names: tuple[str, ...]
    keys: tuple[tuple[str, str], ...]
    order: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------ tokenizer


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Index just past the literal or identifier opened by ``sql[i]``; doubled quotes and (when
    ``backslash``) backslash escapes stay inside. An unterminated one runs to the end."""
    j, n = i + 1, len(sql)
    while j < n:
        ch = sql[j]
        if backslash and ch == "\\":
            j += 2
        elif ch == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
            else:
                return j + 1
        else:
            j += 1
    return n


def _skip_block_comment(sql: str, i: int, nested: bool) -> int:
    depth, j, n = 1, i + 2, len(sql)
    while j < n:
        if sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0 or not nested:
                return j
        elif nested and sql.startswith("/*", j):
            depth += 1
            j += 2
        else:
            j += 1
    return n


def _skip_line(sql: str, i: int) -> int:
    j = sql.find("\n", i)
    return len(sql) if j < 0 else j + 1


def _skip(sql: str, i: int, dialect: Dialect | None) -> int:
    """If a literal, quoted identifier or comment starts at ``i``, the index just past it; else ``i``."""
    ch = sql[i]
    prev = sql[i - 1] if i else ""
    mysql = dialect == "mysql"
    if ch == "'":
        # MySQL escapes with backslashes in every string (by default); PostgreSQL only in E'...' strings.
        e_string = dialect != "sqlite" and prev in "eE" and prev != "" and not (i > 1 and _word(sql[i - 2]))
        return _skip_quoted(sql, i, "'", mysql or e_string)
    if ch == '"':
        return _skip_quoted(sql, i, ch, mysql)
    if ch == "`":
        return _skip_quoted(sql, i, ch, False)  # MySQL's identifiers: a doubled backtick, never a backslash
    if ch == "[" and dialect == "sqlite":
        j = sql.find("]", i + 1)
        return len(sql) if j < 0 else j + 1
    if sql.startswith("--", i) and (not mysql or i + 2 == len(sql) or sql[i + 2] in _SPACE):
        return _skip_line(sql, i)  # MySQL needs a space after "--" (5--1 is arithmetic there)
    if ch == "#" and mysql:
        return _skip_line(sql, i)
    if sql.startswith("/*", i):
        return _skip_block_comment(sql, i, nested=dialect in (None, "postgresql"))
    if ch == "$" and dialect in (None, "postgresql") and not _word(prev) and (m := _DOLLAR_TAG.match(sql, i)):
        j = sql.find(m.group(), m.end())
        return len(sql) if j < 0 else j + len(m.group())
    return i


def parameter_spans(sql: str, dialect: Dialect | None = None) -> list[tuple[int, int, str]]:
    """``(start, end, name)`` of every ``:name`` parameter outside literals, identifiers and comments.
    ``dialect`` None means portable SQL (no backslash escapes outside E'...', no ``#`` comments)."""
    spans: list[tuple[int, int, str]] = []
    i, n = 0, len(sql)
    while i < n:
        j = _skip(sql, i, dialect)
        if j != i:
            i = j
            continue
        if sql[i] == ":" and (m := _PARAM.match(sql, i)) and not (i and (sql[i - 1] == ":" or _word(sql[i - 1]))):
            spans.append((i, m.end(), m.group(1)))
            i = m.end()
        else:
            i += 1
    return spans


def _driver_key(name: str, used: set[str]) -> str:
    key = name.replace(".", "__")
    if not _SAFE_KEY.fullmatch(key):
        key = "p"
    base, n = key, 1
    while key in used:
        n += 1
        key = f"{base}_{n}"
    used.add(key)
    return key


@lru_cache(maxsize=1024)
def compile_statement(sql: str, dialect: Dialect | None, style: ParamStyle) -> Compiled:
    """``sql`` with its ``:name`` parameters replaced by the placeholders of ``style``; with ``pyformat``
    every literal ``%`` is doubled so the driver reads it back as one ``%``."""
    placeholder = {"pyformat": "%({})s", "named": ":{}", "qmark": "?"}[style]
    spans = parameter_spans(sql, dialect)
    keys: dict[str, str] = {}
    used: set[str] = set()
    for _, _, name in spans:
        if name not in keys:
            keys[name] = _driver_key(name, used)
    percent = style == "pyformat"
    out: list[str] = []
    pos = 0
    for start, end, name in spans:
        text = sql[pos:start]
        out.append(text.replace("%", "%%") if percent else text)
        out.append(placeholder.format(keys[name]))
        pos = end
    tail = sql[pos:]
    out.append(tail.replace("%", "%%") if percent else tail)
    return Compiled("".join(out), tuple(keys), tuple(keys.items()), tuple(keys[name] for _, _, name in spans))


# ------------------------------------------------------------------------------------------ binding


def _lookup(input: Mapping[str, Any], name: str) -> Any:
    if "." in name:  # explicit path: data.name, filter.id, or any nested key
        node: Any = input
        for part in name.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return _MISSING
            node = node[part]
        return node
    for section in ("data", "filter"):
        values = input.get(section)
        if isinstance(values, Mapping) and name in values:
            return values[name]
    return input.get(name, _MISSING)


def to_parameter(value: Any) -> Any:
    """A value as bound: dicts, lists, tuples and sets become JSON text, anything else is passed as is."""
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return json.dumps(to_json_value(value), ensure_ascii=False, separators=(",", ":"))
    return value


def bind_names(names: tuple[str, ...], input: Mapping[str, Any] | None) -> dict[str, Any]:
    if input is None:
        input = {}
    if not isinstance(input, Mapping):
        raise DatabaseError(
            f"the database action input must be an object ({{data, filter}}), not {type(input).__name__}",
            retryable=False,
        )
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name in names:
        value = _lookup(input, name)
        if value is _MISSING:
            missing.append(name)
        else:
            values[name] = to_parameter(value)
    if missing:
        listed = ", ".join(f":{name}" for name in missing)
        raise DatabaseError(
            f"missing parameter{'s' if len(missing) > 1 else ''} {listed} "
            "(a plain :name is looked up in data, then filter, then the top level of the input)",
            retryable=False,
        )
    return values


def bind_parameters(
    statement: Statement, input: Mapping[str, Any] | None, *, dialect: Dialect | None = None
) -> dict[str, Any]:
    """The value of each parameter of ``statement``, keyed by its name as written (``"name"``, ``"data.name"``).

    A plain ``:name`` is looked up in ``input["data"]``, then ``input["filter"]``, then ``input`` itself;
    a dotted one follows its path from the top. A missing one raises a non-retryable ``ExecutionError``.
    """
    return bind_names(compile_statement(statement.sql, dialect, "named").names, input)


# ------------------------------------------------------------------------------------------ results


def _decimal(value: Decimal) -> Any:
    if not value.is_finite():
        return str(value)
    if int(value.as_tuple().exponent) >= 0:
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)  # str when a float would lose digits


def to_json_value(value: Any) -> Any:
    """``value`` as something ``json.dumps`` takes: ISO text for dates and times, seconds for durations,
    numbers (or text when a float would lose digits) for decimals, base64 for bytes, text for the rest."""
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(v) for v in value]
    if isinstance(value, Enum):
        return to_json_value(value.value)
    return str(value)  # UUID, IP addresses, ranges, ...
