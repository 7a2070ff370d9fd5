"""The worker: claims due runs in batches under a lease, runs them, records outcomes, retries, rescues.

One asyncio loop per worker process. Each pass: record finished outcomes, let the scheduler create runs
for due schedules, rescue runs whose lease expired, claim as many due runs as there is capacity, prune finished
history past its keep (a batch every ``retention.every``), then sleep until the store says something
is next due (or ``poll``, or until woken). A heartbeat task extends the
leases of runs still going, so a slow run is never mistaken for a dead one; ``timeout`` bounds runtime.

On a store with ``listen_notify`` a listener thread wakes the loop when another process makes something due
(``Store.wait_for_change``): at once when it is due now, when it falls due if that comes before the loop's own next
read of what is due, else not at all (that read sees it); ``poll`` stays the safety net. A pass that fails on the
store (the database restarting) is logged and tried again after a backoff; outcomes not yet recorded are kept until
they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from msgspec import Struct, field
from msgspec.structs import replace

from ductape_jobs.clock import Clock, iso_text, monotonic_of, uncertainty
from ductape_jobs.engine.events import RunObserver, tell_finished, tell_rescued, tell_started
from ductape_jobs.engine.scheduler import Scheduler
from ductape_jobs.engine.wakeup import wake_in
from ductape_jobs.errors import (
    RunTimeoutError,
    StoreError,
    StoreUnusableError,
    ValidationError,
    WouldWait,
    describe,
    is_retryable,
)
from ductape_jobs.executors.base import RunContext
from ductape_jobs.executors.registry import ExecutorRegistry
from ductape_jobs.ids import new_id
from ductape_jobs.limits import span_text
from ductape_jobs.logs import Repeats, bind_run, logger
from ductape_jobs.models import DrainSummary, Run, RunPhase
from ductape_jobs.redaction import Secrets
from ductape_jobs.retention import PruneCounts, Retention
from ductape_jobs.store.base import Outcome, Recorded, Rescued, Store, Wakeups
from ductape_jobs.store.codec import output_json
from ductape_jobs.timing.backoff import Backoff, retry_async

if TYPE_CHECKING:
    from ductape_jobs.tracing import Tracing

#: Between the tries to record a batch of outcomes, and between worker passes while the store is away.
_FLUSH_BACKOFF = Backoff(base=timedelta(seconds=0.1), jitter=0.0)
_PASS_BACKOFF = Backoff(base=timedelta(seconds=0.1), cap=timedelta(seconds=5), jitter=0.0)
#: How far the clock may run ahead of the monotonic clock between two passes before it is taken as stepped
#: (``Worker._judge_step``): a pass comes at least every ``poll``; NTP slews at most 500 ppm.
CLOCK_STEP = timedelta(seconds=1)
#: How long past its timeout a run under a limit waits for its sync function's thread (``Worker._thread_returns``):
#: past it the run ends timed out and its limits are let go; the thread holds its worker's slot until it returns.
THREAD_WAIT = timedelta(minutes=5)
#: After a claiming call failed, how long passes look for the runs it may have taken (a server still committing
#: the lost try shows them late), and how often at most.
_LOOK_FOR, _LOOK_EVERY = timedelta(seconds=2), timedelta(milliseconds=200)
log = logger("ductape_jobs.worker")
#: An outcome's word once the store ended its run cancelled instead of retrying it (``Recorded.cancelled``).
_CANCELLED = RunPhase.CANCELLED.value
T = TypeVar("T")


class WorkerOptions(Struct, frozen=True):
    concurrency: int = 50
    batch: int = 200
    lease: timedelta = timedelta(seconds=30)
    heartbeat: timedelta | None = None  # default: a third of the lease
    poll: timedelta = timedelta(milliseconds=200)
    rescue_every: timedelta = timedelta(seconds=2)
    max_rescues: int = 3
    shutdown_grace: timedelta = timedelta(seconds=30)
    backoff: Backoff = field(default_factory=Backoff)
    run_scheduler: bool = True
    listen: timedelta = timedelta(milliseconds=500)  # the listener's wait per call (bounds its shutdown)
    # how long before a schedule falls due ``run`` ticks it and claims its run, which then starts at its due time:
    # the tick's transaction (a few ms on PostgreSQL) is not added to the run's lateness. Runs under a limit are
    # claimed when due (a limit counts a run from its claim). ``run_until_idle`` never claims ahead.
    ahead: timedelta = timedelta(milliseconds=20)
    retention: Retention | None = None  # prune finished history by it (``run`` only, not ``run_until_idle``)


class Worker:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        executors: ExecutorRegistry,
        clock: Clock,
        options: WorkerOptions | None = None,
        worker_id: str | None = None,
        prepare: Callable[[Run], RunContext] = RunContext.of,
        observers: Sequence[RunObserver] = (),
        secrets: Secrets | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.executors = executors
        self.clock = clock
        self.options = options or WorkerOptions()
        self.prepare = prepare
        self.secrets = secrets or Secrets()  # masked out of every error and output the worker records
        self.tracing = tracing  # None: off, and nothing of OpenTelemetry is imported (tracing.py)
        self.observers = tuple(observers)  # metrics, webhooks: told of runs started, finished, rescued
        self._observed: dict[str, Run] = {}  # runs in flight, for telling observers how they ended
        if worker_id is not None and "\x00" in worker_id:  # stored in every lease and attempt (and sent in JSON rows)
            raise ValidationError("worker_id", "must not contain a NUL character (\\x00)")
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-6:]}"
        self.summary = DrainSummary()
        self._inflight: dict[str, tuple[Run, asyncio.Task[Any]]] = {}
        self._outcomes: list[Outcome] = []
        self._limited: set[str] = set()  # runs in flight under a limit (their end may free a slot for us)
        self._freed = False
        # (run id, attempt) of the attempts started here whose outcome is not recorded yet (a cancelled one too): a
        # run rescued and claimed again is a new attempt, so an id alone could hide it or be dropped while it runs
        self._held: set[tuple[str, int]] = set()
        # run id -> how long this worker knows it holds the lease of its run in flight: the claim's, then each
        # heartbeat's that extended every lease it asked for (one that extended fewer leaves them: those may be lost)
        self._leases: dict[str, datetime] = {}
        # a claiming call failed, its COMMIT may have landed: ``_adopt`` looks for its runs until then, at most
        # every _LOOK_EVERY from the second
        self._unsure_until: datetime | None = None
        self._next_look: datetime | None = None
        # what the last sleep read from next_wakeup before it waited; the next pass starts from it unless something
        # happened elsewhere meanwhile (``notify``: then it reads again). Its own outcomes, recorded by that pass,
        # can only free slots (the refill and ``_freed`` handle those) or be due later (the sleep after reads).
        self._slept: Wakeups | None = None
        self._pokes = 0  # notify()s so far: a read that one overtook is not kept
        self._timer: asyncio.TimerHandle | None = None  # a poke set for when something another process wrote is due
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._serving = False  # run() only (not drain()): a run waits for its thread past its timeout; clock steps
        self._hurry: asyncio.Event | None = None  # a second SIGTERM/SIGINT: the runs in flight go back at once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store_thread: ThreadPoolExecutor | None = None  # the one thread of this worker's store calls
        self._queued = 0  # calls handed to that thread and not back yet
        self._prompt = store.capabilities.prompt  # its calls may be made on the loop (_io)
        self._next_rescue: datetime | None = None
        self._steady = monotonic_of(clock)  # what a step of the clock is seen against (``_judge_step``)
        self._clock_seen: tuple[float, datetime] | None = None  # (steady, clock) at the last pass
        self._step_until: datetime | None = None  # no lease taken as lapsed before then: the clock jumped ahead
        self._next_prune: datetime | None = None
        self._pruning = False  # set by ``run``: a drain does not prune
        self._prune_rests_until = 0.0  # time.monotonic(): after a full batch, the pruner rests till then
        self._ahead = timedelta(0)  # ``options.ahead`` while ``run`` runs
        self._ticked_to: datetime | None = None  # how far ahead the last tick looked
        self._waiting: set[str] = set()  # runs claimed ahead, waiting in their tasks for their due time
        self.pruned = PruneCounts()  # what this worker's pruner deleted
        self.abandoned = 0  # sync functions of runs given back at shutdown, still running in their threads
        # while the store is away: a line when a pass, a heartbeat or a flush first fails, one each 30 s, one after
        self._passes = Repeats(log, "worker pass")
        self._heartbeats = Repeats(log, "heartbeat")
        self._flushes = Repeats(log, "recording outcomes")

    # ----------------------------------------------------------------------------------- public

    async def run(
        self, stop: asyncio.Event | None = None, *, handle_signals: bool = True, hurry: asyncio.Event | None = None
    ) -> None:
        """Run until ``stop`` is set (or SIGTERM/SIGINT): then stop claiming, let in-flight runs finish within
        ``shutdown_grace``, and give the rest back to the queue; at once if ``hurry`` is set meanwhile (or a second
        signal comes)."""
        self._start(stop, hurry)
        self._pruning = True
        self._ahead = max(self.options.ahead, timedelta(0))
        assert self._stop is not None
        if handle_signals:
            self._install_signals()
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="ductape-heartbeat")
        self._serving = True
        unlisten = threading.Event()
        listener = self._start_listener(unlisten)
        log.info("worker %s started (concurrency %d)", self.id, self.options.concurrency)
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    more = await self._step()
                    self._passes.ok()
                    await self._sleep(more)
                    failures = 0
                except StoreUnusableError:  # closed, or a forked child's: not coming back
                    raise
                except StoreError as exc:  # the database is away: back off, keep what is in flight
                    failures += 1
                    delay = _PASS_BACKOFF.delay(failures).total_seconds()
                    self._passes.failed(exc, f"; trying again in {delay:.1f}s")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            self._ahead = timedelta(0)
            unlisten.set()
            await self._shutdown()
            heartbeat.cancel()
            self._serving = False
            if listener is not None:
                await asyncio.to_thread(listener.join)
                self.store.stop_waiting()
            self._end()
            log.info("worker %s stopped", self.id)

    async def run_until_idle(self) -> DrainSummary:
        """Run everything due now (and what it makes due now, e.g. retries without delay) until idle. The leases of
        the runs it holds are heartbeated as a worker's are: a run longer than the lease was rescued by another
        process and run twice while this one still ran it."""
        self._start(None)
        self.summary = DrainSummary()
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="ductape-heartbeat")
        try:
            while True:
                more = await self._step()
                if self._inflight:
                    await self._runs_done([task for _, task in list(self._inflight.values())])
                    continue
                if not more and not self._outcomes:
                    break
            await self._flush()
        finally:
            heartbeat.cancel()
            self._end()
        return self.summary

    @staticmethod
    async def _runs_done(tasks: list[asyncio.Task[None]]) -> None:
        """``drain()``: wait for the runs in flight. One stopped since its lease was lost (another worker took it)
        ends cancelled, which is no error of the drain's (gathered, it ended the drain and left its other runs
        running); a drain cancelled meanwhile cancels them, as gathering them did (else they ran on unwatched, their
        leases lapsed, and they ran again)."""
        try:
            done, _ = await asyncio.wait(tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        for task in done:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    def notify(self, due: datetime | None = None) -> None:
        """Wake the worker: something was written that falls due at ``due`` (``None``: now). Safe from any thread."""
        loop = self._loop
        if loop is not None and self._wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._poke if due is None else functools.partial(self._poke_at, due))

    def _poke_at(self, due: datetime) -> None:
        """``notify(due)``, on the loop: a poke now when ``due`` is (less ``ahead``), by a timer at that time when it
        comes before this worker's own next read of what is due, else nothing: the read after its sleep (at most a
        ``poll`` away, twice that when a pass used the read its sleep made before the notice came) sees it. A
        delayed schedule written elsewhere costs a worker no read of its own (each read was two round trips)."""
        assert self._loop is not None
        wait = wake_in(due, self.clock.now(), self._ahead, 2 * self.options.poll)
        if wait is None:
            return
        if wait == 0:
            self._poke()
            return
        at = self._loop.time() + wait
        if self._timer is not None:
            if self._timer.when() <= at:
                return  # an earlier poke is set: the read of the pass it starts sees this one too
            self._timer.cancel()
        self._timer = self._loop.call_at(at, self._timed_poke)

    def _timed_poke(self) -> None:
        self._timer = None
        self._poke()

    def _poke(self) -> None:
        self._pokes += 1
        self._slept = None  # what the sleep read may be out of date: the next pass reads again
        if self._wake is not None:
            self._wake.set()

    # --------------------------------------------------------------------------------- the loop

    def _start_listener(self, stop: threading.Event) -> threading.Thread | None:
        """A thread that wakes the loop whenever the store says another process changed something."""
        if not self.store.capabilities.listen_notify:
            return None

        repeats = Repeats(log, "listening for changes")

        def listen() -> None:
            while not stop.is_set():
                try:
                    changed = self.store.wait_for_change(self.options.listen)
                except Exception as exc:  # the database is away: the poll carries on; listen again soon
                    repeats.failed(exc, "; trying again in 1s")
                    stop.wait(1.0)
                    continue
                repeats.ok()
                if changed is not None:
                    self.notify(changed.due)

        thread = threading.Thread(target=listen, name=f"ductape-listen {self.id}", daemon=True)
        thread.start()
        return thread

    def _start(self, stop: asyncio.Event | None, hurry: asyncio.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop = stop or asyncio.Event()
        self._hurry = hurry or asyncio.Event()
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ductape-store {self.id}")

    def _end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._store_thread is not None:
            self._store_thread.shutdown(wait=False)
            self._store_thread = None

    async def _io(self, fn: Callable[..., T], *args: Any, prompt: bool = True) -> T:
        """``fn(*args)``: on this loop if its store makes it at once (``Store.promptly``: SQLite's transactions are
        CPU work in this process, and one that waits for a lock or checkpoints is refused before it writes) and
        nothing of this worker's waits in its store thread, else in that thread, in a copy of this context (the
        run's log fields). ``prompt=False``: in the thread (a call of many transactions, or a long one).

        Made on the loop, a batch's transaction costs this process about a seventh less CPU than handed to the
        thread, whose every SQLite step gives the GIL up to the loop's job bodies and takes it back. One thread:
        a pass's calls follow one another anyway, and the heartbeat's and the cache's queue behind them for the
        few milliseconds a call takes; every thread that allocates can cost the process a malloc arena of its own
        (about 5 MB of a worker's RSS with asyncio's default pool of up to six)."""
        assert self._loop is not None and self._store_thread is not None
        if prompt and self._prompt and not self._queued:
            try:
                with self.store.promptly():
                    return fn(*args)
            except WouldWait:
                pass
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        self._queued += 1
        try:
            return await self._loop.run_in_executor(self._store_thread, call)
        finally:
            self._queued -= 1

    def _tell_rescued(self, rescued: list[Rescued]) -> None:
        """Log and tell what a rescue did: the runs put back in the queue, and each run lost too often, failed for
        good (said as a run this worker fails for good is, and counted as failed, not as rescued)."""
        back = [r.run_id for r in rescued if r.error is None and not r.cancelled]
        if back:
            log.warning("rescued %d run(s) whose worker stopped heartbeating: %s", len(back), back[:5])
        ended = [r.run_id for r in rescued if r.cancelled]
        if ended:
            log.warning(
                "%d run(s) whose worker stopped heartbeating not run again: their schedule was cancelled: %s",
                len(ended),
                ended[:5],
            )
        for r in rescued:
            if r.error is not None:
                _said_failed(r.run_id, r.error, None)
        tell_rescued(self.observers, rescued)

    async def _step(self) -> bool:
        """One pass. Returns True when more work may be due right away."""
        assert self._wake is not None
        self._wake.clear()
        # a tick due (as the sleep read): its transaction claims, in priority order with the runs it makes, so the
        # outcomes go without a claim of their own
        slept, at = self._slept, self.clock.now()
        tick_at = slept.schedule_due if slept is not None and self.options.run_scheduler else None
        ticks = slept is not None and tick_at is not None and tick_at <= at + self._tick_ahead(slept, at)
        saw_all_due = await self._flush(refill=not ticks)
        now, steady = self.clock.now(), self._steady()  # read together: a step is judged between two such pairs
        if self._unsure_until is not None and (self._next_look is None or now >= self._next_look):
            await self._adopt(now)
        due, self._slept = self._slept, None
        if due is None:
            due = await self._io(self.store.next_wakeup)
        more = ticks_left = False
        claimed: int | None = None  # how many runs the tick's transaction claimed, out of how many wanted
        want = self._want()
        ahead = self._tick_ahead(due, now)
        if self.options.run_scheduler and due.schedule_due is not None and due.schedule_due <= now + ahead:
            if want > 0:  # tick and claim in one transaction: a delayed run starts without a claim of its own
                tick, lease = self.scheduler.tick_and_claim, self.options.lease
                created, runs, ticks_left = await self._claiming(tick, now, self.id, want, lease, ahead)
                self._ticked_to = None if ticks_left else now + ahead  # a full batch: more may be due by then
                self._begin(runs, now)
                claimed = None if ticks_left else len(runs)  # a full batch: this pass claims again after it
            else:
                created = await self._io(self.scheduler.tick, now, prompt=False)  # up to 100 transactions
            self.summary.created += len(created)
            more = bool(created)
        if self._serving:
            self._judge_step(now, steady)
        if (
            due.lease_expiry is not None
            and due.lease_expiry < now
            and (self._next_rescue is None or now >= self._next_rescue)
        ):
            self._next_rescue = now + self.options.rescue_every
            rescued = await self._io(self.store.rescue_expired, now, self.options.max_rescues, prompt=False)
            if rescued:
                self._tell_rescued(rescued)
                claimed = None  # runs due again since the tick's claim
                more = True
        # the flush's claim took fewer runs than it asked for: it took every run due by then that no other worker had
        seen = saw_all_due is not None and due.run_due is not None and due.run_due <= saw_all_due
        freed, self._freed = self._freed, False  # a run of ours under a limit ended: its slot may be ours again
        if claimed is not None:  # the tick's claim looked at every run due now (and after any slot freed)
            more = claimed == want
        elif self._outcomes and self._want() > 0 and not self._prune_due(now):
            # runs ended while this pass's calls were made (their bodies ran while its store thread waited): the next
            # pass, at once, records them and claims for every free slot in one transaction (``_flush``), instead of a
            # claim here and their record in a transaction of its own after it. Not when this pass prunes: its claim
            # goes before the prune's transaction, which may take a while
            self._freed = self._freed or freed
            more = True
        elif (want := self._want()) > 0 and (
            more or freed or (due.run_due is not None and due.run_due <= now and not seen)
        ):
            runs = await self._claiming(self.store.acquire_runs, self.id, want, self.options.lease, now)
            self._begin(runs, now)
            more = len(runs) == want
        await self._prune(now)  # after the claim: a worker's first pass claims before it prunes
        return more or ticks_left  # schedules left due by a full batch: the next pass ticks at once

    def _tick_ahead(self, due: Wakeups, now: datetime) -> timedelta:
        """How far past ``now`` a tick looks: ``ahead``, unless the last tick looked that far already and left the
        next schedule (one with an overlap policy is ticked only when due; another worker may hold it): that one
        is looked at again when it is due, not at every pass till then."""
        nxt, reached = due.schedule_due, self._ticked_to
        if not self.options.run_scheduler or (nxt is not None and reached is not None and now < nxt <= reached):
            return timedelta(0)
        return self._ahead

    async def _claiming(self, fn: Callable[..., T], *args: Any) -> T:
        """``_io`` of a call that claims runs. The store does not retry such a call when its COMMIT's outcome is
        unknown (a connection lost before the answer), and it may have landed: then this worker holds runs it does
        not know, which would wait for their lease to expire (a flush's retry claims afresh, and does not know them
        either). A failed call has the next passes look for them (``_adopt``)."""
        try:
            return await self._io(fn, *args)
        except Exception:
            self._unsure_until = self.clock.now() + _LOOK_FOR
            self._next_look = None
            raise

    async def _adopt(self, now: datetime) -> None:
        """Start the runs this worker holds the lease of without having started them: a claim whose answer was lost
        took them. Up to the free capacity, and only those whose lease outlasts the next heartbeat (another
        worker's rescue must not take one back while it runs); the rest go back to the queue at once."""
        found = await self._never_started()
        free = self._free()
        lasting = now + self._heartbeat_every
        start = [r for r in found if r.lease_expires_at is not None and r.lease_expires_at > lasting][:free]
        started = {run.id for run in start}
        back = [run.id for run in found if run.id not in started]
        if found:
            log.warning("a claim whose answer was lost took %d run(s): starting %d", len(found), len(start))
        self._begin(start, now)
        if back:
            await self._io(self.store.release_runs, self.id, back, now, back)
        assert self._unsure_until is not None
        self._next_look = now + _LOOK_EVERY
        if now >= self._unsure_until:
            self._unsure_until = None

    async def _never_started(self) -> list[Run]:
        """The runs this worker holds the lease of at attempts it never started (a lost claim's)."""
        leased = await self._io(self.store.leased_runs, self.id)
        return [run for run in leased if (run.id, run.attempt) not in self._held]

    @property
    def _heartbeat_every(self) -> timedelta:
        return self.options.heartbeat or self.options.lease / 3

    def _free(self) -> int:
        """The slots free for more runs. A sync function's thread that outlives its attempt (past its timeout)
        holds one until it returns: else the runs claimed for it would wait for a thread, leased (their heartbeats
        go on) but not started, while another worker is idle."""
        outliving = self.executors.outliving()
        if outliving:  # a run under a limit waits in flight for its thread: counted once
            outliving -= {(run.id, run.attempt) for run, _ in self._inflight.values()}
        return max(0, self.options.concurrency - len(self._inflight) - len(outliving))

    def _want(self) -> int:
        """How many runs one claim asks for: the free capacity, up to a batch."""
        if self._stop is not None and self._stop.is_set():  # a stop during a pass: it claims nothing more (a review)
            return 0
        return min(self._free(), self.options.batch)

    def _begin(self, runs: list[Run], now: datetime) -> None:
        """Start claimed runs as tasks of this loop. One not due yet at ``now`` (claimed ahead, or within the clock's
        uncertainty of its due time) waits for it in its task, and observers hear of its start then."""
        # a run whose lease ran out, or nearly, before the claim answered (this worker paused meanwhile: ``now`` is
        # the claim's own time) starts as a waiting one does, once it knows its lease still holds (``_when_due``)
        answered = self.clock.now()
        # their leases known first: read before, ``_lapsed`` found none for a run claimed now (a review), and never
        # held a run whose claim answered late back until it knew its lease still held
        self._leases.update((run.id, run.lease_expires_at) for run in runs if run.lease_expires_at is not None)
        waiting = {run.id for run in runs if self._wait(run, now) > 0 or self._lapsed(run, answered)}
        self._waiting.update(waiting)  # from now: a stop before their tasks first run gives them back too
        if runs and self.observers:
            self._observed.update((run.id, run) for run in runs)
            tell_started(self.observers, [run for run in runs if run.id not in waiting], now)
        self._limited.update(run.id for run in runs if run.limit_keys)
        self._held.update((run.id, run.attempt) for run in runs)
        for run in runs:
            if run.id in waiting:
                work: Coroutine[Any, Any, Any] = self._when_due(run)
            else:
                work = self._execute(run) if self.tracing is None else self._traced(run, now)
            task = asyncio.create_task(work, name=f"run {run.id}")
            before = self._inflight.get(run.id)
            if before is not None:  # an earlier attempt, still running and not stopped already: stopped now
                old, old_task = before
                if old.attempt != run.attempt and not old_task.done() and (run.id, old.attempt) in self._held:
                    self._stop_attempt(old, old_task, "and this worker claimed it again")
            if run.id not in waiting:  # an earlier attempt claimed ahead waited: at a stop this one is begun (a review)
                self._waiting.discard(run.id)
            self._inflight[run.id] = (run, task)

    def _wait(self, run: Run, now: datetime) -> float:
        """Seconds until ``run`` may start: its due time and the clock's uncertainty past ``now`` (at most
        ``ahead`` plus that for a run claimed ahead; nothing, or less than nothing, for one claimed when due)."""
        due = run.available_at or run.scheduled_at
        return (due + uncertainty(self.clock) - now).total_seconds()  # a StoreClock's is measured again

    async def _when_due(self, run: Run) -> None:
        """``run``, started when ``_wait`` says (a shutdown meanwhile cancels it, and it is given back unstarted),
        if its lease still holds then. A worker paused past its lease (SIGSTOP, a VM's pause) before a run claimed
        ahead was due started it on waking, after another worker's rescue had run it, or ended it cancelled: a run
        whose lease this worker no longer knows it holds is asked of the store first, and left if it is not."""
        try:
            while (wait := self._wait(run, self.clock.now())) > 0:
                await asyncio.sleep(wait)
            if self._lapsed(run, self.clock.now()) and not await self._still_held(run):
                self._drop(run)
                return
        except asyncio.CancelledError:
            self._leave(run)
            raise
        finally:
            entry = self._inflight.get(run.id)
            if entry is None or entry[0].attempt == run.attempt:  # not a later attempt's (claimed again: a review)
                self._waiting.discard(run.id)
        now = self.clock.now()  # its start, which its outcome records (the claim recorded its due time)
        if self.observers:
            tell_started(self.observers, [run], now)
        await (self._execute(run, now) if self.tracing is None else self._traced(run, now, began=now))

    def _lapsed(self, run: Run, now: datetime) -> bool:
        """Whether ``run``'s lease may run out before the next heartbeat, for all this worker knows (``_leases``):
        the margin covers a heartbeat late, and the clocks' uncertainty."""
        until = self._leases.get(run.id)
        return until is not None and now + self._heartbeat_every + uncertainty(self.clock) >= until

    async def _still_held(self, run: Run) -> bool:
        """Whether this worker holds ``run``'s lease at its attempt still (no rescue took it), its lease extended if
        so: one store read, made only for a run whose lease ``_lapsed``. A store that does not answer is asked again
        (backing off to 5 s) until it does: a run left unstarted on a failed call waited out its lease, and its
        rescue counted the attempt it never began as lost. Meanwhile the heartbeats extend its lease as they can."""
        failed = 0
        while True:
            try:
                leased = await self._io(self.store.leased_runs, self.id)
                if not any(r.id == run.id and r.attempt == run.attempt for r in leased):
                    return False
                until = self.clock.now() + self.options.lease
                if not await self._io(self.store.extend_leases, self.id, [run.id], until):
                    return False
                self._leases[run.id] = until
                return True
            except Exception as exc:
                failed += 1
                if failed == 1:  # once: it is asked again until the store answers
                    log.warning("run %s: could not ask the store whether its lease still holds (%s)", run.id, exc)
                await asyncio.sleep(_PASS_BACKOFF.delay(failed).total_seconds())

    def _drop(self, run: Run) -> None:
        """Leave ``run`` unstarted: no outcome, no attempt of this worker's; its slot is free."""
        log.warning("run %s not started: its lease ran out before it began, and another worker may have it", run.id)
        self._leave(run)
        self._held.discard((run.id, run.attempt))
        self._observed.pop(run.id, None)
        self._limited.discard(run.id)
        if self._wake is not None:
            self._wake.set()

    def _prune_due(self, now: datetime) -> bool:
        """Whether a pass at ``now`` prunes (``_prune``)."""
        retention = self.options.retention
        if not self._pruning or retention is None or not retention.enabled:
            return False
        return (self._next_prune is None or now >= self._next_prune) and time.monotonic() >= self._prune_rests_until

    async def _prune(self, now: datetime) -> None:
        """Every ``retention.every``, one batch of each kind of finished history past its keep; while a batch
        comes back full, another follows at a pass after a rest (``retention.share`` of the time: short
        transactions between the worker's own, which a backlog never starves)."""
        retention = self.options.retention
        if retention is None or not self._prune_due(now):
            return
        started = time.monotonic()
        counts = await self._io(self.store.prune, now, retention, retention.batch, prompt=False)
        self.pruned += counts
        full = max(counts.as_dict().values()) >= retention.batch
        self._next_prune = now if full else now + retention.every
        if full:  # a backlog: rest (real time, the machine's) so that pruning takes at most its share
            self._prune_rests_until = time.monotonic() + retention.rest_after(time.monotonic() - started)
        if counts.total:
            log.info("pruned %s", ", ".join(f"{n} {kind}" for kind, n in counts.as_dict().items() if n))

    async def _sleep(self, more: bool) -> None:
        assert self._wake is not None and self._stop is not None
        free = self._free()  # none: sleep a poll, not until something is due (nothing would be claimed)
        if (more and free > 0) or self._wake.is_set() or self._outcomes:  # or a run ended meanwhile
            await asyncio.sleep(0)
            return
        delay = self.options.poll.total_seconds()
        if free > 0:
            pokes = self._pokes
            due = await self._io(self.store.next_wakeup)
            self._slept = due if self._pokes == pokes else None  # a notify() during the read: it may predate it
            seen = due
            if due.lease_expiry is not None and self._next_rescue is not None and due.lease_expiry < self._next_rescue:
                seen = replace(due, lease_expiry=self._next_rescue)  # no rescue before then: no spin (a review)
            nxt = seen.earliest(ahead=self._tick_ahead(due, self.clock.now()))
            if nxt is not None:
                delay = max(0.0, min(delay, (nxt - self.clock.now()).total_seconds()))
        if delay <= 0 or self._wake.is_set() or self._outcomes:
            await asyncio.sleep(0)
            return
        stop_wait = asyncio.ensure_future(self._stop.wait())
        wake_wait = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({stop_wait, wake_wait}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            wake_wait.cancel()

    # ----------------------------------------------------------------------------------- a run

    async def _traced(self, run: Run, now: datetime, *, began: datetime | None = None) -> None:
        """``_execute`` inside the attempt's span, so the executor's HTTP calls, queries and publishes are its
        children (a task runs in a copy of the context current when it was created: this one's)."""
        assert self.tracing is not None
        secrets = self.secrets.of(run.product_tag)  # its spans masked as its records are
        with self.tracing.attempt(run, now, secrets) as span:
            span.finish(await self._execute(run, began))

    async def _execute(self, run: Run, began: datetime | None = None) -> Outcome:
        """Run ``run`` and record how it ended. ``began``: when a run claimed ahead started, after waiting for its
        due time (its outcome records it as its start)."""
        started = time.perf_counter()
        bind_run(run)  # log lines of this run carry its id, job tag and attempt
        ok, output, error, word, retryable = True, None, None, None, True
        try:
            ctx = self.prepare(run)
            hit, output, key = await self._cached(run, ctx)
            if hit:
                word = "cached"
            else:
                work: Awaitable[Any] = self.executors.get(run.event_type).execute(run, ctx)
                if run.timeout is not None:
                    output = await asyncio.wait_for(work, run.timeout.total_seconds())
                else:
                    output = await work
                if key is not None:  # stored as the run's output is: its product's secrets masked
                    kept = self.secrets.of(run.product_tag).mask(output)
                    await self._io(self.store.cache_put, key[0], kept, key[1], self.clock.now(), prompt=False)
        except asyncio.CancelledError as exc:
            if _cancelled_by_the_worker():
                self._leave(run)
                raise
            ok = False  # the function's own (it cancelled a task of its own and awaited it): a failure, retried
            retryable, word, error = self._failure(run, exc)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            ok = False  # never raises: the run is recorded failed whatever user code raised
            retryable, word, error = self._failure(run, exc)
        if word == "timeout" and run.limit_keys:
            try:
                await self._thread_returns(run)
            except asyncio.CancelledError:  # a stop: given back, as a run in flight is
                self._leave(run)
                raise
        ok, retryable, output, error, stored = self._kept(run, ok, retryable, output, error)
        finished = self.clock.now()
        retry_at = None
        if not ok and retryable and run.retry_count < run.max_retries:
            retry_at = finished + self.options.backoff.delay(run.retry_count + 1)
        outcome = Outcome(
            run_id=run.id,
            attempt=run.attempt,
            worker_id=self.id,
            ok=ok,
            finished_at=finished,
            duration_ms=int((time.perf_counter() - started) * 1000),
            output=output,
            error=error,
            retry_at=retry_at,
            outcome=word,
            started_at=began,
            stored=stored,
        )
        self._ended(run, outcome)
        return outcome

    def _ended(self, run: Run, outcome: Outcome) -> None:
        """``run``'s attempt ended: its outcome is queued for the next flush, unless the attempt was stopped, its lease
        lost (``_stop_attempt``), and caught its cancel and ran on: then it is not the run's outcome."""
        if (run.id, run.attempt) in self._held:
            self._outcomes.append(outcome)
        else:
            log.warning("run %s attempt %d ended after it was stopped: its outcome is not kept", run.id, run.attempt)
        self._leave(run)
        if self._wake is not None:
            self._wake.set()

    def _failure(self, run: Run, exc: BaseException) -> tuple[bool, str | None, str]:
        """How an attempt that raised ``exc`` failed (not the worker's own cancel): retryable, its word, its error. A
        review: a function's own ``CancelledError`` left its run ``running`` until a rescue (and ``drain()`` raised
        it), and another ``BaseException`` left it ``running``, its lease heartbeated, for as long as the worker ran."""
        if isinstance(exc, TimeoutError):
            limit = "none" if run.timeout is None else span_text(run.timeout)  # none: the event's own TimeoutError
            return True, "timeout", f"RunTimeoutError: run exceeded its timeout of {limit}"
        error = describe(exc, trace=4, mask=self.secrets.of(run.product_tag).mask_text)  # masked before it is cut
        if isinstance(exc, asyncio.CancelledError):
            return True, None, error
        if not isinstance(exc, Exception):
            return False, None, error
        return is_retryable(exc), "timeout" if isinstance(exc, RunTimeoutError) else None, error

    async def _thread_returns(self, run: Run) -> None:
        """A run under a limit whose sync function passed its timeout: its attempt ends when its thread returns. Ended
        at the timeout, it left the limit's count while its code still ran, and the next run of the limit (or its
        own retry) started beside it (a probe: three at once under a concurrency of 1). Meanwhile it stays running:
        its lease is heartbeated, its worker's slot and its limits' slots held."""
        thread = self.executors.thread_of(run.id, run.attempt)
        if thread is None or thread.done() or not self._serving or self._stop is None or self._stop.is_set():
            return  # drain() does not wait on code past its time; a stop: it is recorded now, not given back
        log.warning(
            "run %s passed its timeout; its sync function still runs in its thread: the run ends when it returns "
            "(at most %s from now, or at a stop), holding its limits (%s) until then",
            run.id,
            span_text(THREAD_WAIT),
            ", ".join(run.limit_keys),
        )
        returned = asyncio.wrap_future(thread)
        returned.add_done_callback(exception_read)  # what it raised or returned is not kept: the attempt timed out
        stopping = asyncio.ensure_future(self._stop.wait())
        waited = THREAD_WAIT.total_seconds()
        try:
            await asyncio.wait([returned, stopping], timeout=waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not thread.done():
            log.warning(
                "run %s: its thread still runs; ended as timed out now, its limits no longer held for it (its "
                "worker's slot is, until it returns)",
                run.id,
            )

    def _kept(
        self, run: Run, ok: bool, retryable: bool, output: Any, error: str | None
    ) -> tuple[bool, bool, Any, str | None, str | None]:
        """An attempt's (ok, retryable, output, error) as kept, and its output's JSON: masked by its own product's
        secrets (which reveals nothing of another's), the output encoded here, once; one that cannot be stored (or
        walked) fails the attempt, not retried. Never raises: a run is never left running."""
        secrets = self.secrets.of(run.product_tag)
        try:
            output, error = secrets.mask(output), None if error is None else secrets.mask_text(error)
            if not ok or output is None:
                return ok, retryable, output, error, None
            stored, problem = output_json(output)
            if problem is None:
                return ok, retryable, output, error, stored
            return False, False, None, f"ResultError: {problem}", None
        except Exception as exc:
            why = secrets.mask_text(f"ResultError: the output cannot be kept: {describe(exc)}")
            return False, False, None, why, None

    def _leave(self, run: Run) -> None:
        """This attempt is no longer in flight. Not another attempt of its run that this worker claimed since (its
        lease had run out, a rescue queued it again): that one is still going."""
        entry = self._inflight.get(run.id)
        if entry is not None and entry[0].attempt == run.attempt:
            del self._inflight[run.id]
            self._leases.pop(run.id, None)

    async def _cached(self, run: Run, ctx: RunContext) -> tuple[bool, Any, tuple[str, datetime] | None]:
        """A product's cache tag: the same event run with the same resolved input within the TTL is not run again.
        The event is what it is run with beyond its input too: the app the schedule picks (an action of that name in
        two apps is two events) and the session's data, which its definition may read (``$Session{...}``): one
        user's result is never another's."""
        if run.cache is None or ctx.product is None or run.cache not in ctx.product.caches:
            return False, None, None
        ttl = ctx.product.caches[run.cache].lifetime
        material = json.dumps(
            [run.product_tag, run.env, run.event_type.value, run.event_tag, run.app, run.session, run.cache, ctx.input],
            sort_keys=True,
            default=str,
        )
        key = hashlib.sha256(material.encode()).hexdigest()
        hit, value = await self._io(self.store.cache_get, key, self.clock.now(), prompt=False)
        return hit, value, None if hit else (key, self.clock.now() + ttl)

    async def _flush(self, *, refill: bool = False) -> datetime | None:
        """Record the outcomes so far. With ``refill``, claim runs for the free capacity in the same transaction
        (``finish_and_acquire``): the slots they free are taken again at once, before any other claim, and the
        next runs start without a transaction of their own (on PostgreSQL a commit and its WAL flush a batch). If
        fewer runs under a limit came back than these outcomes freed, the pass's own claim looks again (a slot
        may still be free). When that claim took fewer runs than it asked for, the time it claimed at: it took every
        run due then that no other worker had (``None`` otherwise)."""
        if not self._outcomes:
            return None
        outcomes, self._outcomes = self._outcomes, []
        freed = sum(1 for o in outcomes if o.run_id in self._limited)
        self._limited.difference_update(o.run_id for o in outcomes)
        want = self._want() if refill else 0
        now = self.clock.now()
        try:
            recorded = await retry_async(
                lambda: self._claiming(self._record, outcomes, now, want),
                tries=5,
                backoff=_FLUSH_BACKOFF,
                retryable=lambda exc: not isinstance(exc, StoreUnusableError),  # closed or forked: not coming back
                on_retry=lambda exc, _: self._flush_failed(exc, len(outcomes)),
            )
        except Exception:
            self._outcomes[:0] = outcomes  # kept: the next pass records them (the store may be away)
            raise
        self._flushes.ok()
        self._held.difference_update((o.run_id, o.attempt) for o in outcomes)
        # the watched runs these outcomes end, taken before the claim begins its runs: a retry it claimed again
        # is watched anew (its attempt's end was dropped, a review), and no later attempt is ended by an earlier's
        watched = {o.run_id: self._observed.pop(o.run_id) for o in outcomes if self._watches(o)}
        runs = recorded.claimed
        self._begin(runs, now)
        self._freed = self._freed or sum(1 for run in runs if run.limit_keys) < freed
        saw_all_due = now if want > 0 and len(runs) < want else None
        if recorded.cancelled:  # their schedule was cancelled while they ran: no retry was made
            outcomes = [
                replace(o, retry_at=None, outcome=_CANCELLED) if o.run_id in recorded.cancelled else o for o in outcomes
            ]
        for o in outcomes:
            if o.ok:
                self.summary.completed += 1
            elif o.outcome == _CANCELLED:
                self.summary.cancelled += 1
                log.info(
                    "run %s attempt %d failed, not retried: its schedule was cancelled: %s",
                    o.run_id,
                    o.attempt,
                    _first_line(o.error),
                    extra={"run_id": o.run_id, "attempt": o.attempt},
                )
            elif o.retry_at is not None:
                self.summary.retried += 1
                log.info(
                    "run %s attempt %d failed, retried at %s: %s",
                    o.run_id,
                    o.attempt,
                    iso_text(o.retry_at),
                    _first_line(o.error),
                    extra={"run_id": o.run_id, "attempt": o.attempt},
                )
            else:
                self.summary.failed += 1
                _said_failed(o.run_id, o.error, o.attempt)
        if watched:
            tell_finished(self.observers, [(watched[o.run_id], o) for o in outcomes if o.run_id in watched])
        return saw_all_due

    def _watches(self, outcome: Outcome) -> bool:
        """Whether the observers watch the attempt ``outcome`` ends (not another attempt of its run)."""
        run = self._observed.get(outcome.run_id)
        return run is not None and run.attempt == outcome.attempt

    def _flush_failed(self, exc: Exception, count: int) -> None:
        """A try to record ``count`` outcomes failed: the store away is said as ``Repeats`` says it; anything else
        with its traceback."""
        if isinstance(exc, StoreError):
            self._flushes.failed(exc, f"; retrying ({count} outcome(s) kept)")
        else:
            log.exception("recording %d outcome(s) failed; retrying", count)

    def _record(self, outcomes: list[Outcome], now: datetime, want: int) -> Recorded:
        if want <= 0:
            return Recorded([], self.store.finish_runs(outcomes, now))
        return self.store.finish_and_acquire(outcomes, now, self.id, want, self.options.lease)

    async def _heartbeat_loop(self) -> None:
        every = self._heartbeat_every.total_seconds()
        while True:
            await asyncio.sleep(every)
            # the attempts held (``_held``): those running, and those ended whose outcome is not recorded yet (a stop's
            # grace records them at its end); not one stopped since its lease was lost that runs on (it caught a cancel)
            ids = list({run_id for run_id, _ in self._held})
            if ids:
                until = self.clock.now() + self.options.lease
                try:
                    extended = await self._io(self.store.extend_leases, self.id, ids, until)
                except StoreError as exc:  # the store away: said once, then each 30 s
                    self._heartbeats.failed(exc)
                except Exception:
                    log.exception("heartbeat failed")
                else:
                    self._heartbeats.ok()
                    if extended == len(ids):
                        self._leases.update((run_id, until) for run_id in ids if run_id in self._leases)
                    else:  # fewer: a run ended meanwhile, or a lease was lost (another worker's rescue took it)
                        await self._stop_lost(ids, until)

    async def _stop_lost(self, ids: list[str], until: datetime) -> None:
        """The runs of ``ids`` whose lease this worker no longer holds at their attempt are stopped (asked of the
        store; not, if it does not answer: the next heartbeat asks again). A worker paused past its leases (SIGSTOP,
        a VM's pause) woke and ran on the code of runs that another worker had rescued and started again: four
        running under a concurrency of 2 in a limits probe, until the first attempts ended. A coroutine stops at
        its cancel; a sync function's thread runs on (it holds its slot until it returns). Its outcome is not
        recorded: the store's run is the other attempt's."""
        try:
            held = {(run.id, run.attempt) for run in await self._io(self.store.leased_runs, self.id)}
        except Exception as exc:
            log.warning("could not ask the store which leases this worker still holds (%s)", exc)
            return
        for run_id in ids:
            entry = self._inflight.get(run_id)
            if entry is None:  # ended meanwhile
                continue
            run, task = entry
            if (run_id, run.attempt) in held:
                if run_id in self._leases:
                    self._leases[run_id] = until
            elif not task.done():
                self._stop_attempt(run, task, "and another worker rescued it")
                self._limited.discard(run_id)
                self._observed.pop(run_id, None)

    def _judge_step(self, now: datetime, mono: float) -> None:
        """A clock stepped ahead (an NTP step, a VM resumed, ``date -s``) makes every lease look lapsed, the live
        workers' (this one's too) as well as the dead ones': no lease is judged lapsed for a lease after it, by which
        time each live worker has renewed its own by the new time (its heartbeat comes every third of it).
        ``mono`` is the monotonic clock read with ``now``: read after the pass's store calls, a slow pass followed
        by a quick one looked like a jump."""
        if self._clock_seen is not None:
            then_mono, then = self._clock_seen
            jump = (now - then).total_seconds() - (mono - then_mono)
            if jump > CLOCK_STEP.total_seconds():
                log.warning(
                    "the clock jumped %.1fs ahead: no lease is taken as lapsed for %s, while the live workers renew "
                    "theirs by it",
                    jump,
                    span_text(self.options.lease),
                )
                self._next_rescue = self._step_until = now + self.options.lease
            elif jump < -CLOCK_STEP.total_seconds():  # stepped back: the next rescue, set by the time before, is not
                self._next_rescue = self._step_until = None  # an hour away after a step of an hour back
        self._clock_seen = (mono, now)

    def may_rescue(self, now: datetime) -> bool:
        """Whether leases may be taken as lapsed at ``now``: not for a lease after the clock jumped ahead
        (``_judge_step``). The feature runs whose driver died are resumed by it too (``adopt_orphans``)."""
        return self._step_until is None or now >= self._step_until

    def _stop_attempt(self, run: Run, task: asyncio.Task[Any], why: str) -> None:
        """Stop an attempt of ``run`` whose lease this worker lost (its outcome would not be recorded)."""
        said = "run %s attempt %d stopped: its lease ran out (was this worker paused?) %s"
        log.warning(said, run.id, run.attempt, why)
        task.cancel()
        self._held.discard((run.id, run.attempt))

    async def _shutdown(self) -> None:
        unstarted = [run_id for run_id in self._inflight if run_id in self._waiting]  # claimed ahead: given back
        for run_id in unstarted:  # at once, not started after the stop
            self._inflight[run_id][1].cancel()
        tasks = [task for run_id, (_, task) in self._inflight.items() if run_id not in unstarted]
        if tasks:
            log.info(
                "waiting up to %s for %d run(s) in flight (a second signal gives them back at once)",
                self.options.shutdown_grace,
                len(tasks),
            )
            await self._grace(tasks)
        left = [run_id for run_id in self._inflight if run_id not in unstarted]
        for run_id in left:
            self._inflight[run_id][1].cancel()
        begun = len(left)  # the runs given back below that had begun (not claimed ahead, nor never started)
        cancelled = [self._inflight[run_id][1] for run_id in left]
        if cancelled:  # a coroutine stops at its cancel; the code of a sync function keeps running in its thread
            await asyncio.wait(cancelled, timeout=1)
            self.abandoned = self.executors.in_threads()
        left += unstarted
        try:
            await self._flush()
            for run_id in left:  # after the flush told the observers of the ends it recorded (a review)
                self._observed.pop(run_id, None)
            if self._unsure_until is not None:  # and the runs a claim whose answer was lost took (``_adopt``)
                lost = [run.id for run in await self._never_started() if run.id not in left]
                left += lost
                unstarted += lost
            if left:  # those never begun go back with no attempt, though the wait for the others passed their due
                now = self.clock.now()  # time (their attempt was counted, and their first run said attempt 2)
                released = await self._io(self.store.release_runs, self.id, left, now, unstarted)
                say = log.warning if begun else log.info
                say("released %d unfinished run(s) back to the queue (%d begun)", released.queued, begun)
                if released.cancelled:
                    say("ended %d unfinished run(s) cancelled: their schedule was cancelled", released.cancelled)
        except StoreError as exc:  # their leases expire and other workers rescue the runs
            log.error(
                "could not record %d outcome(s) or release %d run(s) at shutdown: %s",
                len(self._outcomes),
                len(left),
                exc,
            )

    async def _grace(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Until ``tasks`` end, ``shutdown_grace`` passes or a second signal says to stop now (``_hurry``)."""
        assert self._hurry is not None
        ended = asyncio.ensure_future(asyncio.wait(tasks))  # cancelled below: the tasks are not (asyncio.wait's)
        hurried = asyncio.ensure_future(self._hurry.wait())
        try:
            await asyncio.wait(
                {ended, hurried},
                timeout=self.options.shutdown_grace.total_seconds(),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ended.cancel()
            hurried.cancel()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        """The first signal stops claiming and lets the runs in flight finish within ``shutdown_grace``; a second
        (Ctrl-C twice, a supervisor's repeated TERM) gives them back to the queue at once."""
        if self._stop is None:
            return
        if not self._stop.is_set():
            log.info("received %s: stopping", sig.name)
            self._stop.set()
        elif self._hurry is not None and not self._hurry.is_set():
            log.warning("received %s again: giving the runs in flight back to the queue now", sig.name)
            self._hurry.set()


def _first_line(error: str | None) -> str:
    """A run's error as a log line says it: its first line (the run keeps it whole, traceback and all)."""
    return next(iter((error or "").splitlines()), "")


def _said_failed(run_id: str, error: str | None, attempt: int | None) -> None:
    """The one line that says a run failed for good, whoever failed it (its worker, or a rescue)."""
    extra = {"run_id": run_id} if attempt is None else {"run_id": run_id, "attempt": attempt}
    log.warning("run %s failed for good: %s", run_id, _first_line(error), extra=extra)


def _cancelled_by_the_worker() -> bool:
    """Whether the ``CancelledError`` this task caught is a cancel of the task (the worker's: a stop, a lost lease),
    not one the function raised itself."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def exception_read(future: asyncio.Future[Any]) -> None:
    """A done callback: ``future``'s exception read, so that asyncio logs none as never retrieved (a wait that
    stopped waiting for it, or did not ask for its result, does not read it)."""
    if not future.cancelled():
        future.exception()
