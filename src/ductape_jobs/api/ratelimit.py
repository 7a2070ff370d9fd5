"""Requests per API key (``create_app(rate_limit=...)``, ``ductape serve --rate-limit 100/s``): past the rate, a
request is answered 429 with ``Retry-After``, before its route reads or writes anything.

A key's requests are counted by the ``limits`` library's sliding window counter (two counters a key, whatever the
rate: a moving window kept an entry a request, 160 MB for one key at a million a day), in this server process's
memory: each process of a server run several times counts its own. A dashboard login, and each request of its
session, counts as its key. A request whose key is not valid is refused (401) before it is counted."""

from __future__ import annotations

import math
import time
from datetime import timedelta

from fastapi import HTTPException
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from ductape_jobs.errors import ValidationError
from ductape_jobs.resources import Rate, parse_rate


class RateLimit:
    """``rate`` requests of one API key in a window of its length, by a sliding window counter (module doc)."""

    def __init__(self, rate: Rate | str) -> None:
        self.rate = parse_rate(str(rate) if isinstance(rate, Rate) else rate, "rate_limit")  # a Rate's bounds too
        seconds = self.rate.window / timedelta(seconds=1)
        if seconds != int(seconds):
            raise ValidationError("rate_limit", f"its window must be whole seconds, not {self.rate.window}")
        self._item = RateLimitItemPerSecond(self.rate.count, int(seconds))
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def check(self, key_id: str) -> None:
        """Count a request of the key ``key_id``; past the rate, ``HTTPException`` 429 saying when to try again."""
        if self._limiter.hit(self._item, key_id):
            return
        reset = self._limiter.get_window_stats(self._item, key_id).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise HTTPException(
            429,
            f"this API key made more than {self.rate} requests (this server's --rate-limit): try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
