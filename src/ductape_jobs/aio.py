"""``AsyncDuctape``: the same API for asyncio code. Store calls run in a thread, never blocking the loop for long:
a ``schedule()`` (or a ``schedule_many`` of at most ``PROMPT_BATCH``) on SQLite runs on the loop itself when its store
makes it at once (``Store.promptly``: no lock held elsewhere, no checkpoint owed, small rows), which costs less than
the hop to a thread and back; the call then lets the loop's other tasks run before it returns."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ductape_jobs.client import Ductape
from ductape_jobs.errors import WouldWait
from ductape_jobs.features.api import AsyncFeatures
from ductape_jobs.job_reports import HISTORY_LIMIT
from ductape_jobs.job_scheduling import request_list
from ductape_jobs.jobs import Jobs, ProductJobs
from ductape_jobs.models import (
    DispatchResult,
    DrainSummary,
    JobHistory,
    JobStats,
    Run,
    RunPhase,
    Schedule,
    ScheduleStatus,
    Webhook,
    WebhookDelivery,
)
from ductape_jobs.resource_client import AsyncResources
from ductape_jobs.retention import PruneCounts
from ductape_jobs.sessions import Sessions, SessionToken, jwt_loaded
from ductape_jobs.store import Store
from ductape_jobs.webhooks import Webhooks

if TYPE_CHECKING:
    from ductape_jobs.inputs import JobDefinition, JobUpdate, RepeatOptions, ScheduleRequest, Session, WebhookRequest

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


#: The most requests of a ``schedule_many`` made on the loop: a larger batch gains little from it (the hop to a
#: thread is shared by its requests), and one of large inputs would hold the loop while it is planned.
PROMPT_BATCH = 10


async def _off(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _soon(store: Store, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on this loop if ``store`` makes it at once (``Store.promptly``: SQLite, where no other process
    holds the write lock), else in a thread (``_off``): the hop to a thread and back costs more CPU than a
    ``schedule()`` itself (on SQLite here: 146 us a call made so, 317 us with the hop; bench/async_enqueue.py)."""
    if store.capabilities.prompt:
        try:
            with store.promptly():
                result = fn(*args)
        except WouldWait:
            pass
        else:
            await asyncio.sleep(0)  # the loop's other tasks (a worker's run starts) between one call and the next
            return result
    return await _off(fn, *args)


def _loads_jwt(requests: list[ScheduleRequest | dict[str, Any]]) -> bool:
    """Whether verifying ``requests`` would load PyJWT (a session, and the first of the process): it is made in a
    thread then, not on the loop, which the import would hold for tens of milliseconds."""
    if jwt_loaded():
        return False
    return any((r.get("session") if isinstance(r, dict) else getattr(r, "session", None)) is not None for r in requests)


class AsyncJobs:
    """``await ductape.job.<method>(...)``: each method is ``Jobs``' method of the same name."""

    def __init__(self, jobs: Jobs, store: Store) -> None:
        self._jobs = jobs
        self._store = store
        self.product_tag = jobs.product_tag

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
        if _loads_jwt([request]):
            return await _off(self._jobs.schedule, request)
        return await _soon(self._store, self._jobs.schedule, request)

    async def schedule_many(self, requests: Iterable[ScheduleRequest | dict[str, Any]]) -> list[DispatchResult]:
        batch = request_list(requests)
        if len(batch) > PROMPT_BATCH or _loads_jwt(batch):
            return await _off(self._jobs.schedule_many, batch)
        return await _soon(self._store, self._jobs.schedule_many, batch)

    async def get(self, job_id: str) -> Schedule:
        return await _off(self._jobs.get, job_id)

    async def list(
        self,
        *,
        status: ScheduleStatus | str | None = None,
        job_tag: str | None = None,
        limit: int = 100,
        offset: int = 0,
        product_tag: str | None = None,
        env: str | None = None,
        after: str | None = None,
    ) -> builtins.list[Schedule]:
        return await _off(
            self._jobs.list,
            status=status,
            job_tag=job_tag,
            limit=limit,
            offset=offset,
            product_tag=product_tag,
            env=env,
            after=after,
        )

    async def pause(self, job_id: str, reason: str | None = None) -> Schedule:
        return await _off(self._jobs.pause, job_id, reason)

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

    async def runs(
        self,
        *,
        job_id: str | None = None,
        job_tag: str | None = None,
        phase: RunPhase | str | None = None,
        since: datetime | str | int | None = None,
        until: datetime | str | int | None = None,
        limit: int = 100,
        offset: int = 0,
        product_tag: str | None = None,
        env: str | None = None,
        after: str | None = None,
    ) -> builtins.list[Run]:
        return await _off(
            self._jobs.runs,
            job_id=job_id,
            job_tag=job_tag,
            phase=phase,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
            product_tag=product_tag,
            env=env,
            after=after,
        )

    async def run(self, run_id: str) -> Run:
        return await _off(self._jobs.run, run_id)

    async def retry(self, run_id: str) -> Run:
        return await _off(self._jobs.retry, run_id)

    async def history(self, job_id: str, limit: int = HISTORY_LIMIT, *, max_bytes: int | None = None) -> JobHistory:
        return await _off(self._jobs.history, job_id, limit, max_bytes=max_bytes)

    async def stats(
        self,
        product_tag: str | None = None,
        env: str | None = None,
        since: datetime | str | int | None = None,
        until: datetime | str | int | None = None,
    ) -> JobStats:
        return await _off(self._jobs.stats, product_tag, env, since, until)

    # the seeds' other spellings, as ``Jobs`` has them
    fetchAll = fetch_all
    fetch_jobs = fetch_all
    fetchJobs = fetch_all
    fetch_job = fetch
    fetchJob = fetch
    create_job = create
    createJob = create
    update_job = update
    updateJob = update


class AsyncProductJobs:
    """``ductape.product``: ``ductape.product("shop").jobs`` (awaited), as ``ProductJobs``."""

    def __init__(self, product: ProductJobs, store: Store, jobs: AsyncJobs | None = None) -> None:
        self._product = product
        self._store = store
        self.tag = product.tag
        self.jobs = jobs if jobs is not None else AsyncJobs(product.jobs, store)

    def __call__(self, tag: str) -> AsyncProductJobs:
        bound = self._product(tag)
        return self if bound is self._product else AsyncProductJobs(bound, self._store)


class AsyncSessions:
    """``await ductape.session.start(...)`` / ``verify(...)``: ``Sessions``' methods."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def start(self, tag: str, data: dict[str, Any], *, env: str, product_tag: str) -> SessionToken:
        return await _off(self._sessions.start, tag, data, env=env, product_tag=product_tag)

    async def verify(self, session: Session | str | dict[str, Any], *, env: str, product_tag: str) -> dict[str, Any]:
        return await _off(self._sessions.verify, session, env=env, product_tag=product_tag)


class AsyncWebhooks:
    """``await ductape.webhooks.create(...)`` and friends: ``Webhooks``' methods."""

    def __init__(self, webhooks: Webhooks) -> None:
        self._webhooks = webhooks

    async def create(self, request: WebhookRequest | dict[str, Any]) -> tuple[Webhook, str]:
        return await _off(self._webhooks.create, request)

    async def list(self, product_tag: str | None = None) -> builtins.list[Webhook]:
        return await _off(self._webhooks.list, product_tag)

    async def get(self, webhook_id: str) -> Webhook:
        return await _off(self._webhooks.get, webhook_id)

    async def delete(self, webhook_id: str) -> None:
        await _off(self._webhooks.delete, webhook_id)

    async def deliveries(
        self, webhook_id: str, *, limit: int = 100, offset: int = 0, after: str | None = None
    ) -> builtins.list[WebhookDelivery]:
        return await _off(self._webhooks.deliveries, webhook_id, limit=limit, offset=offset, after=after)

    async def deliver_due(self) -> int:
        return await self._webhooks.deliver_due()


class AsyncDuctape:
    """``AsyncDuctape(...)`` takes ``Ductape``'s arguments; its methods are awaited."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._wrap(Ductape(*args, **kwargs))

    def _wrap(self, sync: Ductape) -> None:
        self.sync = sync
        self.job = AsyncJobs(sync.job, sync.store)
        self.product = AsyncProductJobs(sync.product, sync.store, self.job)
        self.feature = AsyncFeatures(sync.feature)
        self.session = AsyncSessions(sync.session)
        self.webhooks = AsyncWebhooks(sync.webhooks)
        self.resources = AsyncResources(sync.resources)
        self.products = sync.products  # declarations only: no I/O to await
        self.functions = sync.functions
        self.store = sync.store
        self.clock = sync.clock

    def function(self, tag: str, *, timeout: float | None = None) -> Callable[[F], F]:
        return self.sync.function(tag, timeout=timeout)

    def on_store(self, store: str | Store) -> AsyncDuctape:
        """A client on another store with this one's functions, clock and settings."""
        made = AsyncDuctape.__new__(AsyncDuctape)
        made._wrap(self.sync.on_store(store))
        return made

    async def prune(
        self,
        *,
        dry_run: bool = False,
        keep_completed: timedelta | None = None,
        keep_failed: timedelta | None = None,
    ) -> PruneCounts:
        return await _off(self.sync.prune, dry_run=dry_run, keep_completed=keep_completed, keep_failed=keep_failed)

    async def copy_to(self, store: str) -> dict[str, int]:
        return await _off(self.sync.copy_to, store)

    async def drain(self) -> DrainSummary:
        return await self.sync.new_worker().run_until_idle()

    async def worker(self, stop: asyncio.Event | None = None, **overrides: Any) -> None:
        """Run the engine in this event loop until ``stop`` is set (or SIGTERM/SIGINT without ``stop``)."""
        await self.sync.run_worker(stop, **overrides)

    async def close(self) -> None:
        """Close what the client opened (``Ductape.close``): the executors' connections in this event loop."""
        await self.sync.aclose()

    async def __aenter__(self) -> AsyncDuctape:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["AsyncDuctape", "AsyncJobs", "AsyncProductJobs", "AsyncSessions", "AsyncWebhooks", "ScheduleStatus"]
