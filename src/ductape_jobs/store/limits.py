"""The store contract's part for shared resources (``resources.py``); ``limits_core.py`` implements it.

Rules every implementation keeps (``tests/store/test_limits_store.py`` checks them against each backend):

- ``acquire_runs`` starts a run only while every limit it falls under has room: fewer runs executing under
  it than its ``concurrency``, and fewer starts than its rate's count within the sliding window before now,
  counted over every worker of the store. A run that does not fit stays due, spends no retry, and names the
  limit that holds it (``Run.waiting_on``).
- Due runs are claimed in order of ``available_at - priority seconds`` (``resources.AGING``); runs under no
  limit are claimed without reading the resource tables while no run under a limit is due.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from ductape_jobs.models import Run
from ductape_jobs.resources import ResourceLimit, ResourceUse


class LimitsStore(ABC):
    @abstractmethod
    def define_resources(self, limits: Sequence[ResourceLimit], now: datetime) -> None:
        """Store these limits (a product's resources), replacing the values of those already stored."""

    @abstractmethod
    def resource_use(self, now: datetime, product_tag: str | None = None) -> list[ResourceUse]:
        """Every stored limit (of one product) with its runs executing, its starts in the current window and
        its due runs waiting."""

    @abstractmethod
    def waiting_runs(self, now: datetime, product_tag: str | None = None, limit: int = 100) -> list[Run]:
        """Due runs a limit held at the last claim (``waiting_on`` set), in claim order."""
