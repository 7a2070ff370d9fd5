"""Shared resources: the concurrency and rate limits a run falls under, and priorities.

A product declares named resources (``resources: {crm-api: {concurrency: 2, rate: "10/s"}}``); a job names
the ones its runs use and may set its own ``concurrency`` and ``rate``. Each becomes a stored limit with a
key: ``<product>/<name>`` for a product's resource, ``<product>/job:<tag>`` for a job's own limit (a shared
job's product is ``''``). The claim (``store/limits_core.py``) starts a run only while every limit it falls
under has room, counted in the store, so across every worker and node.

Priorities age: a run is claimed as though it fell due ``priority`` seconds earlier (``AGING``). Among due
runs, a higher priority comes first and equal priorities keep due-time order; a run is never passed by a run
of higher priority that fell due more than the difference in priorities (in seconds) after it.
"""

from __future__ import annotations

import re
from datetime import timedelta

from msgspec import Struct

from ductape_jobs.errors import ValidationError
from ductape_jobs.limits import span_text

#: Priorities lie in ``MIN_PRIORITY..MAX_PRIORITY``; 0 is the default.
MIN_PRIORITY = -100
MAX_PRIORITY = 100
#: One point of priority counts as this much earlier due time (so at most 200 s between the extremes).
AGING = timedelta(seconds=1)
#: The most runs one limit may let run at once, or start in one window.
MAX_LIMIT = 1_000_000
#: The longest rate window.
MAX_WINDOW = timedelta(days=1)

_UNITS = {
    "ms": 1,
    "s": 1000,
    "sec": 1000,
    "second": 1000,
    "m": 60_000,
    "min": 60_000,
    "minute": 60_000,
    "h": 3_600_000,
    "hour": 3_600_000,
}
_DIGITS = 12
_MS = timedelta(milliseconds=1)
_RATE = re.compile(r"^\s*([0-9]+)\s*(?:/|per)\s*([0-9]*)\s*([a-z]+)\s*$")  # ASCII digits: int() reads others


class Rate(Struct, frozen=True):
    """At most ``count`` starts in any window of ``window`` (a sliding window)."""

    count: int
    window: timedelta

    def __str__(self) -> str:
        ms = int(self.window.total_seconds() * 1000)
        for unit in ("h", "m", "s"):
            if ms % _UNITS[unit] == 0:
                n = ms // _UNITS[unit]
                return f"{self.count}/{'' if n == 1 else n}{unit}"
        return f"{self.count}/{ms}ms"


def parse_rate(value: object, field: str) -> Rate:
    """``"10/s"``, ``"600/min"``, ``"5/10s"``, ``"20 per second"``: ``ValidationError`` naming ``field``."""
    if isinstance(value, Rate):
        return value
    text = value.lower() if isinstance(value, str) else ""
    match = _RATE.match(text)
    unit = _unit(match.group(3)) if match else None
    if match is None or unit is None:
        raise ValidationError(field, f"{value!r} is not a rate; write COUNT/UNIT, such as '10/s', '600/min' or '5/10s'")
    count_digits = match.group(1).lstrip("0") or "0"
    per_digits = (match.group(2).lstrip("0") or "0") if match.group(2) else "1"  # "/s": one second
    if max(len(count_digits), len(per_digits)) > _DIGITS:  # past any bound below, and past what int() reads
        raise ValidationError(field, f"is not a rate: a number in it has more than {_DIGITS} digits")
    count, per = int(count_digits), int(per_digits)
    if not 1 <= count <= MAX_LIMIT:
        raise ValidationError(field, f"must allow between 1 and {MAX_LIMIT} starts per window, not {count}")
    window_ms = per * unit  # checked before it is a timedelta: one of 1e17 ms raised OverflowError (a 500)
    if not 1 <= window_ms <= MAX_WINDOW // _MS:
        most, asked = span_text(MAX_WINDOW), f"{window_ms} ms" if window_ms < 1000 else f"{window_ms / 1000:.15g} s"
        raise ValidationError(field, f"window must be between 1 ms and 1 day ({most}), not {asked}")
    return Rate(count, timedelta(milliseconds=window_ms))


def _unit(word: str) -> int | None:
    """A rate's unit in ms, by its name or its plural (``mins``, ``seconds``). The name first: ``ms`` is not the
    plural of ``m`` (read so, ``5/100ms`` was 5 per 100 minutes)."""
    found = _UNITS.get(word)
    if found is None and word.endswith("s"):
        found = _UNITS.get(word[:-1])
    return found


class ResourceLimit(Struct, frozen=True):
    """A stored limit: a product's resource, or a job's own limit (``name`` ``job:<tag>``)."""

    product_tag: str
    name: str
    concurrency: int | None = None
    rate: Rate | None = None

    @property
    def key(self) -> str:
        return resource_key(self.product_tag, self.name)

    def describe(self) -> str:
        """``'crm-api' (concurrency 2, rate 10/s)``: what a waiting run's ``waiting_on`` names."""
        parts = [f"concurrency {self.concurrency}"] if self.concurrency else []
        parts += [f"rate {self.rate}"] if self.rate else []
        return f"{self.name!r} ({', '.join(parts) or 'no limit'})"


class ResourceUse(Struct, frozen=True):
    """A limit and how much of it is taken now: runs executing, starts in the current window, runs waiting."""

    limit: ResourceLimit
    running: int
    recent_starts: int
    waiting: int


def resource_key(product_tag: str | None, name: str) -> str:
    return f"{product_tag or ''}/{name}"


def own_name(job_tag: str) -> str:
    return f"job:{job_tag}"


def limit_keys(product_tag: str | None, job_tag: str, resources: list[str], own: bool) -> list[str]:
    """The sorted keys a job's runs fall under (empty: the claim's fast path)."""
    keys = {resource_key(product_tag, name) for name in resources}
    if own:
        keys.add(resource_key(product_tag, own_name(job_tag)))
    return sorted(keys)
