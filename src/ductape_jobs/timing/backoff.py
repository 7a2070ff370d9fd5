"""Exponential backoff with jitter, and the one retry helper built on it.

``Backoff`` spaces the attempts of a failing run, of a feature event and of a webhook delivery. ``retry`` and
``retry_async`` call an operation until it succeeds, ``retryable(exc)`` says no, or ``tries`` run out, sleeping
``backoff.delay(n)`` between attempts (the PostgreSQL store's transactions, the worker's recording of outcomes).
Whether a failure may be retried stays the caller's rule: the store never retries a transaction that failed
while committing unless it is idempotent (it may have committed).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from msgspec import Struct

from ductape_jobs.errors import ValidationError

T = TypeVar("T")
OnRetry = Callable[[Exception, timedelta], None]


class Backoff(Struct, frozen=True):
    """Delay before retry ``n`` (1-based): ``base * factor**(n-1)``, at most ``cap``, minus up to ``jitter``
    of itself at random so that a burst of failures does not retry in lockstep."""

    base: timedelta = timedelta(seconds=1)
    factor: float = 2.0
    cap: timedelta = timedelta(minutes=10)
    jitter: float = 0.2

    def __post_init__(self) -> None:
        """Checked when made: ``Backoff(base=1)`` (seconds meant) was taken, and the first retry raised in the
        worker, leaving its run running with an unfinished attempt."""
        for name in ("base", "cap"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ValidationError(
                    f"backoff.{name}",
                    f"must be a timedelta of zero or more, e.g. timedelta(seconds=1) (got {value!r:.40})",
                )
        for name, least, most in (("factor", 1.0, 100.0), ("jitter", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not least <= value <= most:
                raise ValidationError(
                    f"backoff.{name}", f"must be a number from {least:g} to {most:g} (got {value!r:.40})"
                )

    def delay(self, retry: int, rng: random.Random | None = None) -> timedelta:
        cap = self.cap.total_seconds()
        try:
            raw = min(cap, self.base.total_seconds() * self.factor ** max(0, retry - 1))
        except OverflowError:  # a factor to a power past a float's range: the cap
            raw = cap
        spread = raw * self.jitter * (rng or random).random()
        return timedelta(seconds=raw - spread)


def _always(exc: Exception) -> bool:
    return True


def _pause(
    exc: Exception,
    attempt: int,
    tries: int,
    backoff: Backoff,
    retryable: Callable[[Exception], bool],
    on_retry: OnRetry | None,
) -> float:
    """Seconds to wait after failed ``attempt``; ``exc`` raised again when it is the last or may not be retried."""
    if attempt >= tries or not retryable(exc):
        raise exc
    delay = backoff.delay(attempt)
    if on_retry is not None:
        on_retry(exc, delay)
    return delay.total_seconds()


def retry(
    op: Callable[[], T],
    *,
    tries: int,
    backoff: Backoff,
    retryable: Callable[[Exception], bool] = _always,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``op()``, tried up to ``tries`` times; the last failure (or one ``retryable`` refuses) is raised.
    ``on_retry(exc, delay)`` runs inside the ``except`` block before each wait (for logging)."""
    for attempt in range(1, tries + 1):
        try:
            return op()
        except Exception as exc:
            sleep(_pause(exc, attempt, tries, backoff, retryable, on_retry))
    raise ValueError(f"tries: must be at least 1, not {tries}")


async def retry_async(
    op: Callable[[], Awaitable[T]],
    *,
    tries: int,
    backoff: Backoff,
    retryable: Callable[[Exception], bool] = _always,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """``retry`` for a coroutine function: the waits are ``await sleep(seconds)``."""
    for attempt in range(1, tries + 1):
        try:
            return await op()
        except Exception as exc:
            await sleep(_pause(exc, attempt, tries, backoff, retryable, on_retry))
    raise ValueError(f"tries: must be at least 1, not {tries}")
