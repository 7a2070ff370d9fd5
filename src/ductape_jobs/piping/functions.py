"""Piping functions (``$Concat(a, b)``, ``$DateAdd($Now, 1, 'days')``, ...) and the registry they live in
(``grammar.register_function`` adds to it: the grammar owns the names of sources and functions).

A function receives its evaluated arguments and returns a value. A *lazy* function receives one
zero-argument callable per argument instead and evaluates only the ones it needs (``$Default``).
A ``ValueError``/``TypeError``/``ArithmeticError`` raised by a function becomes a ``PipingError``
naming the call.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from msgspec import Struct

from ductape_jobs.limits import as_text
from ductape_jobs.piping.errors import PipingMissingError

Thunk: TypeAlias = Callable[[], Any]


class PipingFunction(Struct, frozen=True):
    name: str
    fn: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: no upper limit
    lazy: bool = False
    #: Argument indexes in which a missing reference is expected (``check`` does not report it there).
    missing_ok: frozenset[int] = frozenset()

    def accepts(self, count: int) -> bool:
        return count >= self.min_args and (self.max_args is None or count <= self.max_args)

    @property
    def arity(self) -> str:
        if self.max_args is None:
            return f"at least {self.min_args}"
        if self.max_args == self.min_args:
            return str(self.min_args)
        return f"{self.min_args} to {self.max_args}"


FUNCTIONS: dict[str, PipingFunction] = {}


def is_name(name: str) -> bool:
    """The scanner's rule for source and function names: an ASCII letter, then ASCII letters, digits, ``_``."""
    return bool(name) and name.isascii() and name[0].isalpha() and name.replace("_", "a").isalnum()


# ------------------------------------------------------------------------------------------- helpers


#: How a value reads inside text (``limits.as_text``: one rule for a placeholder's text and a path's or header's value).
to_text = as_text


def format_time(when: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as JavaScript's ``toISOString()``: 2026-03-02T12:00:00.000Z."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> datetime:
    """An ISO 8601 string (or a datetime) as an aware datetime; no offset means UTC."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not an ISO 8601 date: {value!r}") from None
    else:
        raise TypeError(f"a date must be an ISO 8601 string, got {type(value).__name__}")
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _number(value: Any) -> int | float:
    number = value
    if isinstance(value, str):
        for convert in (int, float):
            try:
                number = convert(value.strip())
                break
            except ValueError:
                pass
    if isinstance(number, int | float) and not isinstance(number, bool) and number == number:  # NaN is no amount
        return number
    raise ValueError(f"amount must be a number, got {value!r}")


_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


# ----------------------------------------------------------------------------------------- built-ins


def _concat(*values: Any) -> str:
    return "".join(to_text(v) for v in values)


def _uppercase(value: Any) -> str:
    return to_text(value).upper()


def _lowercase(value: Any) -> str:
    return to_text(value).lower()


def _date_add(date: Any, amount: Any, unit: Any) -> str:
    key = unit.strip().lower().removesuffix("s") if isinstance(unit, str) else ""
    if key not in _UNIT_SECONDS:
        raise ValueError(f"unit must be seconds, minutes, hours, days or weeks, got {unit!r}")
    try:
        return format_time(parse_time(date) + timedelta(seconds=_number(amount) * _UNIT_SECONDS[key]))
    except OverflowError:  # timedelta's own words were Python's ("int too large to convert to C int")
        raise ValueError(f"{amount!r} {unit} from {date!r} is beyond the dates a time can hold") from None


def _default(value: Thunk, fallback: Thunk) -> Any:
    try:
        return value()
    except PipingMissingError:
        return fallback()


def _builtin(name: str, fn: Callable[..., Any], lo: int, hi: int | None, **kw: Any) -> None:
    # the built-ins, registered before any text is parsed (``grammar.register_function`` adds more)
    FUNCTIONS[name] = PipingFunction(name, fn, lo, hi, **kw)


_builtin("Concat", _concat, 1, None)
_builtin("Uppercase", _uppercase, 1, 1)
_builtin("Lowercase", _lowercase, 1, 1)
_builtin("DateAdd", _date_add, 3, 3)
_builtin("Default", _default, 2, 2, lazy=True, missing_ok=frozenset({0}))
