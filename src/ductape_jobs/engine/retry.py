"""Exponential backoff with jitter between a failed attempt and the next."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry ``n`` (1-based): ``base * factor**(n-1)``, at most ``cap``, minus up to ``jitter``
    of itself at random so that a burst of failures does not retry in lockstep."""

    base: timedelta = timedelta(seconds=1)
    factor: float = 2.0
    cap: timedelta = timedelta(minutes=10)
    jitter: float = 0.2

    def delay(self, retry: int, rng: random.Random | None = None) -> timedelta:
        raw = min(self.cap.total_seconds(), self.base.total_seconds() * self.factor ** max(0, retry - 1))
        spread = raw * self.jitter * (rng or random).random()
        return timedelta(seconds=raw - spread)
