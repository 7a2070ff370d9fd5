"""Running the engine's coroutines from the synchronous client (``Ductape.drain``, ``feature.run``, ...).

``asyncio.run`` cannot be called inside a running event loop (a FastAPI route, a notebook, an async test).
There the blocking call says what to use instead, in a ``DuctapeError`` that names the call, rather than
asyncio's own ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ductape_jobs.errors import RunningLoopError

T = TypeVar("T")


def run_blocking(start: Callable[[], Coroutine[Any, Any, T]], call: str) -> T:
    """``asyncio.run(start())``; ``RunningLoopError`` naming ``call`` inside a running loop (nothing is started)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(start())
    raise RunningLoopError(
        f"{call} blocks, and this thread runs an event loop: use AsyncDuctape (await ductape.{call.split('.', 1)[1]})"
        " or call it from a thread (asyncio.to_thread)"
    )


__all__ = ["run_blocking"]
