"""FUNCTION events: Python callables registered by tag, sync (run in a thread pool) or async."""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ductape_jobs.errors import ExecutionError, ExecutorNotFoundError, ResultError, RunTimeoutError, ValidationError
from ductape_jobs.executors.base import RunContext
from ductape_jobs.limits import seconds_rule
from ductape_jobs.logs import logger
from ductape_jobs.models import TAG_PATTERN, JobEventTypes, Run
from ductape_jobs.store.codec import not_json

if TYPE_CHECKING:
    from ductape_jobs.products import Products

log = logger("ductape_jobs.worker")

Function = Callable[[dict[str, Any], RunContext], Any]


class FunctionRegistry:
    def __init__(self) -> None:
        self._functions: dict[str, Function] = {}
        self._timeouts: dict[str, float] = {}

    def register(self, tag: str, fn: Function, timeout: float | None = None) -> None:
        """Register ``fn`` under ``tag``; ``timeout`` (seconds) bounds each call of it (a per-event timeout)."""
        rule = None if timeout is None else seconds_rule(timeout)
        if rule is not None:
            raise ValidationError("timeout", rule)
        if not TAG_PATTERN.fullmatch(tag):
            raise ValidationError("tag", f"{tag!r} is not a valid function tag")
        if not callable(fn):
            raise ValidationError("fn", f"{fn!r} is not callable")
        self._functions[tag] = fn
        if timeout is not None:
            self._timeouts[tag] = timeout

    def timeout(self, tag: str) -> float | None:
        return self._timeouts.get(tag)

    def get(self, tag: str) -> Function:
        try:
            return self._functions[tag]
        except KeyError:
            have = ", ".join(sorted(self._functions)) or "none"
            raise ExecutorNotFoundError(  # another worker may have it (a dashboard without --app claimed the run)
                f"FUNCTION {tag!r} is not registered in this worker (registered: {have}); "
                "start every worker with --app pointing at the module that registers it",
                retryable=True,
            ) from None

    def __contains__(self, tag: object) -> bool:
        return tag in self._functions

    def tags(self) -> list[str]:
        return sorted(self._functions)


class FunctionExecutor:
    """Runs the function registered under the event tag; failing that, the ``module:function`` that the run's
    product maps the tag to (imported once)."""

    event_type = JobEventTypes.FUNCTION

    def __init__(
        self, registry: FunctionRegistry, pool: ThreadPoolExecutor | None = None, products: Products | None = None
    ) -> None:
        self.registry = registry
        self.pool = pool if pool is not None else ThreadPoolExecutor(thread_name_prefix="ductape-fn")
        self.products = products
        self._threads = 0  # sync functions running in threads now: a cancelled run's keeps running (``in_threads``)
        self._outliving: dict[tuple[str, int], Future[Any]] = {}  # those whose attempt ended, by (run id, attempt)
        self._counting = threading.Lock()

    @property
    def in_threads(self) -> int:
        """Sync functions running in threads now, a run's that was cancelled (given back at a stop) among them: a
        thread cannot be stopped, so a stopping process that still has one exits at once (``Ductape.worker``)."""
        return self._threads

    @property
    def outliving(self) -> set[tuple[str, int]]:
        """The attempts (run id, attempt) whose sync function still runs in its thread though the attempt ended (its
        timeout passed, or it was cancelled): each holds a thread, and so a worker's slot, until it returns
        (``Worker._free``)."""
        with self._counting:
            return set(self._outliving)

    def thread_of(self, run_id: str, attempt: int) -> Future[Any] | None:
        """The thread of that attempt's sync function if it still runs though the attempt ended."""
        with self._counting:
            return self._outliving.get((run_id, attempt))

    def _find(self, run: Run, ctx: RunContext) -> Function:
        """The function registered under the run's tag, else the one its product maps the tag to, looked up at each
        run (the module imported once, by Python): kept under the bare tag, one product's ``report`` ran in place of
        every other product's ``report`` in the process after it."""
        if run.event_tag in self.registry or ctx.product is None:
            return self.registry.get(run.event_tag)
        target = ctx.product.functions.get(run.event_tag)
        if target is None:
            return self.registry.get(run.event_tag)
        module_name, _, attr = target.partition(":")
        try:
            fn: Function = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ExecutorNotFoundError(  # on this worker: another (deployed since) may load it
                f"FUNCTION {run.event_tag!r} maps to {target!r}, which cannot be loaded: {exc}", retryable=True
            ) from None
        return fn

    async def execute(self, run: Run, ctx: RunContext) -> Any:
        """The function's result, which must be JSON (``store.codec.not_json``): another value fails the
        attempt with a ``ResultError`` naming its type (not retried). Its size is checked where it is encoded, as
        every output's is (``limits.MAX_OUTPUT_BYTES``)."""
        fn = self._find(run, ctx)
        limit = self.registry.timeout(run.event_tag)
        if limit is None:
            result = await self._call(fn, ctx)
        else:
            try:
                result = await asyncio.wait_for(self._call(fn, ctx), limit)
            except TimeoutError:
                raise RunTimeoutError(f"FUNCTION {run.event_tag!r} exceeded its timeout of {limit:g} s") from None
        problem = not_json(result)
        if problem is not None:
            raise ResultError(
                f"FUNCTION {run.event_tag!r} returned a value that is not JSON: {problem}; return dicts, lists, "
                "strings, numbers, booleans or None (datetimes, dates, times, Decimals and UUIDs are kept as text)"
            )
        return result

    def _in_thread(self, fn: Function, input: Any, ctx: RunContext) -> Any:
        with self._counting:  # counted once it runs: one cancelled before it started never does
            self._threads += 1
        try:
            return fn(input, ctx)
        finally:
            with self._counting:
                self._threads -= 1

    async def _call(self, fn: Function, ctx: RunContext) -> Any:
        """``fn``'s result. A ``SystemExit`` it raises (``sys.exit()``) fails the attempt as any exception does: out
        of a task, asyncio raises it out of the event loop, which stopped the worker (exit code 0) with its other
        runs unrecorded, and the run, given back, stopped the next worker that took it. So does a
        ``KeyboardInterrupt`` a sync function raises (Ctrl-C reaches the main thread only: in a function's thread it
        is the function's own); one in an async function is left as it is, as it may be Ctrl-C (a worker stops on
        SIGINT by its own handler; a blocking call such as ``drain`` is interrupted). A ``SystemExit`` in a task that
        an async function creates itself is raised by asyncio out of the loop before this sees it."""
        try:
            if inspect.iscoroutinefunction(fn):
                return await fn(ctx.input, ctx)
            # The thread runs in a copy of this context, so log lines from sync functions carry the run's fields.
            call = contextvars.copy_context().run
            future = self.pool.submit(call, self._in_thread, fn, ctx.input, ctx)
            try:
                result = await asyncio.wrap_future(future)
            except KeyboardInterrupt as exc:
                raise _stopping(ctx, exc) from None
            except asyncio.CancelledError:  # a timeout, a stop: the thread, once begun, runs on
                if not future.cancel():
                    self._outlive(future, ctx)
                raise
            if inspect.isawaitable(result):
                return await result
            return result
        except SystemExit as exc:
            raise _stopping(ctx, exc) from None

    def _outlive(self, future: Future[Any], ctx: RunContext) -> None:
        """Count ``future``'s thread as outliving its attempt until it ends."""
        key = (ctx.run_id, ctx.attempt)
        with self._counting:
            self._outliving[key] = future

        def ended(_: Future[Any]) -> None:
            with self._counting:
                self._outliving.pop(key, None)

        future.add_done_callback(ended)  # at once if it ended meanwhile
        if not future.done():
            log.warning(
                "FUNCTION %r still runs in its thread after its attempt ended (timed out or cancelled): it holds "
                "one of this worker's slots until it returns",
                ctx.event_tag,
            )


def _stopping(ctx: RunContext, exc: BaseException) -> ExecutionError:
    """The attempt's failure for a FUNCTION that raised ``exc`` (``SystemExit``, ``KeyboardInterrupt``)."""
    return ExecutionError(
        f"FUNCTION {ctx.event_tag!r} raised {type(exc).__name__}({_args(exc)}): a run cannot stop its worker; "
        "raise an exception to fail the run"
    )


def _args(exc: BaseException) -> str:
    """``exc``'s arguments as its ``repr`` shows them (``0``, ``'bye'``), at most 100 characters."""
    shown = ", ".join(repr(a) for a in exc.args)
    return shown if len(shown) <= 100 else shown[:99] + "…"
