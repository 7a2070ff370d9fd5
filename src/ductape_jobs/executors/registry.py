"""Which executor runs which event type.

An executor is registered as it is, or as a factory called on the first run of its type: the product-backed
executors (HTTP, SMTP, database drivers, brokers) and their libraries load only when a run needs them, so a
worker that runs FUNCTIONs starts without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ductape_jobs.errors import ExecutorNotFoundError
from ductape_jobs.executors.base import Closable, Executor
from ductape_jobs.models import JobEventTypes

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ductape_jobs.products import Products
    from ductape_jobs.targets import TargetPolicy

Factory = Callable[[], Executor]


class ExecutorRegistry:
    """The executors by event type. One registered as it is serves every event loop; one made by a factory holds
    what belongs to the event loop it was made in (an HTTP client, a broker connection, a database pool), so each
    running loop gets its own, and ``aclose()`` closes the calling loop's only: two threads that each run a loop
    (two ``drain()`` calls at once, a worker beside a blocking call) never share, nor close, each other's."""

    def __init__(self) -> None:
        self._by_type: dict[JobEventTypes, Executor] = {}
        self._factories: dict[JobEventTypes, Factory] = {}
        self._made: dict[asyncio.AbstractEventLoop, dict[JobEventTypes, Executor]] = {}
        self._lock = threading.Lock()

    def register(self, executor: Executor) -> None:
        self._by_type[executor.event_type] = executor

    def register_factory(self, event_type: JobEventTypes, factory: Factory) -> None:
        """``factory()`` makes the executor of ``event_type`` when a run of that type first needs it, once in each
        event loop that runs one."""
        self._factories[event_type] = factory

    def get(self, event_type: JobEventTypes) -> Executor:
        """The executor of ``event_type`` (one made by a factory: the running loop's; called inside a loop)."""
        found = self._by_type.get(event_type)
        if found is not None:
            return found
        factory = self._factories.get(event_type)
        if factory is None:
            have = ", ".join(t.name for t in (*self._by_type, *self._factories)) or "none"
            raise ExecutorNotFoundError(f"no executor for event type {event_type.name} in this worker (it has: {have})")
        loop = asyncio.get_running_loop()
        with self._lock:
            made = self._made.setdefault(loop, {})
            found = made.get(event_type)
            if found is None:
                found = made[event_type] = factory()
        return found

    def in_threads(self) -> int:
        """Code of runs still running in threads, in every executor (one cancelled keeps running there)."""
        return sum(getattr(executor, "in_threads", 0) for executor in self._all())

    def outliving(self) -> set[tuple[str, int]]:
        """The attempts (run id, attempt) whose code still runs in a thread though they ended (timed out,
        cancelled), in every executor."""
        return {key for executor in self._all() for key in getattr(executor, "outliving", ())}

    def thread_of(self, run_id: str, attempt: int) -> Future[Any] | None:
        """The thread still running that attempt's code though the attempt ended (its timeout passed), if any."""
        for executor in self._all():
            thread_of = getattr(executor, "thread_of", None)
            found = None if thread_of is None else thread_of(run_id, attempt)
            if found is not None:
                return cast("Future[Any]", found)
        return None

    def _all(self) -> list[Executor]:
        with self._lock:
            return [*self._by_type.values(), *(e for made in self._made.values() for e in made.values())]

    @property
    def open(self) -> bool:
        """Whether an executor made by a factory (one that may hold connections) is alive, in any event loop."""
        with self._lock:
            return any(self._made.values())

    async def aclose(self) -> None:
        """Close the executors made by factories in the calling event loop (HTTP clients, broker connections,
        database pools) and forget them: the next run of their type makes a new one. Those of loops that already
        ended without closing theirs are closed here as far as they can be (their connections died with their
        loop); those of loops still running are left to them. Called before each event loop of the synchronous
        client ends, by ``ductape serve`` and by ``Ductape.close``/``AsyncDuctape.close``."""
        loop = asyncio.get_running_loop()
        with self._lock:
            ended = [other for other in self._made if other is not loop and other.is_closed()]
            own = list(self._made.pop(loop, {}).values())
            left = [executor for other in ended for executor in self._made.pop(other).values()]
        for executor in own:
            if isinstance(executor, Closable):
                await executor.close()
        for executor in left:
            if isinstance(executor, Closable):
                with contextlib.suppress(Exception):  # bound to a loop that is gone: nothing more to release
                    await executor.close()


def product_executors(products: Products, policy: Callable[[], TargetPolicy]) -> dict[JobEventTypes, Factory]:
    """Factories of the executors whose events a product declares, each importing its module when called.
    ``policy``: where a request whose host the caller chose may go (the webhooks' network guard, as it is now)."""

    def action() -> Executor:
        from ductape_jobs.executors.action import ActionExecutor

        return ActionExecutor(products, policy)

    def notification() -> Executor:
        from ductape_jobs.executors.notification import NotificationExecutor

        return NotificationExecutor(products, policy)

    def database_action() -> Executor:
        from ductape_jobs.executors.database_action import DatabaseActionExecutor

        return DatabaseActionExecutor(products)

    def broker() -> Executor:
        from ductape_jobs.executors.broker import BrokerExecutor

        return BrokerExecutor(products)

    return {
        JobEventTypes.ACTION: action,
        JobEventTypes.NOTIFICATION: notification,
        JobEventTypes.DATABASE_ACTION: database_action,
        JobEventTypes.MESSAGEBROKER: broker,
    }
