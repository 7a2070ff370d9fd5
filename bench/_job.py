"""The job the benchmarks' worker processes run: ``ductape worker --app _job:app`` (started in ``bench/``).

Kept apart from ``_common`` so that a worker imports only ductape_jobs and this file: its RSS is the engine's.

Each run appends one line ``i start due`` to a file of its own process (``$DUCTAPE_BENCH_RECORDS/<pid>.rec``)
with one ``O_APPEND`` write (a few microseconds; peerbench's job makes one Redis round trip instead). The record is
kept outside the store, so a run that is lost or runs twice shows. ``i < 0`` is a readiness probe.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ductape_jobs import Ductape, RunContext

STORE_ENV = "DUCTAPE_BENCH_STORE"
RECORDS_ENV = "DUCTAPE_BENCH_RECORDS"
REQUEST = {"env": "bench", "product_tag": "bench", "event": "noop"}
JOB = {"name": "noop", "tag": "noop", "event_type": "FUNCTION", "event_tag": "noop"}

_fd: int | None = None


async def noop(input: dict[str, Any], ctx: RunContext) -> None:
    """Record that run ``input["i"]`` started now (and the due time it was told, for lateness)."""
    now = time.time()
    global _fd
    if _fd is None:
        path = os.path.join(os.environ[RECORDS_ENV], f"{os.getpid()}.rec")
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, f"{input['i']} {now!r} {input.get('due', 0.0)!r}\n".encode())


def make_app(store: str, **settings: Any) -> Ductape:
    dt = Ductape(store, **settings)
    dt.function("noop")(noop)
    return dt


def __getattr__(name: str) -> Any:
    """``app`` is opened on first access only (on ``$DUCTAPE_BENCH_STORE``), so importing this module opens nothing."""
    if name == "app":
        global app
        app = make_app(os.environ[STORE_ENV])
        return app
    raise AttributeError(name)
