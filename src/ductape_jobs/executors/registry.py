"""Which executor runs which event type.

An executor is registered as it is, or as a factory called on the first run of its type: the product-backed
executors (HTTP, SMTP, database drivers, brokers) and their libraries load only when a run needs them, so a
worker that runs FUNCTIONs starts without them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ductape_jobs.errors import ExecutorNotFoundError
from ductape_jobs.executors.base import Closable, Executor
from ductape_jobs.models import JobEventTypes

if TYPE_CHECKING:
    from ductape_jobs.products import Products

Factory = Callable[[], Executor]


class ExecutorRegistry:
    def __init__(self) -> None:
        self._by_type: dict[JobEventTypes, Executor] = {}
        self._factories: dict[JobEventTypes, Factory] = {}
        self._lock = threading.Lock()

    def register(self, executor: Executor) -> None:
        self._by_type[executor.event_type] = executor

    def register_factory(self, event_type: JobEventTypes, factory: Factory) -> None:
        """``factory()`` makes the executor of ``event_type`` when a run of that type first needs it."""
        self._factories[event_type] = factory

    def get(self, event_type: JobEventTypes) -> Executor:
        found = self._by_type.get(event_type)
        if found is not None:
            return found
        factory = self._factories.get(event_type)
        if factory is None:
            have = ", ".join(t.name for t in (*self._by_type, *self._factories)) or "none"
            raise ExecutorNotFoundError(f"no executor for event type {event_type.name} in this worker (it has: {have})")
        with self._lock:
            found = self._by_type.get(event_type)
            if found is None:
                found = self._by_type[event_type] = factory()
        return found

    @property
    def open(self) -> bool:
        """Whether an executor made by a factory (one that may hold connections) is alive."""
        with self._lock:
            return any(t in self._factories for t in self._by_type)

    async def aclose(self) -> None:
        """Close the executors made by factories (HTTP clients, broker connections, database pools) and forget
        them: the next run of their type makes a new one, in its own event loop. Called before each event loop
        of the synchronous client ends, and by ``Ductape.close``/``AsyncDuctape.close``."""
        with self._lock:
            made = [self._by_type.pop(t) for t in list(self._by_type) if t in self._factories]
        for executor in made:
            if isinstance(executor, Closable):
                await executor.close()


def product_executors(products: Products) -> dict[JobEventTypes, Factory]:
    """Factories of the executors whose events a product declares, each importing its module when called."""

    def action() -> Executor:
        from ductape_jobs.executors.action import ActionExecutor

        return ActionExecutor(products)

    def notification() -> Executor:
        from ductape_jobs.executors.notification import NotificationExecutor

        return NotificationExecutor(products)

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
