"""SQLite's queries bound by position: each ``:name`` of a query becomes ``?N`` once, when the queries load, and a
call's parameters are read from its dict into a tuple in that order (``operator.itemgetter``, in C).

The ``.sql`` files keep their names (readable, and the same as PostgreSQL's ``%(name)s``); only the text sent
changes. The sqlite3 module binds a dict by looking every name up for every execution (a Python string made
from the statement's C string, then a dict lookup): about 7 us of a 29-parameter insert such as a schedule's,
against under 1 us for a tuple. A parameter read with ``json_each(:name)`` is a list, passed as JSON text
(``rows_json``), or that text already."""

from __future__ import annotations

import operator
import re
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, cast

from msgspec import Struct

from ductape_jobs.store.codec import rows_json

#: ``None`` bound as NULL without a raised exception. The sqlite3 module sends every parameter that is not an int,
#: float, str or bytearray through its adapters; finding none for ``None``, it asks its protocol type for
#: ``__adapt__``, which raises (and clears) an AttributeError with its message formatted: about a tenth of the
#: module's work for a schedule's rows, which bind 30-odd NULLs a call. An adapter found answers at once; this one
#: (``{}.get``, a method in C) gives ``None`` back, which binds as NULL as before. It is the process's, for every
#: connection of the sqlite3 module: binding ``None`` is unchanged for all of them. An adapter of ``None`` the
#: application registered first is left as it is.
if (type(None), sqlite3.PrepareProtocol) not in sqlite3.adapters:
    sqlite3.register_adapter(type(None), cast("Callable[[None], None]", {}.get))

#: Comments and quoted text (copied as they are: a ``:`` in them is no parameter), or a ``:name`` parameter.
_TOKEN = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|:([A-Za-z_]\w*)", re.DOTALL)


class Bound(Struct, frozen=True):
    """A query as sent (``?N`` parameters) and how a call's dict becomes its arguments."""

    sql: str
    names: tuple[str, ...]  # the name of ?1, ?2, ...
    lists: tuple[str, ...]  # the names read with json_each
    _get: Callable[[Mapping[str, Any]], tuple[Any, ...]]

    def args(self, params: Mapping[str, Any] | None) -> tuple[Any, ...]:
        if not self.names:
            return ()
        if params is None:
            params = {}
        if self.lists:  # a list as JSON text; text (JSON already) as it is
            params = {
                **params,
                **{
                    key: rows_json(params[key])
                    for key in self.lists
                    if key in params and not isinstance(params[key], str)
                },
            }
        try:
            return self._get(params)
        except KeyError as exc:  # as sqlite3 says it of a dict without the name
            missing = exc.args[0]
            raise sqlite3.ProgrammingError(f"You did not supply a value for binding parameter :{missing}.") from None


def bind(query: str) -> Bound:
    """``query`` with its ``:name`` parameters numbered in order of first use (a name used twice is one number)."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        return f"?{numbers.setdefault(name, len(numbers) + 1)}"

    sql = _TOKEN.sub(number, query)
    names = tuple(numbers)
    lists = tuple(dict.fromkeys(re.findall(r"json_each\(:(\w+)\)", query)))
    return Bound(sql, names, lists, _getter(names))


def _getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if not names:
        return lambda params: ()
    if len(names) == 1:
        (name,) = names
        return lambda params: (params[name],)
    get: Callable[[Mapping[str, Any]], tuple[Any, ...]] = operator.itemgetter(*names)
    return get


__all__ = ["Bound", "bind"]
