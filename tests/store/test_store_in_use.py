"""A store is used only by the process that opened it, while it is open (an async web-app probe): after ``close()``
the async client raised a bare ``sqlite3.ProgrammingError`` (the sync one a ``StoreError``); a client made before a
fork (``gunicorn --preload``) shared its PostgreSQL connections with the children, whose calls failed at random
(``RELEASE SAVEPOINT can only be used in transaction blocks``, a ``KeyError``) and then hung for minutes. Each is now
a ``StoreUnusableError`` (a ``StoreError``) saying what to do, a worker stops on it, and a forked child's ``close()``
leaves the parent's connections alone."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from datetime import timedelta

import pytest
from storekit import Backend

from ductape_jobs import AsyncDuctape, Ductape, StoreUnusableError

REQ = {"env": "prd", "product_tag": "p", "event": "tick"}


def test_a_closed_client_says_so_on_both_surfaces(backend: Backend) -> None:
    dt = Ductape(backend.url)
    dt.job.create({"name": "tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
    dt.close()
    with pytest.raises(StoreUnusableError, match="the store is closed"):
        dt.job.schedule(REQ)

    async def go() -> None:
        adt = AsyncDuctape(backend.url)
        await adt.close()
        for call in (lambda: adt.job.schedule(REQ), lambda: adt.job.runs(), adt.drain):
            with pytest.raises(StoreUnusableError, match="the store is closed"):
                await call()

    asyncio.run(go())


def test_a_client_made_before_a_fork_is_refused_in_the_child_and_left_to_the_parent(backend: Backend) -> None:
    dt = Ductape(backend.url)
    try:
        dt.job.create({"name": "tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
        dt.job.schedule(REQ)  # its connections in use
        said = _in_a_child(lambda: (dt.job.schedule(REQ), dt.close()))
        forked = "StoreUnusableError: the store was opened in the process this one was forked from"
        assert said.startswith(forked), said
        for call in (dt.store.server_time, lambda: dt.store.wait_for_change(timedelta(0)), dt.store.migrate):
            assert _in_a_child(call).startswith(forked)  # each on the parent's connections (a second review)
        assert _in_a_child(dt.worker).startswith(forked)  # a worker stops: it backed off and tried again for ever
        assert len(dt.job.runs()) == 1  # the child wrote nothing; the parent's connections still work
        dt.job.schedule(REQ)
        assert len(dt.job.runs()) == 2
    finally:
        dt.close()


def _in_a_child(call: Callable[[], object]) -> str:
    """What ``call`` raised in a forked child (its type and message), or ``"returned"``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once (no atexit, no parent's fixtures)
        signal.alarm(20)  # a call that hangs ends the child
        try:
            call()
            said = "returned"
        except BaseException as exc:
            said = f"{type(exc).__name__}: {exc}"
        os.write(write, said.encode()[:4000])
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as got:
        return got.read()
