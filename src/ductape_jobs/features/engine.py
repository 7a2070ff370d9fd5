"""Driving a feature run, event by event, each event's outcome recorded before anything depends on it.

``start`` checks the request (the feature, its input schema, the session, the ``$Input``/``$Session`` its
events need, the jobs its JOB events schedule), records the run with every event ``pending``, and drives it.
``resume`` drives a run that did not finish (its driver crashed): events already finished are never run
again; one that was interrupted runs again (at-least-once, as a job run whose worker died).

The driver holds the run under a lease (extended by a heartbeat), so two drivers never run it at once; a
driver that lost its lease changes nothing more (the store guards every write by the lease owner).

Each event attempt reuses the job executors: the event is presented to its executor as a ``Run`` whose id is
``<feature run>:<sequence>:<event>``, with its input resolved against the feature's scope (``$Input`` = the
feature's input, ``$Session`` = the verified session, ``$Sequence{seq}{event}`` = earlier results). A JOB event
schedules its job (``Jobs._schedule_keyed``) under the key ``<feature run>:<sequence>:<event>``, unique in
the store, so a run resumed after a crash finds that schedule instead of scheduling the job again; the job
keeps the feature's verified session; the event keeps the job_id. A FEATURE event runs the other
feature as a child feature run (``<feature run>/<sequence>/<event>``), whose results are its output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from msgspec import Struct, field
from msgspec.structs import replace

from ductape_jobs.clock import Clock
from ductape_jobs.errors import (
    ConflictError,
    ExecutionError,
    FeatureFailed,
    FeatureRejected,
    NotFoundError,
    PipingFailure,
    ResultError,
    StoreError,
    ValidationError,
    describe,
    is_retryable,
)
from ductape_jobs.executors.base import RunContext
from ductape_jobs.executors.context import RunPreparer
from ductape_jobs.executors.registry import ExecutorRegistry
from ductape_jobs.features.records import EventResult, EventStatus, FeatureRun, FeatureRunStatus
from ductape_jobs.ids import new_id
from ductape_jobs.limits import check_object
from ductape_jobs.logs import Repeats, logger
from ductape_jobs.models import DispatchResult, FeatureEventTypes, Run, RunPhase, TriggeredBy
from ductape_jobs.piping import PipingError, PipingSyntaxError, Scope, check, literal, references, resolve
from ductape_jobs.sessions import Sessions, jwt_loaded
from ductape_jobs.store.base import Store
from ductape_jobs.store.codec import output_json
from ductape_jobs.timing.backoff import Backoff

if TYPE_CHECKING:  # a feature's plan and its product's models (pydantic) load when a feature is first run
    from ductape_jobs.features.plan import FeaturePlan, PlannedEvent, PlannedSequence
    from ductape_jobs.products import Products
    from ductape_jobs.products.model import ProductSpec
    from ductape_jobs.tracing import Tracing

log = logger("ductape_jobs.feature")
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class _LeaseLost(Exception):
    """Another driver took the feature run over."""


class _Drive(Struct):
    """One driver's state while it drives a run."""

    run: FeatureRun
    owner: str
    product: ProductSpec
    plan: FeaturePlan
    events: dict[tuple[str, str], EventResult]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # what $Sequence sees
    failure: str | None = None
    lost: bool = False


def new_owner() -> str:
    """A driver's name: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('drv')[-6:]}"


class FeatureEngine:
    """Starts, resumes and drives feature runs (``ductape.feature`` and the FEATURE executor use it).

    ``sleep`` is how a retry waits its backoff (``asyncio.sleep``; tests replace it, or give a zero ``Backoff``).
    """

    def __init__(
        self,
        *,
        store: Store,
        products: Products,
        sessions: Sessions,
        executors: ExecutorRegistry,
        prepare: RunPreparer,
        clock: Clock,
        schedule: Callable[[dict[str, Any], str, dict[str, Any] | None], DispatchResult],
        backoff: Backoff,
        lease: timedelta,
        sleep: Sleep = asyncio.sleep,
        tracing: Tracing | None = None,
    ) -> None:
        self.store = store
        self.products = products
        self.sessions = sessions
        self.executors = executors
        self.prepare = prepare
        self.clock = clock
        self.schedule = schedule
        self.backoff = backoff
        self.lease = lease
        self.sleep = sleep
        self.tracing = tracing  # None: off; else the run's span is the parent of its events' spans

    async def _io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # ------------------------------------------------------------------------------------- entry points

    def plan(self, product_tag: str, env: str, tag: str) -> tuple[ProductSpec, FeaturePlan]:
        """The product and the plan of feature ``tag``; ``ValidationError`` naming what is unknown."""
        if not self.products.configured:
            raise ValidationError("product_tag", "no product is configured; features are declared by a product")
        product = self.products.check_env(product_tag, env)
        if tag not in product.features:
            known = ", ".join(sorted(product.features)) or "none"
            raise ValidationError("feature", f"product {product_tag!r} defines no feature {tag!r} (it has: {known})")
        from ductape_jobs.features.plan import plan_feature

        return product, plan_feature(product, tag, self.products.locate)

    async def start(
        self,
        tag: str,
        *,
        env: str,
        product_tag: str,
        input: dict[str, Any] | None = None,
        session: Any = None,
        claims: dict[str, Any] | None = None,
        run_id: str | None = None,
        owner: str | None = None,
    ) -> FeatureRun:
        """Check, record and drive a new run of feature ``tag``. ``claims``: session data already verified."""
        from ductape_jobs.features.plan import check_input

        product, plan = self.plan(product_tag, env, tag)
        given = check_input(plan, {} if input is None else check_object(input, "input"))
        if session is not None:  # the first session of the process loads PyJWT: in a thread, not on this loop
            verify = self.sessions.verify
            claims = (
                verify(session, env=env, product_tag=product_tag)
                if jwt_loaded()
                else await self._io(verify, session, env=env, product_tag=product_tag)
            )
        await self._admit(plan, given, claims)
        now = self.clock.now()
        owner = owner or new_owner()
        run = FeatureRun(
            id=run_id or new_id("feat"),
            product_tag=product_tag,
            env=env,
            feature_tag=tag,
            input=given,
            status=FeatureRunStatus.RUNNING,
            created_at=now,
            updated_at=now,
            session=claims,
            lease_owner=owner,
            lease_expires_at=now + self.lease,
            events=[EventResult(e.sequence_tag, e.tag, e.type.value, e.position) for e in plan.events],
        )
        await self._io(self.store.create_feature_run, run)
        return await self._drive(run, owner, product, plan)

    async def resume(self, run_id: str, *, owner: str | None = None, take_over: bool = False) -> FeatureRun:
        """Drive an unfinished run on from where it stopped; a finished one is returned as it is.
        ``ConflictError`` while another driver holds it (its lease has not expired)."""
        owner = owner or new_owner()
        now = self.clock.now()
        run = await self._io(self.store.claim_feature_run, run_id, owner, now + self.lease, now, take_over=take_over)
        if run is None:
            held = await self._io(self.store.get_feature_run, run_id)
            until = held.lease_expires_at.isoformat() if held and held.lease_expires_at else "?"
            raise ConflictError(
                f"feature run {run_id!r} is being run by {held.lease_owner if held else '?'} (lease until {until})"
            )
        if run.status is not FeatureRunStatus.RUNNING:
            return run
        try:
            product, plan = self.plan(run.product_tag, run.env, run.feature_tag)
            _same_events(plan, run)
        except ValidationError as exc:  # the product changed under the run: it cannot go on
            await self._io(
                self.store.finish_feature_run,
                run.id,
                owner,
                FeatureRunStatus.FAILED,
                now,
                self.prepare.products.secrets.of(run.product_tag).mask_text(str(exc)),
            )
            return await self._get(run.id)
        return await self._drive(run, owner, product, plan)

    async def retry(self, run_id: str, *, owner: str | None = None) -> FeatureRun:
        """Run a failed run again: its failed and skipped events run, completed ones are kept."""
        await self._io(self.store.restart_feature_run, run_id, self.clock.now())
        return await self.resume(run_id, owner=owner)

    async def run_for_job(self, run: Run, ctx: RunContext) -> FeatureRun:
        """A FEATURE job run: the feature run keyed by the job run's id is started, or resumed if an earlier
        attempt of this job run left it unfinished, or retried if it failed."""
        owner = f"job-run:{run.id}:{run.attempt}"  # a new attempt means the previous one lost the job run
        try:
            existing = await self._io(self.store.get_feature_run, run.id)
            if existing is None:
                try:
                    return await self.start(
                        run.event_tag,
                        env=run.env,
                        product_tag=run.product_tag,
                        input=ctx.input,
                        claims=run.session,
                        run_id=run.id,
                        owner=owner,
                    )
                except ConflictError:  # created meanwhile by a previous attempt still going: take it over
                    pass
            elif existing.status is FeatureRunStatus.FAILED:
                await self._io(self.store.restart_feature_run, run.id, self.clock.now())
            return await self.resume(run.id, owner=owner, take_over=True)
        except ValidationError as exc:
            raise FeatureRejected(str(exc)) from None

    async def adopt_orphans(
        self, stop: asyncio.Event, every: timedelta, may_rescue: Callable[[datetime], bool] | None = None
    ) -> None:
        """Until ``stop`` is set, resume every ``every`` the direct feature runs whose driver died (their lease
        expired: ``Store.orphaned_feature_runs``), as workers rescue job runs. Every worker process that knows a
        product does this (``Ductape``); the lease gives each run to one of them. A run of a product or feature this
        process does not know is left to a process that does. Runs still going when ``stop`` is set are cancelled
        (their lease then expires and another worker takes them on). ``may_rescue(now)`` false: none is taken as
        orphaned then (its worker's clock jumped ahead: ``Worker.may_rescue``)."""
        going: dict[str, asyncio.Task[None]] = {}
        repeats = Repeats(log, "looking for feature runs whose driver died")  # the store away: not every 2 s
        try:
            while not stop.is_set():
                try:
                    now = self.clock.now()
                    found = (
                        []
                        if may_rescue and not may_rescue(now)
                        else await self._io(self.store.orphaned_feature_runs, now, 10)
                    )
                    for run_id in found:
                        if run_id not in going:
                            going[run_id] = asyncio.create_task(self._adopt(run_id), name=f"adopt-{run_id}")
                except StoreError as exc:
                    repeats.failed(exc)
                except Exception:
                    log.exception("looking for feature runs whose driver died failed")
                else:
                    repeats.ok()
                for run_id in [r for r, task in going.items() if task.done()]:
                    del going[run_id]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every.total_seconds())
        finally:
            for task in going.values():
                task.cancel()
            await asyncio.gather(*going.values(), return_exceptions=True)

    async def _adopt(self, run_id: str) -> None:
        try:
            run = await self._get(run_id)
            self.plan(run.product_tag, run.env, run.feature_tag)  # known here; else another process's to resume
        except (NotFoundError, ValidationError):
            return
        try:
            resumed = await self.resume(run_id)
            log.warning("resumed feature run %s whose driver stopped: %s", run_id, resumed.status.value)
        except ConflictError:  # another worker took it first
            pass
        except Exception:
            log.exception("resuming feature run %s failed", run_id)

    async def _get(self, run_id: str) -> FeatureRun:
        found = await self._io(self.store.get_feature_run, run_id)
        if found is None:
            raise NotFoundError("feature run", run_id)
        return found

    async def _admit(self, plan: FeaturePlan, given: dict[str, Any], claims: dict[str, Any] | None) -> None:
        """What can be known before the run starts: the ``$Input``/``$Session`` values the events need, and
        the jobs the JOB events schedule."""
        scope = Scope(input=given, session=claims, now=self.clock.now())
        for event in plan.events:
            try:
                check(event.spec.input, scope, sources={"Input", "Session"})
            except (PipingError, PipingSyntaxError) as exc:
                raise ValidationError("input", f"{exc} (needed by {event.where}.input)") from None
            if (
                event.type is FeatureEventTypes.JOB
                and await self._io(self.store.find_job, plan.product_tag, event.tag) is None
            ):
                raise ValidationError(
                    f"{event.where}.event",
                    f"no job with tag {event.tag!r} in product {plan.product_tag!r} and no shared one; "
                    "create it with job.create first",
                )

    # --------------------------------------------------------------------------------------- driving

    async def _drive(self, run: FeatureRun, owner: str, product: ProductSpec, plan: FeaturePlan) -> FeatureRun:
        if self.tracing is None:
            return await self._drive_run(run, owner, product, plan)
        secrets = self.prepare.products.secrets.of(run.product_tag)  # its events' spans masked as their records
        with self.tracing.feature_run(run, secrets):  # current while the events' tasks are made: they are its children
            return await self._drive_run(run, owner, product, plan)

    async def _drive_run(self, run: FeatureRun, owner: str, product: ProductSpec, plan: FeaturePlan) -> FeatureRun:
        state = _Drive(run, owner, product, plan, {(e.sequence_tag, e.event_tag): e for e in run.events})
        state.results = run.output
        heartbeat = asyncio.create_task(self._heartbeat(state), name=f"feature lease {run.id}")
        try:
            for sequence in plan.sequences:
                if state.failure is not None or state.lost:
                    break
                await self._sequence(state, sequence)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if not state.lost:
            status = FeatureRunStatus.FAILED if state.failure is not None else FeatureRunStatus.COMPLETED
            now = self.clock.now()
            state.lost = not await self._io(self.store.finish_feature_run, run.id, owner, status, now, state.failure)
        if state.lost:
            raise ConflictError(f"feature run {run.id!r} was taken over by another driver; this one stopped")
        log.info("feature run %s (%s) %s", run.id, run.feature_tag, "failed" if state.failure else "completed")
        return await self._get(run.id)

    async def _heartbeat(self, state: _Drive) -> None:
        every = max(0.05, self.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(every)  # wall time: the lease is about this process staying alive
            try:
                until = self.clock.now() + self.lease
                if not await self._io(self.store.extend_feature_lease, state.run.id, state.owner, until):
                    state.lost = True
                    return
            except Exception:
                log.exception("extending the lease of feature run %s failed", state.run.id)

    async def _sequence(self, state: _Drive, sequence: PlannedSequence) -> None:
        """The sequence's events at once, each after the earlier events of the sequence it pipes from."""
        done = {event.tag: asyncio.Event() for event in sequence.events}

        async def one(event: PlannedEvent) -> None:
            try:
                for tag in event.after:
                    await done[tag].wait()
                await self._event(state, event)
            finally:
                done[event.tag].set()

        tasks = [asyncio.create_task(one(e), name=f"feature event {e.sequence_tag}/{e.tag}") for e in sequence.events]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    async def _event(self, state: _Drive, event: PlannedEvent) -> None:
        recorded = state.events[(event.sequence_tag, event.tag)]
        if recorded.status is EventStatus.COMPLETED or recorded.status is EventStatus.SKIPPED:
            return
        if recorded.status is EventStatus.FAILED:
            if not event.spec.allow_fail:
                state.failure = state.failure or f"event {event.sequence_tag}/{event.tag} failed: {recorded.error}"
            return
        if state.failure is not None or state.lost:
            return  # the feature stopped: this event is recorded skipped
        failures = {EventStatus.RETRYING: recorded.attempts, EventStatus.RUNNING: max(0, recorded.attempts - 1)}
        failed = failures.get(recorded.status, 0)  # an attempt cut short by a crash does not count
        if recorded.status is EventStatus.RETRYING:
            await self.sleep(self.backoff.delay(failed).total_seconds())
        try:
            await self._attempts(state, event, failed)
        except _LeaseLost:
            state.lost = True

    async def _attempts(self, state: _Drive, event: PlannedEvent, failed: int) -> None:
        run_id, owner, seq, tag = state.run.id, state.owner, event.sequence_tag, event.tag
        secrets = self.prepare.products.secrets.of(state.run.product_tag)  # no secret leaves in a record
        while True:
            attempt = await self._io(self.store.start_feature_event, run_id, owner, seq, tag, self.clock.now())
            if attempt is None:
                raise _LeaseLost
            try:
                output, job_id = await self._attempt(state, event, attempt)
                # what is stored, masked, is checked as a run's is (past its bound, or not encodable: not
                # retried); the next events are piped the output itself
                stored = secrets.mask(output)
                if stored is not None and (problem := output_json(stored)[1]) is not None:
                    raise ResultError(problem)
            except Exception as exc:
                failed += 1
                error = _describe(exc, secrets.mask_text)  # masked before it is cut
                first = next(iter(error.splitlines()), "")  # what a log line quotes: masked and cut, as stored
                if is_retryable(exc) and failed <= event.spec.retries:
                    log.warning("feature event %s/%s attempt %d failed; retrying: %s", seq, tag, attempt, first)
                    await self._finish(state, event, EventStatus.RETRYING, error=error)
                    await self.sleep(self.backoff.delay(failed).total_seconds())
                    continue
                log.warning("feature event %s/%s failed for good: %s", seq, tag, first)
                await self._finish(state, event, EventStatus.FAILED, error=error)
                if not event.spec.allow_fail:
                    state.failure = state.failure or f"event {seq}/{tag} failed: {error.splitlines()[0]}"
                return
            await self._finish(state, event, EventStatus.COMPLETED, output=stored, job_id=job_id)
            if event.type is not FeatureEventTypes.JOB:
                state.results.setdefault(seq, {})[tag] = output
            return

    async def _finish(self, state: _Drive, event: PlannedEvent, status: EventStatus, **values: Any) -> None:
        ok = await self._io(
            self.store.finish_feature_event,
            state.run.id,
            state.owner,
            event.sequence_tag,
            event.tag,
            status,
            self.clock.now(),
            **values,
        )
        if not ok:
            raise _LeaseLost
        key = (event.sequence_tag, event.tag)
        state.events[key] = replace(state.events[key], status=status, error=values.get("error"))

    # ------------------------------------------------------------------------------------ one attempt

    async def _attempt(self, state: _Drive, event: PlannedEvent, attempt: int) -> tuple[Any, str | None]:
        """Run ``event`` once: ``(output, job_id)``."""
        if self.tracing is None:
            return await self._attempt_event(state, event, attempt)
        with self.tracing.feature_event(state.run.id, event.sequence_tag, event.tag, event.type.value, attempt):
            return await self._attempt_event(state, event, attempt)

    async def _attempt_event(self, state: _Drive, event: PlannedEvent, attempt: int) -> tuple[Any, str | None]:
        run = _event_run(state.run, event, attempt, self.clock)
        scope = replace(self.prepare.scope(run, state.product), sequence=state.results)
        try:
            resolved = resolve(event.spec.input, scope)
        except (PipingError, PipingSyntaxError) as exc:
            raise PipingFailure(f"input: {_piping_reason(state, event, exc)}") from None
        if event.type is FeatureEventTypes.JOB:
            return None, await self._schedule_job(state.run, event, resolved, scope)
        if event.type is FeatureEventTypes.FEATURE:
            return await self._child_feature(state, event, resolved), None
        run = replace(run, input=resolved)
        ctx = RunContext.of(run, resolved, state.product, replace(scope, input=resolved))
        output = await self.executors.get(run.event_type).execute(run, ctx)
        json.dumps(output, default=str)  # fails the attempt now, not the recording, if it cannot be kept
        return output, None

    async def _schedule_job(self, run: FeatureRun, event: PlannedEvent, resolved: dict[str, Any], scope: Scope) -> str:
        request: dict[str, Any] = {
            "env": run.env,
            "product_tag": run.product_tag,
            "event": event.tag,
            # resolved once, here: data to the job, never a template again; stored, so no secret in it
            "input": literal(self.prepare.products.secrets.of(run.product_tag).mask(resolved)),  # masked as sent
            "retries": event.spec.retries,
        }
        if event.spec.app is not None:
            request["app"] = event.spec.app
        if event.spec.repeat is not None:
            request["repeat"] = event.spec.repeat
        if event.spec.start_at is not None:
            try:
                request["start_at"] = resolve(event.spec.start_at, scope)
            except (PipingError, PipingSyntaxError) as exc:
                raise PipingFailure(f"start_at: {exc}") from None
        key = f"{run.id}:{event.sequence_tag}:{event.tag}"  # a resumed run finds the schedule made before a crash
        try:
            result = await self._io(self.schedule, request, key, run.session)
        except ValidationError as exc:
            raise FeatureRejected(f"scheduling job {event.tag!r}: {exc}") from None
        return result.job_id

    async def _child_feature(self, state: _Drive, event: PlannedEvent, resolved: dict[str, Any]) -> Any:
        run = state.run
        child_id = f"{run.id}/{event.sequence_tag}/{event.tag}"
        try:
            existing = await self._io(self.store.get_feature_run, child_id)
            if existing is None:
                child = await self.start(
                    event.tag,
                    env=run.env,
                    product_tag=run.product_tag,
                    input=self.prepare.products.secrets.of(run.product_tag).mask(resolved),  # stored: no secret
                    claims=run.session,
                    run_id=child_id,
                    owner=state.owner,
                )
            else:
                if existing.status is FeatureRunStatus.FAILED:
                    await self._io(self.store.restart_feature_run, child_id, self.clock.now())
                child = await self.resume(child_id, owner=state.owner, take_over=True)
        except ValidationError as exc:
            raise FeatureRejected(f"feature {event.tag!r}: {exc}") from None
        if child.status is FeatureRunStatus.FAILED:
            raise FeatureFailed(f"feature {event.tag!r} (run {child.id}) failed: {child.error}")
        return child.output


# ------------------------------------------------------------------------------------------- helpers


def _event_run(run: FeatureRun, event: PlannedEvent, attempt: int, clock: Clock) -> Run:
    """How an executor sees a feature event: a run of the feature, its input the feature's (until resolved)."""
    from ductape_jobs.features.plan import EXECUTED  # loaded with the feature's plan

    return Run(
        id=f"{run.id}:{event.sequence_tag}:{event.tag}",
        job_id=run.id,
        job_tag=run.feature_tag,
        product_tag=run.product_tag,
        env=run.env,
        event_type=EXECUTED.get(event.type, EXECUTED[FeatureEventTypes.FUNCTION]),
        event_tag=event.tag,
        phase=RunPhase.RUNNING,
        scheduled_at=run.created_at,
        input=run.input,
        max_retries=event.spec.retries,
        retry_count=attempt - 1,
        attempt=attempt,
        triggered_by=TriggeredBy.API,
        started_at=clock.now(),
        app=event.spec.app,
        session=run.session,
    )


def _piping_reason(state: _Drive, event: PlannedEvent, exc: Exception) -> str:
    """Why the input did not resolve; a value piped from an event that failed says so."""
    for ref in references(event.spec.input):
        if ref.source == "Sequence" and str(ref) in str(exc):
            piped = state.events.get((str(ref.path[0]), str(ref.path[1])))
            if piped is not None and piped.status is EventStatus.FAILED:
                return f"{ref}: event {piped.sequence_tag}/{piped.event_tag} failed, so it has no output to pipe"
    return str(exc)


def _same_events(plan: FeaturePlan, run: FeatureRun) -> None:
    planned = {(e.sequence_tag, e.tag) for e in plan.events}
    recorded = {(e.sequence_tag, e.event_tag) for e in run.events}
    if planned != recorded:
        raise ValidationError(
            f"{plan.where}.sequence",
            f"the feature's events changed since run {run.id!r} started ({len(recorded)} recorded, "
            f"{len(planned)} now); start a new run",
        )


def _describe(exc: BaseException, mask: Callable[[str], str]) -> str:
    """An expected failure in one line; anything else with the end of its traceback."""
    return describe(exc, trace=0 if isinstance(exc, ExecutionError | ValidationError) else 3, mask=mask)
