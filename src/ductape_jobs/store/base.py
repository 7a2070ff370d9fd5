"""The store contract: scheduler operations in domain words. SQLite and PostgreSQL implement it.

It comes in narrow parts, so code takes only the part it uses: ``SchedulingStore`` (jobs, schedules, runs,
leases, the result cache; here) and, in ``contracts.py``, ``FeatureStore``, ``AccessStore`` (API keys, login
sessions, webhooks), ``StatsStore`` (the API's statistics) and ``RetentionStore`` (the pruner). ``Store`` is all
five; the records they speak in (``models.py``, ``store/records.py`` and the ones below) live below the store.

Rules every implementation keeps (the store suite in ``tests/store`` checks them against each backend):

- Every method is atomic: it changes everything it says or nothing.
- Each (schedule, due time) becomes at most one run: a unique constraint, not memory, enforces it, so any
  number of schedulers may race ``advance_due`` and ``add_schedules``. A manual run (``trigger`` with
  ``triggered_by=manual``) is a run of its own: the rule neither refuses it nor lets it stand for an occurrence.
- ``acquire_runs`` hands each due run to one worker at a time, under a lease; an attempt row is written in
  the same transaction, so a run is recorded before it starts.
- ``finish_runs`` only applies an outcome whose worker still holds the run's lease for that attempt; a
  late outcome from a worker whose lease was rescued is recorded on its attempt and changes nothing else.
- Times are aware UTC ``datetime``; the engine passes ``now`` so an injected clock drives the store.
- Driver exceptions leave as ``StoreError`` (or ``ConflictError``/``NotFoundError``) with the cause chained.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal

from msgspec import Struct, field

from ductape_jobs.errors import ValidationError, WouldWait
from ductape_jobs.models import JobEventTypes, NewRun, Run, RunFilter, RunPhase, Schedule, ScheduleStatus
from ductape_jobs.store.contracts import (
    AccessStore,
    DueDelivery,
    FeatureStore,
    OutboxStore,
    Relay,
    RetentionStore,
    StatsStore,
)
from ductape_jobs.store.limits import LimitsStore
from ductape_jobs.store.sql import SchemaState

if TYPE_CHECKING:
    from ductape_jobs.inputs import JobDefinition

__all__ = [
    "UNCHANGED",
    "AccessStore",
    "Advance",
    "Capabilities",
    "Change",
    "DueDelivery",
    "DueSchedule",
    "FeatureStore",
    "JobCheck",
    "Keep",
    "OutboxStore",
    "Outcome",
    "Planner",
    "Relay",
    "Released",
    "Rescued",
    "RetentionStore",
    "ScheduleChange",
    "ScheduleTarget",
    "SchedulingStore",
    "StatsStore",
    "Store",
    "Unchanged",
    "Wakeups",
]


class Capabilities(Struct, frozen=True):
    """What a backend can do, so shared code never branches on a dialect name."""

    listen_notify: bool = False
    skip_locked: bool = False
    multi_process: bool = True
    clock_precision: timedelta = timedelta(milliseconds=1)
    #: A call may be made on an event loop (``SchedulingStore.promptly``): its work is this process's CPU, with no
    #: server to wait for, and a transaction that would wait is refused before it writes.
    prompt: bool = False


@contextlib.contextmanager
def never_prompt() -> Iterator[None]:
    """``promptly`` of a store whose every call waits for its server: ``WouldWait`` on entry."""
    raise WouldWait("every call waits for the server")
    yield  # a generator: the context manager's form


class DueSchedule(Struct, frozen=True):
    """A schedule whose next occurrence is due, with what the overlap policy needs to know."""

    schedule: Schedule
    active_runs: int
    buffered: bool


class Advance(Struct, frozen=True):
    """The scheduler's decision for one due schedule (see ``Store.advance_due``)."""

    schedule_id: str
    expected_next: datetime | None
    next_run_at: datetime | None
    finished: bool
    runs: list[NewRun] = field(default_factory=list)
    skipped: int = 0
    last_due_at: datetime | None = None


class SchedulePart(Struct, frozen=True):
    """Schedules, their already-due first runs and the definitions they were planned from, as
    ``SchedulingStore.add_schedules`` takes them: one part of a call of ``add_schedule_parts``."""

    schedules: Sequence[Schedule]
    runs: Sequence[NewRun]
    planned_from: Mapping[tuple[str, str], JobDefinition] = field(default_factory=dict)


class Rescued(Struct, frozen=True):
    """A run whose lease expired (its worker stopped heartbeating), as ``rescue_expired`` left it: queued again
    (``error`` is ``None``), failed for good, lost too often (``error`` says so, as the run does), or, its schedule
    cancelled while it ran, ended ``cancelled`` (``cancelled``; it does not run again)."""

    run_id: str
    event_type: JobEventTypes
    error: str | None = None
    cancelled: bool = False


class ScheduleTarget(Struct, frozen=True):
    """Where live schedules of a job run it: their product, env and app (``None``: none named)."""

    product_tag: str
    env: str
    app: str | None


#: What ``update_job`` checks the changed job with, in its transaction: the job as it would be, and where its live
#: schedules run it (only when its event changes: else none).
JobCheck = Callable[["JobDefinition", Sequence[ScheduleTarget]], None]


class Released(Struct, frozen=True):
    """What ``release_runs`` did with the runs a worker gave back: how many it queued again, and how many it ended
    ``cancelled`` instead, their schedule cancelled while the worker held them."""

    queued: int
    cancelled: int


class Outcome(Struct, frozen=True):
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
    # when its task began, for a run claimed ahead of its due time (recorded as starting then, at the claim): the
    # run's and the attempt's started_at become it (None: they stay as the claim set them)
    started_at: datetime | None = None
    # ``output`` as its stored JSON text, when whoever made the outcome encoded it (a worker does, to know that the
    # output can be stored: ``codec.output_json``); None: the store encodes ``output``
    stored: str | None = None


class Recorded(Struct, frozen=True):
    """What ``finish_and_acquire`` did: the runs it claimed, in claim order, and the runs whose outcome said "retry"
    that it ended ``cancelled`` instead (their schedule was cancelled while they ran: no retry is made)."""

    claimed: list[Run]
    cancelled: frozenset[str] = frozenset()


class Wakeups(Struct, frozen=True):
    """When something next becomes due, by kind (``None``: nothing of that kind is pending)."""

    schedule_due: datetime | None = None
    run_due: datetime | None = None
    lease_expiry: datetime | None = None

    def earliest(self, *, ahead: timedelta = timedelta(0)) -> datetime | None:
        """When a worker should look next; ``ahead``: that long before the next schedule falls due (a worker that
        ticks ahead of it, ``WorkerOptions.ahead``)."""
        tick = None if self.schedule_due is None else self.schedule_due - ahead
        known = [t for t in (tick, self.run_due, self.lease_expiry) if t is not None]
        return min(known) if known else None


class Change(Struct, frozen=True):
    """What another process's write told the listening workers (``Store.wait_for_change``): something may be due at
    ``due`` (``None``: now, or the write did not say when)."""

    due: datetime | None = None


Planner = Callable[[DueSchedule], Advance]


class Unchanged(Enum):
    """The type of ``UNCHANGED``: a field of a change record that keeps its stored value."""

    UNCHANGED = "unchanged"

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged.UNCHANGED
Keep = Literal[Unchanged.UNCHANGED]


class ScheduleChange(Struct, frozen=True, kw_only=True):
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
            name: value
            for name in self.__struct_fields__
            if name != "cancel_pending" and (value := getattr(self, name)) is not UNCHANGED
        }


#: How ``Store.update_schedule`` makes its change from the schedule as it is, under its lock; it may refuse (raise).
Replan = Callable[[Schedule], ScheduleChange]


class SchedulingStore(ABC):
    """Scheduling and claiming: jobs, schedules, runs, their leases, and the result cache."""

    capabilities: Capabilities = Capabilities()

    # -- lifecycle
    @abstractmethod
    def migrate(self, *, create: bool = True) -> tuple[int, ...]:
        """Create or upgrade the schema (versioned migrations); safe to call on every start. Returns the versions this
        call applied, in order (none: the store had them all, or another process applied them while this one
        waited). ``create=False``: a store not made yet (no migrations table: a new SQLite file, a PostgreSQL schema or
        database no process has used) is refused, a ``ValidationError`` naming ``store``, and nothing is made (a
        tool's mistyped URL)."""

    @abstractmethod
    def schema_state(self) -> SchemaState:
        """Where the store's schema stands against this release's migrations (versions applied, this release's,
        those pending): one read that writes nothing and takes no lock, whatever the schema's version (a newer
        release's too: ``SchemaState.newer``)."""

    @abstractmethod
    def close(self) -> None: ...

    # -- many processes (optional: the defaults suit a store without a server)
    def wait_for_change(self, timeout: timedelta) -> Change | None:
        """Block up to ``timeout`` until another process writes something that may be due (what it said: ``Change``),
        else ``None``. Only stores with ``capabilities.listen_notify`` ever return a change; a worker still polls."""
        return None

    def stop_waiting(self) -> None:
        """Release what ``wait_for_change`` holds (its connection); the next call opens it again."""
        return None

    def server_time(self) -> datetime | None:
        """The database server's current time (aware UTC), so nodes whose clocks drift agree on what is due;
        ``None`` when the store has no server clock of its own (SQLite: the local clock is the only one)."""
        return None

    def promptly(self) -> AbstractContextManager[None]:
        """Within it, this thread's calls run at once or raise ``WouldWait``: until a call's first write, a
        transaction that would wait (for a lock another process or thread holds) or checkpoint is refused before
        it changes anything; after it, the call's transactions wait as they usually do, so a caller that makes
        the call again elsewhere repeats nothing committed. Raises ``WouldWait`` on entry where
        ``capabilities.prompt`` is off (every call waits for a server)."""
        return never_prompt()

    # -- job definitions
    @abstractmethod
    def create_job(self, job: JobDefinition, now: datetime) -> JobDefinition:
        """Store a new job; ``ConflictError`` if its product (``''``: shared) already has the tag."""

    @abstractmethod
    def update_job(
        self,
        product_tag: str,
        tag: str,
        changes: dict[str, Any],
        now: datetime,
        check: JobCheck | None = None,
    ) -> JobDefinition:
        """Apply ``changes`` to the job (``product_tag`` ``''``: a shared job); schedules that follow the job's
        cadence take the new cadence. ``NotFoundError`` if there is no such job. ``check`` is given the job as the
        changes make it from the row as it is (locked), and, when they change its event, where its live (active or
        paused) schedules run it; what it raises is raised, nothing written."""

    @abstractmethod
    def get_job(self, product_tag: str, tag: str) -> JobDefinition | None:
        """The job of exactly this product (``''``: the shared job)."""

    @abstractmethod
    def find_job(self, product_tag: str, tag: str) -> JobDefinition | None:
        """The job a schedule of ``product_tag`` runs: the product's own job of that tag, else the shared one."""

    @abstractmethod
    def jobs_tagged(self, tag: str) -> list[JobDefinition]:
        """Every product's job of that tag (the shared one first)."""

    @abstractmethod
    def list_jobs(self, product_tag: str | None = None) -> list[JobDefinition]:
        """Jobs by tag: one product's (``''``: the shared ones), or every job (``None``)."""

    @abstractmethod
    def delete_job(self, product_tag: str, tag: str, now: datetime, reason: str = "cancelled") -> None:
        """Delete the job; ``ConflictError`` while an active or paused schedule uses it. Its finished schedules whose
        runs have not all ended are cancelled with ``reason`` (a running one's retry is not made), and their runs
        still to start (a one-off's queued run, a retry)."""

    # -- schedules
    def add_schedules(
        self,
        schedules: Sequence[Schedule],
        runs: Sequence[NewRun],
        *,
        planned_from: Mapping[tuple[str, str], JobDefinition] | None = None,
    ) -> None:
        """Store schedules and their already-due first runs, all or nothing. Each run copies its job's
        event type and tag and its schedule's input. ``NotFoundError`` if a job does not exist.
        ``planned_from`` ((job product, job tag) -> the definition the schedules were planned from):
        ``StaleJobError``, and nothing written, when a job's stored definition differs from it (the caller reads
        it again)."""
        self.add_schedule_parts([SchedulePart(schedules, runs, planned_from or {})])

    @abstractmethod
    def add_schedule_parts(self, parts: Iterable[SchedulePart]) -> None:
        """``add_schedules`` of every part, in one transaction: all are written or none. A sequence is sent
        whole (PostgreSQL: one part is one statement, one round trip). Another iterable is written as it yields:
        on PostgreSQL each part's statement goes to the server while the caller makes the next part, so that
        the server inserts one while Python plans the other, and the commit follows the last (SQLite: the parts
        are all made before the write lock is taken). An exception raised while making a part rolls back what
        was sent and is raised as it is."""

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
        job_product: str | None = None,
        after: str | None = None,
    ) -> list[Schedule]:
        """Schedules, newest first; ``product_tag``/``env`` keep one product's (an API key's scope);
        ``job_tag`` with ``job_product`` those of one job (``''``: the shared job of that tag); ``after``: a schedule's
        id, those past it in this order (``NotFoundError("schedule")`` when there is none)."""

    @abstractmethod
    def update_schedule(self, schedule_id: str, now: datetime, change: ScheduleChange | Replan) -> Schedule:
        """Apply ``change`` to a schedule's state or timing (status, reason, next_run_at, cron, tz, every, limit,
        ...). With ``change.cancel_pending`` its runs that have not started are cancelled too. ``change`` may be
        a ``Replan``: the change made from the schedule as it is, read in the same transaction, under its lock
        (what it raises, a ``ConflictError`` for a status that refuses the change, is raised and nothing is
        written), so that two calls at once (a ``cancel`` and a ``resume``) take turns, each seeing the other's.
        Tried again after a lost connection (its commit may have been made), a ``Replan`` that refuses with
        ``AlreadyMade`` is taken as made: the schedule is answered as it is (a pause would refuse the pause it made;
        a resume, the state a worker's tick moved the resumed schedule to since); another refusal is raised.
        ``NotFoundError`` if there is no such schedule."""

    @abstractmethod
    def advance_due(self, now: datetime, limit: int, planner: Planner) -> list[NewRun]:
        """For up to ``limit`` active schedules whose ``next_run_at <= now`` (oldest first): ask ``planner``
        and apply its ``Advance`` (create the runs, move ``next_run_at``), each schedule atomically and
        only if ``next_run_at`` still equals ``expected_next``. Returns the runs created."""

    def advance_due_and_acquire(
        self,
        now: datetime,
        limit: int,
        planner: Planner,
        worker_id: str,
        want: int,
        lease_for: timedelta,
        *,
        ahead: timedelta = timedelta(0),
    ) -> tuple[list[NewRun], list[Run]]:
        """``advance_due`` then ``acquire_runs`` of up to ``want`` runs, in one transaction where the backend can: a
        worker that wakes when a delayed run falls due creates it and claims it without a claim of its own (and
        another worker's turn) in between. Atomic as a whole; not retried when a COMMIT's outcome is unknown
        (the schedules' ``expected_next`` makes a second tick harmless; the worker finds the runs it claimed then
        with ``leased_runs``).

        ``ahead``: the schedules due by ``now + ahead`` are advanced (``planner`` plans them at that time), and the
        runs under no limit due by then are claimed, each with its due time as its start (``started_at``, and its
        attempt's), for the worker to start it then: a worker that claims a little ahead starts a delayed run on
        time, not a claim's transaction after it. This default claims only what is due at ``now``."""
        created = self.advance_due(now, limit, planner)
        return created, self.acquire_runs(worker_id, want, lease_for, now)

    # -- runs
    @abstractmethod
    def acquire_runs(self, worker_id: str, limit: int, lease_for: timedelta, now: datetime) -> list[Run]:
        """Claim up to ``limit`` due runs (oldest due first) for ``worker_id`` under a lease; record attempts."""

    @abstractmethod
    def extend_leases(self, worker_id: str, run_ids: Sequence[str], until: datetime) -> int:
        """Heartbeat: push the lease of runs ``worker_id`` still holds to ``until``. Returns how many."""

    @abstractmethod
    def finish_runs(self, outcomes: Sequence[Outcome], now: datetime) -> frozenset[str]:
        """Record attempts' outcomes (completed, retry scheduled, or failed for good). A terminal run releases a
        ``buffer_one`` run waiting behind it; a final failure pauses a ``pause_on_failure`` schedule. A failure
        that would be retried, of a schedule cancelled meanwhile, ends its run ``cancelled``: returns those runs."""

    def finish_and_acquire(
        self, outcomes: Sequence[Outcome], now: datetime, worker_id: str, limit: int, lease_for: timedelta
    ) -> Recorded:
        """``finish_runs`` then ``acquire_runs``, in one transaction where the backend can: a worker whose runs
        ended takes the slots they freed (a limit's too) without a claim of its own in between. Atomic as a
        whole; like ``acquire_runs``, not retried when a COMMIT's outcome is unknown (the worker finds the runs it
        claimed then with ``leased_runs``)."""
        cancelled = self.finish_runs(outcomes, now)
        return Recorded(self.acquire_runs(worker_id, limit, lease_for, now), cancelled)

    @abstractmethod
    def leased_runs(self, worker_id: str) -> list[Run]:
        """The runs whose lease ``worker_id`` holds, in claim order. A worker asks after a claim whose COMMIT's
        outcome it could not learn: the attempts it holds and never started are that claim's, which landed."""

    @abstractmethod
    def release_runs(
        self, worker_id: str, run_ids: Sequence[str], now: datetime, unstarted: Sequence[str] = ()
    ) -> Released:
        """Give runs back unstarted (a graceful shutdown; a lost claim's runs the worker has no room for): queued
        again, due at once (or at their due time, if a claim ahead took them before it), the attempt marked
        released; one claimed ahead whose start is still to come, or one of ``unstarted`` (those of ``run_ids``
        the worker never began, whatever the time), as if it had not been claimed (no attempt). A run whose
        schedule was cancelled meanwhile ends ``cancelled`` instead, its attempt so marked (or none)."""

    @abstractmethod
    def rescue_expired(self, now: datetime, max_rescues: int) -> list[Rescued]:
        """Runs whose lease expired (their worker died) go back to the queue (due at once, or at their due time if
        that is still ahead), the attempt marked ``lost``; past ``max_rescues`` they fail; one whose schedule was
        cancelled while it ran ends ``cancelled``. Returns each run so taken, and which of the three it came to."""

    @abstractmethod
    def retry_run(self, run_id: str, now: datetime) -> Run:
        """Queue a failed or cancelled run for one more attempt now. ``ConflictError`` in any other phase."""

    @abstractmethod
    def trigger(self, schedule_id: str, run: NewRun) -> None:
        """Create an extra run of a schedule now (``triggered_by=manual``). A manual run is always created, even
        at a due time that has a run already; a run of another kind is an occurrence, and ``ConflictError`` when
        its (schedule, due time) has one. A cancelled schedule runs nothing more: ``ConflictError`` (checked
        under the schedule's lock, in the insert's transaction). ``NotFoundError`` if there is no such schedule."""

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
        """Store ``value`` (JSON) under ``key`` until ``expires_at``; expired entries are purged now and then. A value
        whose JSON is longer than ``limits.MAX_OUTPUT_BYTES`` is not stored (its run fails for it)."""


class Store(SchedulingStore, FeatureStore, AccessStore, StatsStore, RetentionStore, OutboxStore, LimitsStore):
    """The whole contract: what a backend implements (``SQLStore`` over a dialect, for SQLite and PostgreSQL)."""

    @abstractmethod
    def copy_to(self, target: Store, now: datetime, *, batch: int = 1_000) -> dict[str, int]:
        """Copy everything this store holds into ``target``, a new, empty store of this release (SQLite or
        PostgreSQL, either way), as one transaction of this one sees it and in one transaction of the target: all
        or nothing (``store/transfer.py``). The rows copied, by table. A ``ValidationError`` when the target holds
        data (``to``) or a worker holds a run here under a lease not lapsed at ``now`` (``store``): stop the
        workers first; or when this store holds nothing to copy (``store``: the wrong store named)."""

    def check_copy(self, now: datetime) -> None:
        """The refusals of ``copy_to`` that concern this store alone (a run under a live lease, nothing to copy), made
        before a target is opened (and made): ``copy_to`` makes them again in the snapshot it copies."""

    def backup(self, to: str | os.PathLike[str]) -> int:
        """Copy the store, as one transaction sees it, to the new file ``to`` while workers go on; its size in
        bytes. A SQLite store's (``SQLiteStore``); a server's database has its own tools (PostgreSQL: ``pg_dump``),
        so here a ``ValidationError``."""
        raise ValidationError(
            "store",
            "only a SQLite store is backed up to a file; back PostgreSQL up with pg_dump (docs/how-to/backup.md)",
        )
