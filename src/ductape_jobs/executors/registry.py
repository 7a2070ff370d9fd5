"""Which executor runs which event type."""

from __future__ import annotations

from ductape_jobs.errors import ExecutorNotFoundError
from ductape_jobs.executors.base import Executor
from ductape_jobs.models import JobEventTypes


class ExecutorRegistry:
    def __init__(self) -> None:
        self._by_type: dict[JobEventTypes, Executor] = {}

    def register(self, executor: Executor) -> None:
        self._by_type[executor.event_type] = executor

    def get(self, event_type: JobEventTypes) -> Executor:
        try:
            return self._by_type[event_type]
        except KeyError:
            have = ", ".join(t.name for t in self._by_type) or "none"
            raise ExecutorNotFoundError(
                f"no executor for event type {event_type.name} in this worker (it has: {have})"
            ) from None
