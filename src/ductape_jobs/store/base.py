"""The store contract: scheduler operations in domain words. SQLite and PostgreSQL implement it.

Rules every implementation keeps (the store suite in ``tests/store`` checks them against each backend):

- Every method is atomic: it changes everything it says or nothing.
- Each (schedule, due time) becomes at most one run: a unique constraint, not memory, enforces it, so any
  number of schedulers may race ``advance_due`` and ``add_schedules``.
- ``acquire_runs`` hands each due run to one worker at a time, under a lease; an attempt row is written in
  the same transaction, so a run is recorded before it starts.
- ``finish_runs`` only applies an outcome whose worker still holds the run's lease for that attempt; a
  late outcome from a worker whose lease was rescued is recorded on its attempt and changes nothing else.
- Times are aware UTC ``datetime``; the engine passes ``now`` so an injected clock drives the store.
- Driver exceptions leave as ``StoreError`` (or ``ConflictError``/``NotFoundError``) with the cause chained.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final, Literal

from ductape_jobs.models import (
    ApiKey,
    JobDefinition,
    LoginSession,
    MinuteCount,
    NewRun,
    Run,
    RunActivity,
    RunFilter,
    RunPhase,
    Schedule,
    ScheduleStatus,
    Webhook,
    WebhookDelivery,
)
from ductape_jobs.store.records import EventStatus, FeatureRun, FeatureRunStatus


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do, so shared code never branches on a dialect name."""

    listen_notify: bool = False
    skip_locked: bool = False
    multi_process: bool = True
    clock_precision: timedelta = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class DueSchedule:
    """A schedule whose next occurrence is due, with what the overlap policy needs to know."""

    schedule: Schedule
    active_runs: int
    buffered: bool


@dataclass(frozen=True, slots=True)
class Advance:
    """The scheduler's decision for one due schedule (see ``Store.advance_due``)."""

    schedule_id: str
    expected_next: datetime | None
    next_run_at: datetime | None
    finished: bool
    runs: list[NewRun] = field(default_factory=list)
    skipped: int = 0
    last_due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt of a run ended. ``retry_at`` set on a failure means another attempt then."""

    run_id: str
    attempt: int
    worker_id: str
    ok: bool
    finished_at: datetime
    duration_ms: int
    output: Any = None
    error: str | None = None
    retry_at: datetime | None = None
    outcome: str | None = None  # the attempt's outcome word when not "completed"/"failed" (e.g. "timeout")


@dataclass(frozen=True, slots=True)
class Wakeups:
    """When something next becomes due, by kind (``None``: nothing of that kind is pending)."""

    schedule_due: datetime | None = None
    run_due: datetime | None = None
    lease_expiry: datetime | None = None

    def earliest(self) -> datetime | None:
        known = [t for t in (self.schedule_due, self.run_due, self.lease_expiry) if t is not None]
        return min(known) if known else None


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A webhook delivery claimed for sending, with where to send it and the secret to sign it with."""

    delivery: WebhookDelivery
    url: str
    secret: str


Planner = Callable[[DueSchedule], Advance]


class Unchanged(Enum):
    """The type of ``UNCHANGED``: a field of a change record that keeps its stored value."""

    UNCHANGED = "unchanged"

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged.UNCHANGED
Keep = Literal[Unchanged.UNCHANGED]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleChange:
    """What ``Store.update_schedule`` changes: each field left ``UNCHANGED`` keeps its stored value (``None`` is
    a value: it clears the field). ``cancel_pending`` also cancels the schedule's runs that have not started."""

    status: ScheduleStatus | Keep = UNCHANGED
    reason: str | Keep | None = UNCHANGED
    next_run_at: datetime | Keep | None = UNCHANGED
    cron: str | Keep | None = UNCHANGED
    tz: str | Keep | None = UNCHANGED
    every: timedelta | Keep | None = UNCHANGED
    limit: int | Keep | None = UNCHANGED
    end_date: datetime | Keep | None = UNCHANGED
    follows_job: bool | Keep = UNCHANGED
    start_at: datetime | Keep | None = UNCHANGED
    cancel_pending: bool = False

    def changed(self) -> dict[str, Any]:
        """The fields that change (``cancel_pending`` aside), by name."""
        return {
            f.name: value
            for f in fields(self)
            if f.name != "cancel_pending" and (value := getattr(self, f.name)) is not UNCHANGED
        }


class Store(ABC):
    capabilities: Capabilities = Capabilities()

    # -- lifecycle
    @abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the schema (versioned migrations); safe to call on every start."""

    @abstractmethod
    def close(self) -> None: ...

    # -- many processes (optional: the defaults suit a store without a server)
    def wait_for_change(self, timeout: timedelta) -> bool:
        """Block up to ``timeout`` until another process writes something that may be due now (``True``), else
        ``False``. Only stores with ``capabilities.listen_notify`` ever return ``True``; a worker still polls."""
        return False

    def stop_waiting(self) -> None:
        """Release what ``wait_for_change`` holds (its connection); the next call opens it again."""
        return None

    def server_time(self) -> datetime | None:
        """The database server's current time (aware UTC), so nodes whose clocks drift agree on what is due;
        ``None`` when the store has no server clock of its own (SQLite: the local clock is the only one)."""
        return None

    # -- job definitions
    @abstractmethod
    def create_job(self, job: JobDefinition, now: datetime) -> JobDefinition:
        """Store a new job; ``ConflictError`` if the tag exists."""

    @abstractmethod
    def update_job(self, tag: str, changes: dict[str, Any], now: datetime) -> JobDefinition:
        """Apply ``changes`` to job ``tag``; schedules that follow the job's cadence take the new cadence.
        ``NotFoundError`` if there is no such job."""

    @abstractmethod
    def get_job(self, tag: str) -> JobDefinition | None: ...

    @abstractmethod
    def list_jobs(self) -> list[JobDefinition]: ...

    @abstractmethod
    def delete_job(self, tag: str) -> None:
        """Delete job ``tag``; ``ConflictError`` while an active or paused schedule uses it."""

    # -- schedules
    @abstractmethod
    def add_schedules(self, schedules: Sequence[Schedule], runs: Sequence[NewRun]) -> None:
        """Store schedules and their already-due first runs, all or nothing. Each run copies its job's
        event type and tag and its schedule's input. ``NotFoundError`` if a job does not exist."""

    @abstractmethod
    def get_schedule(self, schedule_id: str) -> Schedule | None: ...

    @abstractmethod
    def list_schedules(
        self,
        *,
        status: ScheduleStatus | None = None,
        job_tag: str | None = None,
        limit: int = 100,
        offset: int = 0,
        product_tag: str | None = None,
        env: str | None = None,
    ) -> list[Schedule]:
        """Schedules, newest first; ``product_tag``/``env`` keep one product's (an API key's scope)."""

    @abstractmethod
    def update_schedule(self, schedule_id: str, now: datetime, change: ScheduleChange) -> Schedule:
        """Apply ``change`` to a schedule's state or timing (status, reason, next_run_at, cron, tz, every, limit,
        ...). With ``change.cancel_pending`` its runs that have not started are cancelled too.
        ``NotFoundError`` if there is no such schedule."""

    @abstractmethod
    def advance_due(self, now: datetime, limit: int, planner: Planner) -> list[NewRun]:
        """For up to ``limit`` active schedules whose ``next_run_at <= now`` (oldest first): ask ``planner``
        and apply its ``Advance`` (create the runs, move ``next_run_at``), each schedule atomically and
        only if ``next_run_at`` still equals ``expected_next``. Returns the runs created."""

    # -- runs
    @abstractmethod
    def acquire_runs(self, worker_id: str, limit: int, lease_for: timedelta, now: datetime) -> list[Run]:
        """Claim up to ``limit`` due runs (oldest due first) for ``worker_id`` under a lease; record attempts."""

    @abstractmethod
    def extend_leases(self, worker_id: str, run_ids: Sequence[str], until: datetime) -> int:
        """Heartbeat: push the lease of runs ``worker_id`` still holds to ``until``. Returns how many."""

    @abstractmethod
    def finish_runs(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Record attempts' outcomes (completed, retry scheduled, or failed for good). A terminal run releases a
        ``buffer_one`` run waiting behind it; a final failure pauses a ``pause_on_failure`` schedule."""

    @abstractmethod
    def release_runs(self, worker_id: str, run_ids: Sequence[str], now: datetime) -> int:
        """Give runs back unstarted (graceful shutdown): queued again at once, the attempt marked released."""

    @abstractmethod
    def rescue_expired(self, now: datetime, max_rescues: int) -> list[str]:
        """Runs whose lease expired (their worker died) go back to the queue, the attempt marked ``lost``;
        past ``max_rescues`` they fail. Returns the ids rescued."""

    @abstractmethod
    def retry_run(self, run_id: str, now: datetime) -> Run:
        """Queue a failed or cancelled run for one more attempt now. ``ConflictError`` in any other phase."""

    @abstractmethod
    def trigger(self, schedule_id: str, run: NewRun) -> None:
        """Create an extra run of a schedule now (``triggered_by=manual``)."""

    @abstractmethod
    def get_run(self, run_id: str) -> Run | None:
        """A run with its attempts."""

    @abstractmethod
    def list_runs(self, flt: RunFilter) -> list[Run]:
        """Runs matching ``flt``, newest due time first."""

    @abstractmethod
    def next_wakeup(self) -> Wakeups:
        """When a schedule's next occurrence, a pending run and a lease expiry are next due."""

    @abstractmethod
    def count_runs(self) -> dict[RunPhase, int]: ...

    # -- result cache (a product's cache tags)
    @abstractmethod
    def cache_get(self, key: str, now: datetime) -> tuple[bool, Any]:
        """``(True, value)`` for an entry that has not expired at ``now``, else ``(False, None)``."""

    @abstractmethod
    def cache_put(self, key: str, value: Any, expires_at: datetime, now: datetime) -> None:
        """Store ``value`` (JSON) under ``key`` until ``expires_at``; expired entries are purged now and then."""

    # -- feature runs (``ductape.feature``): a run and each event's result, written as the run goes, so a crash
    # resumes at the event that had not finished. Writes by the run's driver name it (``owner``) and change
    # nothing once another driver took the run over (its lease expired): they return ``False``/``None``.
    @abstractmethod
    def create_feature_run(self, run: FeatureRun) -> None:
        """Store a new feature run (``running``, leased to ``run.lease_owner``) with all its events ``pending``,
        all or nothing. ``ConflictError`` if a run with that id exists."""

    @abstractmethod
    def get_feature_run(self, run_id: str) -> FeatureRun | None:
        """A feature run with its events, in plan order."""

    @abstractmethod
    def list_feature_runs(
        self,
        *,
        feature_tag: str | None = None,
        status: FeatureRunStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[FeatureRun]:
        """Feature runs, newest first, without their events."""

    @abstractmethod
    def claim_feature_run(
        self, run_id: str, owner: str, until: datetime, now: datetime, *, take_over: bool = False
    ) -> FeatureRun | None:
        """Lease a ``running`` feature run to ``owner`` until ``until`` when no one holds it, its lease expired
        (before ``now``), ``owner`` already holds it, or ``take_over``; returns it with its events. A finished
        run is returned as it is (no lease taken). ``None`` while another driver holds it;
        ``NotFoundError`` if there is no such run."""

    @abstractmethod
    def extend_feature_lease(self, run_id: str, owner: str, until: datetime) -> bool:
        """Heartbeat: push the lease ``owner`` holds to ``until``. ``False`` if ``owner`` lost it."""

    @abstractmethod
    def start_feature_event(
        self, run_id: str, owner: str, sequence_tag: str, event_tag: str, now: datetime
    ) -> int | None:
        """Record that an attempt of an unfinished event starts (``running``); returns its attempt number
        (1-based). ``None`` if ``owner`` does not hold the run or the event is finished."""

    @abstractmethod
    def finish_feature_event(
        self,
        run_id: str,
        owner: str,
        sequence_tag: str,
        event_tag: str,
        status: EventStatus,
        now: datetime,
        *,
        output: Any = None,
        job_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Record how an attempt ended: ``completed`` (with ``output``/``job_id``), ``failed`` for good, or
        ``retrying`` (another attempt follows). ``False`` if ``owner`` does not hold the run."""

    @abstractmethod
    def finish_feature_run(
        self, run_id: str, owner: str, status: FeatureRunStatus, now: datetime, error: str | None = None
    ) -> bool:
        """End a feature run ``completed`` or ``failed`` and release its lease; its events that did not finish
        are recorded ``skipped``. ``False`` if ``owner`` does not hold the run."""

    @abstractmethod
    def restart_feature_run(self, run_id: str, now: datetime) -> FeatureRun:
        """A ``failed`` feature run runs again: ``running``, unleased, its failed and skipped events ``pending``
        (completed ones stay). ``ConflictError`` in another status; ``NotFoundError`` if there is no such run."""

    # -- API keys (``ductape apikey``; the HTTP API's auth)
    @abstractmethod
    def add_api_key(self, key: ApiKey) -> None:
        """Store a new key (its hash, never the key). ``ConflictError`` if its prefix is taken."""

    @abstractmethod
    def find_api_key(self, prefix: str) -> ApiKey | None:
        """The key with this visible prefix, revoked or not (the caller checks the hash and ``revoked_at``)."""

    @abstractmethod
    def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, newest first."""

    @abstractmethod
    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        """Mark a key revoked at ``now`` (a second revoke keeps the first time). ``NotFoundError`` if unknown."""

    @abstractmethod
    def touch_api_key(self, key_id: str, now: datetime) -> None:
        """Record that the key was used at ``now``."""

    # -- the dashboard's login sessions (a hash of each token, never the token)
    @abstractmethod
    def add_login_session(self, session: LoginSession) -> None:
        """Store a new login session; sessions expired by its ``created_at`` are deleted meanwhile."""

    @abstractmethod
    def find_login_session(self, token_hash: str) -> tuple[LoginSession, ApiKey] | None:
        """The session with this token hash and its API key, expired or revoked too (the caller checks
        ``expires_at`` and the key's ``revoked_at``); ``None`` if there is none."""

    @abstractmethod
    def delete_login_session(self, token_hash: str) -> None:
        """End one session (a logout); nothing happens if there is none."""

    @abstractmethod
    def delete_login_sessions(self, key_id: str) -> int:
        """End every session of an API key (its revocation); how many there were."""

    # -- webhooks and their deliveries
    @abstractmethod
    def add_webhook(self, webhook: Webhook) -> None: ...

    @abstractmethod
    def list_webhooks(self, *, product_tag: str | None = None) -> list[Webhook]:
        """Webhooks (with their secrets, for signing), oldest first; ``product_tag`` keeps one product's."""

    @abstractmethod
    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook and its deliveries. ``NotFoundError`` if unknown."""

    @abstractmethod
    def enqueue_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None:
        """Store deliveries to send (pending, due at their ``next_attempt_at``), all or nothing. A delivery
        whose webhook was deleted in the meantime is dropped."""

    @abstractmethod
    def due_deliveries(self, now: datetime, limit: int, lease_for: timedelta) -> list[DueDelivery]:
        """Claim up to ``limit`` pending deliveries due by ``now`` (oldest due first): their ``next_attempt_at``
        moves to ``now + lease_for``, so no other sender takes them meanwhile, and a sender that dies leaves
        them due again after the lease."""

    @abstractmethod
    def record_delivery(
        self,
        delivery_id: str,
        now: datetime,
        *,
        ok: bool,
        error: str | None = None,
        retry_at: datetime | None = None,
        status: int | None = None,
        duration_ms: int | None = None,
    ) -> None:
        """Record one attempt: ``ok`` -> delivered at ``now``; a failure with ``retry_at`` -> pending again
        then; a failure without -> failed for good. Each counts in ``attempts``; ``error``, the HTTP ``status``
        answered (``None``: no answer) and ``duration_ms`` are kept as the last attempt's."""

    @abstractmethod
    def list_deliveries(self, webhook_id: str, *, limit: int = 100, offset: int = 0) -> list[WebhookDelivery]:
        """A webhook's deliveries, newest first."""

    # -- what the API's statistics read (``product_tag``/``env`` narrow each to one product)
    @abstractmethod
    def runs_per_minute(
        self, since: datetime, until: datetime, *, product_tag: str | None = None, env: str | None = None
    ) -> list[MinuteCount]:
        """Runs that ended (completed or failed for good) in ``[since, until)``, counted per minute of their
        end; minutes without any are absent."""

    @abstractmethod
    def lateness_sample(
        self, since: datetime, limit: int, *, product_tag: str | None = None, env: str | None = None
    ) -> list[timedelta]:
        """How late runs started at or after ``since`` began (start minus the time they were due), for up to
        ``limit`` of the latest such runs (ended and running ones)."""

    @abstractmethod
    def queue_depth(self, now: datetime, *, product_tag: str | None = None, env: str | None = None) -> int:
        """Runs due by ``now`` that no worker has claimed yet."""

    @abstractmethod
    def next_due_schedules(
        self,
        limit: int,
        *,
        before: datetime | None = None,
        product_tag: str | None = None,
        env: str | None = None,
    ) -> list[Schedule]:
        """Active schedules by their next occurrence, soonest first (only those due before ``before``)."""

    @abstractmethod
    def run_activity(self, now: datetime, *, product_tag: str | None = None, env: str | None = None) -> RunActivity:
        """The newest run, the latest end, and how many runs are running and waiting (cheap: for polling)."""
