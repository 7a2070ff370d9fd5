"""``AsyncDuctape``: the same API for asyncio code. Store calls run in a thread, never blocking the loop."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from ductape_jobs.client import Ductape
from ductape_jobs.features.api import AsyncFeatures
from ductape_jobs.models import (
    DispatchResult,
    DrainSummary,
    JobDefinition,
    JobUpdate,
    RepeatOptions,
    Run,
    RunPhase,
    Schedule,
    ScheduleRequest,
    ScheduleStatus,
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


async def _off(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


class AsyncJobs:
    """``await ductape.job.<method>(...)``: each method is ``Jobs``' method of the same name."""

    def __init__(self, owner: Ductape) -> None:
        self._jobs = owner.job

    async def create(self, details: JobDefinition | dict[str, Any]) -> JobDefinition:
        return await _off(self._jobs.create, details)

    async def update(self, tag: str, data: JobUpdate | dict[str, Any]) -> JobDefinition:
        return await _off(self._jobs.update, tag, data)

    async def fetch(self, tag: str) -> JobDefinition:
        return await _off(self._jobs.fetch, tag)

    async def fetch_all(self) -> list[JobDefinition]:
        return await _off(self._jobs.fetch_all)

    async def delete(self, tag: str) -> None:
        await _off(self._jobs.delete, tag)

    async def schedule(self, request: ScheduleRequest | dict[str, Any]) -> DispatchResult:
        return await _off(self._jobs.schedule, request)

    async def schedule_many(self, requests: Iterable[ScheduleRequest | dict[str, Any]]) -> list[DispatchResult]:
        return await _off(self._jobs.schedule_many, list(requests))

    async def get(self, job_id: str) -> Schedule:
        return await _off(self._jobs.get, job_id)

    async def list(self, **filters: Any) -> builtins.list[Schedule]:
        return await _off(self._jobs.list, **filters)

    async def pause(self, job_id: str) -> Schedule:
        return await _off(self._jobs.pause, job_id)

    async def resume(self, job_id: str) -> Schedule:
        return await _off(self._jobs.resume, job_id)

    async def cancel(self, job_id: str, reason: str | None = None) -> Schedule:
        return await _off(self._jobs.cancel, job_id, reason)

    async def reschedule(self, job_id: str, repeat: RepeatOptions | dict[str, Any]) -> Schedule:
        return await _off(self._jobs.reschedule, job_id, repeat)

    async def trigger(self, job_id: str) -> Run:
        return await _off(self._jobs.trigger, job_id)

    async def preview(
        self,
        repeat: RepeatOptions | dict[str, Any],
        start: datetime | str | int | None = None,
        count: int = 10,
    ) -> builtins.list[datetime]:
        return await _off(self._jobs.preview, repeat, start, count)

    async def runs(self, *, status: RunPhase | str | None = None, **filters: Any) -> builtins.list[Run]:
        return await _off(self._jobs.runs, status=status, **filters)

    async def run(self, run_id: str) -> Run:
        return await _off(self._jobs.run, run_id)

    async def retry(self, run_id: str) -> Run:
        return await _off(self._jobs.retry, run_id)


class AsyncDuctape:
    """``AsyncDuctape(...)`` takes ``Ductape``'s arguments; its methods are awaited."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sync = Ductape(*args, **kwargs)
        self.job = AsyncJobs(self.sync)
        self.feature = AsyncFeatures(self.sync.feature)
        self.store = self.sync.store
        self.clock = self.sync.clock

    def function(self, tag: str, *, timeout: float | None = None) -> Callable[[F], F]:
        return self.sync.function(tag, timeout=timeout)

    async def drain(self) -> DrainSummary:
        return await self.sync.new_worker().run_until_idle()

    async def worker(self, stop: asyncio.Event | None = None, **overrides: Any) -> None:
        """Run the engine in this event loop until ``stop`` is set (or SIGTERM/SIGINT without ``stop``)."""
        await self.sync.run_worker(stop, **overrides)

    async def close(self) -> None:
        await _off(self.sync.close)

    async def __aenter__(self) -> AsyncDuctape:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["AsyncDuctape", "AsyncJobs", "ScheduleStatus"]
