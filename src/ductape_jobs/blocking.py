"""Running the engine's coroutines from the synchronous client (``Ductape.drain``, ``feature.run``, ...).

Each blocking call is one ``asyncio.run``: one event loop, started and ended by the call. What belongs to that
loop (the executors' HTTP clients, broker connections) is closed before the loop ends (``Blocking``'s
``cleanup``), so nothing bound to a finished loop is used again by the next call.

``asyncio.run`` cannot be called inside a running event loop (a FastAPI route, a notebook, an async test).
There the blocking call says what to use instead, in a ``RunningLoopError`` that names the call, rather than
asyncio's own ``RuntimeError``; nothing is started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ductape_jobs.errors import RunningLoopError

T = TypeVar("T")
Cleanup = Callable[[], Awaitable[None]]


def check_no_running_loop(call: str) -> None:
    """``RunningLoopError`` naming ``call`` when this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RunningLoopError(
        f"{call} blocks, and this thread runs an event loop: use AsyncDuctape (await ductape.{call.split('.', 1)[1]})"
        " or call it from a thread (asyncio.to_thread)"
    )


def run_blocking(start: Callable[[], Coroutine[Any, Any, T]], call: str, cleanup: Cleanup | None = None) -> T:
    """``asyncio.run(start())``, then ``await cleanup()`` in the same loop (even when ``start`` failed);
    ``RunningLoopError`` naming ``call`` inside a running loop (nothing is started)."""
    check_no_running_loop(call)

    async def main() -> T:
        try:
            return await start()
        finally:
            if cleanup is not None:
                await cleanup()

    return asyncio.run(main())


class Blocking:
    """``run_blocking`` with the client's ``cleanup`` (closing the executors' loop-bound resources): what
    ``Ductape`` hands to the parts of it that block (``Features``)."""

    def __init__(self, cleanup: Cleanup | None = None) -> None:
        self.cleanup = cleanup

    def run(self, start: Callable[[], Coroutine[Any, Any, T]], call: str) -> T:
        return run_blocking(start, call, self.cleanup)


__all__ = ["Blocking", "check_no_running_loop", "run_blocking"]
