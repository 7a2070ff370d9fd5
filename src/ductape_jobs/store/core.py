"""The store's logic, written once over a dialect (``dialect.py``): jobs, schedules, runs and the result cache.

Every method is one transaction of the dialect. Those marked *idempotent* may be retried by a dialect even
when a COMMIT's outcome is unknown, because their WHERE guards make a second application change nothing:

- reads (``get_*``, ``list_*``, ``next_wakeup``, ``count_runs``);
- ``advance_due`` (``next_run_at = expected_next`` and the unique occurrence), ``finish_runs`` (lease owner
  and attempt, attempt rows ``finished_at IS NULL``), ``extend_leases``, ``release_runs`` (lease owner),
  ``rescue_expired`` (lease expired), ``update_schedule`` and ``cache_put`` (they set absolute values).

Not idempotent, so retried only when a failure came before COMMIT: ``create_job``, ``update_job``,
``delete_job``, ``trigger``, ``retry_run`` (a second try would report a conflict) and the claims, ``acquire_runs``
and the calls that claim with other work (the first claim may have committed: the worker then finds its runs with
``leased_runs``).

``add_schedules`` (``schedule()``, ``schedule_many``) is sent whole (``Dialect.transact_together``: on PostgreSQL
one statement, its checks of the jobs raised in the server; ``add_schedule_parts``, a ``schedule_many`` past one
part: one statement a part, each sent while the next part is planned), so a lost connection leaves its commit
unknown more often than a call that reads first would. It is not idempotent either (a second insert of its schedules is
a conflict), but it can tell: its schedules are all written or none is, so before trying again the dialect
looks for the first one (``landed``) and, found, ends the call as written.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ductape_jobs.errors import AlreadyMade, ConflictError, NotFoundError
from ductape_jobs.limits import MAX_OUTPUT_BYTES
from ductape_jobs.models import (
    ACTIVE_PHASES,
    JobEventTypes,
    NewRun,
    Overlap,
    Run,
    RunFilter,
    RunPhase,
    Schedule,
    ScheduleStatus,
)
from ductape_jobs.resources import Rate, ResourceLimit, own_name, parse_rate
from ductape_jobs.store.api import ApiCore
from ductape_jobs.store.base import (
    Capabilities,
    Change,
    DueSchedule,
    JobCheck,
    Outcome,
    Planner,
    Recorded,
    Released,
    Replan,
    Rescued,
    ScheduleChange,
    SchedulePart,
    ScheduleTarget,
    Store,
    Wakeups,
)
from ductape_jobs.store.codec import (
    attempt_from_row,
    dumps,
    from_ms,
    job_from_row,
    job_params,
    loads,
    ms,
    new_run_params,
    outcome_params,
    run_from_row,
    schedule_change_params,
    schedule_from_row,
    schedule_params,
)
from ductape_jobs.store.dialect import NO_CURSOR, Cursor, Dialect, Params, Row, Tx
from ductape_jobs.store.features import FeatureCore
from ductape_jobs.store.limits_core import LimitsCore, store_limits
from ductape_jobs.store.outbox import OutboxCore
from ductape_jobs.store.reports import ReportsCore
from ductape_jobs.store.retention import RetentionCore
from ductape_jobs.store.sql import SchemaState
from ductape_jobs.store.transfer import TransferCore

if TYPE_CHECKING:
    from ductape_jobs.inputs import JobDefinition

_RELEASED = "worker shut down before the run finished"
_SCHEDULES = Cursor("get_schedule", "schedule", "created_at", ("product_tag", "env"))
_RUNS = Cursor("get_run", "run", "scheduled_at", ("product_tag", "env"))
T = TypeVar("T")
_Finished = tuple[
    list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]
]  # outcome_params


class SQLStore(ApiCore, FeatureCore, LimitsCore, OutboxCore, ReportsCore, RetentionCore, TransferCore, Store):
    """A ``Store`` over a SQL dialect; a backend is this class given its dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._d = dialect
        self.capabilities: Capabilities = dialect.capabilities
        self._opened_here()

    # ------------------------------------------------------------------------------------ lifecycle

    def migrate(self, *, create: bool = True) -> tuple[int, ...]:
        self._usable()
        return self._d.migrate(create=create)

    def schema_state(self) -> SchemaState:
        self._usable()
        return self._d.schema_state()

    def close(self) -> None:
        if not self._closed and not self._forked():  # a forked child leaves the connections to the parent
            self._d.close()
        self._closed = True

    def wait_for_change(self, timeout: timedelta) -> Change | None:
        self._usable()
        return self._d.wait_for_change(timeout)

    def stop_waiting(self) -> None:
        if not self._forked():  # the parent's listener
            self._d.stop_waiting()

    def server_time(self) -> datetime | None:
        self._usable()
        return self._d.server_time()

    def promptly(self) -> AbstractContextManager[None]:
        return self._d.promptly()

    # ----------------------------------------------------------------------------------------- jobs

    def create_job(self, job: JobDefinition, now: datetime) -> JobDefinition:
        try:
            self._write(lambda tx: _save_job(tx, "insert_job", job_params(job, now), job, now, had_limit=False))
        except ConflictError as exc:
            where = f" in product {job.product_tag!r}" if job.product_tag else ""
            raise ConflictError(f"tag: a job with tag {job.tag!r} already exists{where}") from exc.__cause__
        return job.model_copy(update={"created_at": now, "updated_at": now})

    def update_job(
        self,
        product_tag: str,
        tag: str,
        changes: dict[str, Any],
        now: datetime,
        check: JobCheck | None = None,
    ) -> JobDefinition:
        key = {"product_tag": product_tag, "tag": tag}

        def op(tx: Tx) -> JobDefinition:
            row = tx.one("lock_job", key)  # PostgreSQL: FOR UPDATE; a schedule() of it holds it FOR SHARE meanwhile
            if row is None:
                raise NotFoundError("job", tag)
            before = job_from_row(row)
            job = before.model_copy(update=changes)
            if check is not None:  # the job as these changes make it from the row as it is, not as read before
                targets: list[ScheduleTarget] = []
                if "event_type" in changes or "event_tag" in changes:
                    targets = [ScheduleTarget(**r) for r in tx.all("live_schedule_targets", key)]
                check(job, targets)
            params = job_params(job, now)
            had_limit = before.concurrency is not None or before.rate is not None
            cadence = "intervals" in changes or "executions" in changes
            limits = job.limit_keys != before.limit_keys
            if limits or cadence:  # PostgreSQL: every schedule it writes or whose runs it writes, first, in id order
                tx.run("lock_changed_job_schedules", {**params, "limits": limits, "cadence": cadence})
            if limits:  # its pending runs wait under its limits as they are now
                tx.run("relimit_job_runs", params)  # (before _save_job: no lock after its limits are stored)
            _save_job(tx, "update_job", params, job, now, had_limit=had_limit, follow_cadence=cadence)
            return job.model_copy(update={"updated_at": now})

        return self._write(op)

    def get_job(self, product_tag: str, tag: str) -> JobDefinition | None:
        row = self._read_one("get_job", {"product_tag": product_tag, "tag": tag})
        return None if row is None else job_from_row(row)

    def find_job(self, product_tag: str, tag: str) -> JobDefinition | None:
        row = self._read_one("find_job", {"product_tag": product_tag, "tag": tag})
        return None if row is None else job_from_row(row)

    def jobs_tagged(self, tag: str) -> list[JobDefinition]:
        return [job_from_row(r) for r in self._read_all("jobs_tagged", {"tag": tag})]

    def list_jobs(self, product_tag: str | None = None) -> list[JobDefinition]:
        return [job_from_row(r) for r in self._read_all("list_jobs", {"product_tag": product_tag})]

    def delete_job(self, product_tag: str, tag: str, now: datetime, reason: str = "cancelled") -> None:
        key = {"product_tag": product_tag, "tag": tag}

        def op(tx: Tx) -> None:
            if tx.one("lock_job", key) is None:
                raise NotFoundError("job", tag)
            live = _count(tx.one("live_schedules_of_job", key))
            if live:
                raise ConflictError(
                    f"{_job_name(product_tag, tag)} has {live} active or paused schedule(s); "
                    "cancel them before deleting it"
                )
            said = {"reason": reason, "now": ms(now)}
            for row in tx.all("cancel_finished_schedules_of_job", {**key, **said}):
                tx.run("cancel_pending_runs", {"schedule_id": row["id"], **said})
            tx.run("delete_job", key)

        self._write(op)

    # ------------------------------------------------------------------------------------ schedules

    def add_schedule_parts(self, parts: Iterable[SchedulePart]) -> None:
        first: list[Params] = []  # the call's first schedule: there if the call committed

        def sends(part: SchedulePart) -> Callable[[Tx], None]:
            checks, rows, keyed, firsts = _schedule_rows(part)
            if rows and not first:
                first.append({"id": rows[0]["id"]})
            # sends only: on PostgreSQL a part is one statement; a failed check: nothing is written
            return lambda tx: tx.add_schedules(checks, rows, keyed, firsts)

        def landed(tx: Tx) -> bool:  # all or nothing: the first schedule is there if the call committed
            return bool(first) and tx.one("get_schedule", first[0]) is not None

        ops: Iterable[Callable[[Tx], None]] = (sends(p) for p in parts if p.schedules or p.runs)  # sent as made
        if isinstance(parts, Sequence):  # made, then sent whole
            ops = list(ops)
            if not ops:
                return
        self._write_together(ops, landed=landed)

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        row = self._read_one("get_schedule", {"id": schedule_id})
        return None if row is None else schedule_from_row(row)

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
        params = {
            "status": None if status is None else ScheduleStatus(status).value,
            "job_tag": job_tag,
            "job_product": job_product,
            "product_tag": product_tag,
            "env": env,
            "limit": limit,
            "offset": offset,
            **NO_CURSOR,
        }
        return self._page("list_schedules", params, after, _SCHEDULES, schedule_from_row)

    def update_schedule(self, schedule_id: str, now: datetime, change: ScheduleChange | Replan) -> Schedule:
        tries = 0

        def op(tx: Tx) -> Schedule:
            nonlocal tries
            tries += 1
            locked = tx.one("lock_schedule", {"id": schedule_id})
            if locked is None:
                raise NotFoundError("schedule", schedule_id)
            current = schedule_from_row(locked)
            try:
                made = change if isinstance(change, ScheduleChange) else change(current)
            except AlreadyMade:
                if tries > 1:  # tried again after a lost connection: the try before may have made it (a pause
                    return current  # refuses the pause it made, a resume the tick that followed it): as made
                raise
            values = schedule_change_params(made)
            if values is not None:
                tx.run("update_schedule", {**values, "id": schedule_id, "now": ms(now)})
            if made.cancel_pending:
                reason = made.reason if isinstance(made.reason, str) and made.reason else "cancelled"
                tx.run("cancel_pending_runs", {"schedule_id": schedule_id, "reason": reason, "now": ms(now)})
            tx.notify()
            row = tx.one("get_schedule", {"id": schedule_id})
            assert row is not None
            return schedule_from_row(row)

        return self._write(op, idempotent=True)

    def advance_due(self, now: datetime, limit: int, planner: Planner) -> list[NewRun]:
        return self._write(lambda tx: _advance(tx, now, limit, planner), idempotent=True)

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
        params = _claim_params(worker_id, want, lease_for, now, due_by=now + ahead)

        def op(tx: Tx) -> tuple[list[NewRun], list[Row]]:
            return _advance(tx, now, limit, planner, until=now + ahead), self._claim(tx, params)

        created, rows = self._write(op, claims=True)
        return created, _claim_order(rows)

    # ----------------------------------------------------------------------------------------- runs

    def acquire_runs(self, worker_id: str, limit: int, lease_for: timedelta, now: datetime) -> list[Run]:
        params = _claim_params(worker_id, limit, lease_for, now)
        return _claim_order(self._write(lambda tx: self._claim(tx, params), claims=True))  # limits_core.py

    def finish_and_acquire(
        self, outcomes: Sequence[Outcome], now: datetime, worker_id: str, limit: int, lease_for: timedelta
    ) -> Recorded:
        params = _claim_params(worker_id, limit, lease_for, now)
        finished = outcome_params(outcomes, now)

        def op(tx: Tx) -> tuple[frozenset[str], list[Row]]:
            with tx.together():  # PostgreSQL: the outcomes' writes and the claim's first picks go together
                cancelled = _finish(tx, finished, now)
                return cancelled, self._claim(tx, params)

        # not ``claims``: a worker records every batch of outcomes here, the bulk of what it writes, so this commit
        # may checkpoint (SQLite: the WAL stays at its bound, as when outcomes had a transaction of their own), unless
        # it is made promptly (on the worker's loop): then the first write refused for a checkpoint owed does it
        cancelled, rows = self._write(op)
        return Recorded(_claim_order(rows), cancelled)

    def extend_leases(self, worker_id: str, run_ids: Sequence[str], until: datetime) -> int:
        if not run_ids:
            return 0
        params = {"ids": list(run_ids), "worker_id": worker_id, "until": ms(until)}
        return self._write(lambda tx: tx.run("extend_leases", params), idempotent=True)

    def finish_runs(self, outcomes: Sequence[Outcome], now: datetime) -> frozenset[str]:
        if not outcomes:
            return frozenset()
        finished = outcome_params(outcomes, now)
        return self._write(lambda tx: _finish(tx, finished, now), idempotent=True)

    def leased_runs(self, worker_id: str) -> list[Run]:
        return _claim_order(self._read_all("leased_runs", {"worker_id": worker_id}))

    def release_runs(
        self, worker_id: str, run_ids: Sequence[str], now: datetime, unstarted: Sequence[str] = ()
    ) -> Released:
        if not run_ids:
            return Released(0, 0)

        def op(tx: Tx) -> Released:
            params = {"ids": list(run_ids), "worker_id": worker_id, "now": ms(now), "unstarted": list(unstarted)}
            tx.run("lock_runs", params)  # PostgreSQL: its runs, then their schedules (a cancel meanwhile ends first)
            tx.run("lock_schedules_of_runs", params)
            cancelled = tx.all("cancel_released_runs", params)  # a cancel's: not queued to run after it
            queued = tx.all("release_runs", params)
            rows = cancelled + queued
            if rows:
                attempt = {"finished_at": ms(now), "outcome": "released", "error": _RELEASED, "started_at": None}
                keys = [({"run_id": r["id"], "attempt": r["attempt"]}, bool(r["unstarted"])) for r in rows]
                tx.many("finish_attempt", [{**attempt, **key} for key, unstarted in keys if not unstarted])
                tx.many("delete_attempt", [key for key, unstarted in keys if unstarted])  # it never began
            if queued:
                tx.notify()
            return Released(len(queued), len(cancelled))

        return self._write(op, idempotent=True)

    def rescue_expired(self, now: datetime, max_rescues: int) -> list[Rescued]:
        now_ms = ms(now)

        def op(tx: Tx) -> list[Rescued]:
            rows = tx.all("expired_leases", {"now": now_ms})
            if not rows:
                return []
            ids = {"ids": [row["id"] for row in rows], "now": now_ms}
            tx.run("lock_schedules_of_runs", ids)  # PostgreSQL: a cancel meanwhile ends first, or waits for this
            cancelled = {r["id"] for r in tx.all("cancel_lost_runs", ids)}  # not queued to run after the cancel
            attempts, back, lost, rescued = [], [], [], []
            for row in rows:
                error = f"lease expired: worker {row['lease_owner']} stopped heartbeating (presumed dead)"
                attempts.append(
                    {
                        "run_id": row["id"],
                        "attempt": row["attempt"],
                        "finished_at": now_ms,
                        "outcome": "lost",
                        "started_at": None,  # as the claim recorded it
                    }
                )
                attempts[-1]["error"] = error
                kind = JobEventTypes(row["event_type"])
                if row["id"] in cancelled:
                    rescued.append(Rescued(row["id"], kind, cancelled=True))
                elif row["rescues"] >= max_rescues:
                    lost.append({"id": row["id"], "now": now_ms, "error": f"{error}; lost {row['rescues'] + 1} times"})
                    rescued.append(Rescued(row["id"], kind, lost[-1]["error"]))
                else:
                    back.append({"id": row["id"], "now": now_ms})
                    rescued.append(Rescued(row["id"], kind))
            tx.many("finish_attempt", attempts)
            if back:
                tx.many("rescue_run", back)
            failed_for_good = tx.each("fail_lost_run", lost)
            _pause_after_failures(tx, failed_for_good, now)  # lost too often is a failure like any other
            _release_held(tx, [r["id"] for r in failed_for_good], now)
            tx.notify()
            return rescued

        return self._write(op, idempotent=True)

    def retry_run(self, run_id: str, now: datetime) -> Run:
        def op(tx: Tx) -> Run:
            row = tx.one("retry_run", {"id": run_id, "now": ms(now)})
            if row is None:
                current = tx.one("get_run", {"id": run_id})
                if current is None:
                    raise NotFoundError("run", run_id)
                raise ConflictError(
                    f"run {run_id!r} is {current['phase']}; only a failed or cancelled run can be retried"
                )
            tx.notify()
            return _with_attempts(tx, row)

        return self._write(op)

    def trigger(self, schedule_id: str, run: NewRun) -> None:
        def op(tx: Tx) -> None:
            locked = tx.one("lock_schedule", {"id": schedule_id})  # a cancel meanwhile: after it, or after this
            if locked is None:
                raise NotFoundError("schedule", schedule_id)
            if locked["status"] == ScheduleStatus.CANCELLED.value:
                raise ConflictError(f"schedule {schedule_id!r} is cancelled; it runs nothing more")
            if not tx.each("insert_run", [new_run_params(run, run.scheduled_at)]):
                raise ConflictError(f"schedule {schedule_id!r} already has a run due at {run.scheduled_at}")
            tx.notify()

        self._write(op)

    def get_run(self, run_id: str) -> Run | None:
        def op(tx: Tx) -> Run | None:
            row = tx.one("get_run", {"id": run_id})
            return None if row is None else _with_attempts(tx, row)

        return self._read(op)

    def list_runs(self, flt: RunFilter) -> list[Run]:
        params = {
            "schedule_id": flt.job_id,
            "job_tag": flt.job_tag,
            "product_tag": flt.product_tag,
            "env": flt.env,
            "phase": None if flt.phase is None else RunPhase(flt.phase).value,
            "since": ms(flt.since),
            "until": ms(flt.until),
            "limit": flt.limit,
            "offset": flt.offset,
            **NO_CURSOR,
        }
        # The most selective filter picks a query in which it is a plain equality, so its index applies
        # (SQLite plans a query once, whatever the parameters; an "x IS NULL OR" filter uses no index).
        name = "list_runs"
        if flt.job_id is not None:
            name = "list_runs_of_schedule"
        elif flt.job_tag is not None:
            name = "list_runs_of_job"
        elif params["phase"] == RunPhase.FAILED.value:
            name = "list_failed_runs"
        elif params["phase"] in {p.value for p in ACTIVE_PHASES}:  # the few not ended: "what runs now" read them all
            name = "list_live_runs"
        return self._page(name, params, flt.after, _RUNS, run_from_row)

    def next_wakeup(self) -> Wakeups:
        row = self._read_one("next_wakeup")
        assert row is not None
        runs = [t for t in (row["run_due"], row["held_due"]) if t is not None]  # held: by a limit (limits_core)
        return Wakeups(from_ms(row["schedule_due"]), from_ms(min(runs, default=None)), from_ms(row["lease_expiry"]))

    def count_runs(self) -> dict[RunPhase, int]:
        return {RunPhase(r["phase"]): r["n"] for r in self._read_all("count_runs")}

    # --------------------------------------------------------------------------------- result cache

    def cache_get(self, key: str, now: datetime) -> tuple[bool, Any]:
        row = self._read_one("cache_get", {"key": key, "now": ms(now)})
        return (False, None) if row is None else (True, loads(row["value"]))

    def cache_put(self, key: str, value: Any, expires_at: datetime, now: datetime) -> None:
        text = dumps(value)
        if len(text) > MAX_OUTPUT_BYTES:  # its run fails for it (``outcome_params``): no later one answers with it
            return

        def op(tx: Tx) -> None:
            tx.run("cache_put", {"key": key, "value": text, "expires_at": ms(expires_at)})
            if zlib.crc32(key.encode()) % 64 == 0:  # now and then, not on every write
                tx.run("cache_purge", {"now": ms(now)})

        self._write(op, idempotent=True)


def _save_job(
    tx: Tx,
    query: str,
    params: dict[str, Any],
    job: JobDefinition,
    now: datetime,
    *,
    had_limit: bool,
    follow_cadence: bool = False,
) -> None:
    """Write a job (and, with ``follow_cadence``, move the schedules that follow its cadence); its own
    ``concurrency``/``rate`` become a stored limit in the same transaction, last: ``store_limits`` may release
    holds, which a claim writes after it locked schedules, so no lock may be taken after them. A limit taken away
    (``had_limit``) is stored as none, so the runs queued under it are no longer held by it."""
    tx.run(query, params)
    if follow_cadence:
        tx.run("follow_job_cadence", params)
    if had_limit or job.concurrency is not None or job.rate is not None:
        own = ResourceLimit(job.product_tag or "", own_name(job.tag), job.concurrency, _rate(job.rate))
        store_limits(tx, [own], now)


def _rate(text: str | None) -> Rate | None:
    return None if text is None else parse_rate(text, "rate")


def _finish(tx: Tx, finished: _Finished, now: datetime) -> frozenset[str]:
    """``finish_runs`` in ``tx``, given ``outcome_params``; the runs ended cancelled instead of retried. Each update
    is guarded by (lease_owner, attempt): an outcome whose lease was lost changes only its attempt row (and not even
    that once the rescue marked the attempt lost)."""
    done, retry, failed, attempts = finished
    ended = [o["run_id"] for o in [*done, *failed]]
    cancelled: frozenset[str] = frozenset()
    with tx.together():  # PostgreSQL: the updates go with the first read (one round trip where none fails)
        tx.many("complete_run", done)
        if retry or failed:
            # a schedule cancelled while its run ran makes no retry of it (cancel() cancelled those made before):
            # PostgreSQL, a cancel meanwhile ends first, or waits for this batch; every schedule the batch changes
            # or reads the state of is locked here at once, in one order (no two batches wait for each other)
            failing = [o["run_id"] for o in [*retry, *failed]]
            # first: a rescue of one holds it, then its schedule
            tx.run("lock_runs", {"ids": failing, "worker_id": None})
            tx.run("lock_deciding_schedules", {"failed": failing, "ended": ended})
        if retry:
            tx.many("schedule_retry", retry)
            cancelled = frozenset(r["id"] for r in tx.each("cancel_retry", retry))
        _pause_after_failures(tx, tx.each("fail_run", failed), now)
        tx.many("finish_attempt", attempts)
        _release_held(tx, ended, now)
    return cancelled


def _advance(tx: Tx, now: datetime, limit: int, planner: Planner, *, until: datetime | None = None) -> list[NewRun]:
    """``advance_due`` in ``tx``: up to ``limit`` schedules due by ``until`` (default ``now``) planned and moved on,
    their runs created (at ``now``)."""
    due_by = ms(now if until is None else until)
    found = tx.all("due_schedules", {"now": ms(now), "due_by": due_by, "limit": limit})
    schedules = [schedule_from_row(r) for r in found]
    if not schedules:
        return []
    watched = [s.id for s in schedules if s.overlap is not Overlap.ALLOW]
    state: dict[str, Row] = {}
    if watched:
        state = {r["schedule_id"]: r for r in tx.all("overlap_state", {"ids": watched})}
    plans = []
    for s in schedules:
        st = state.get(s.id)
        plans.append(planner(DueSchedule(s, st["active"] if st else 0, bool(st and st["held"]))))
    params = [
        {
            "id": p.schedule_id,
            "next_run_at": ms(p.next_run_at),
            "last_due_at": ms(p.last_due_at),
            "created": len(p.runs),
            "skipped": p.skipped,
            "finished": p.finished,
            "expected_next": ms(p.expected_next),
            "now": ms(now),
        }
        for p in plans
    ]
    moved = {r["id"] for r in tx.each("advance_schedule", params)}  # the others moved first
    runs = [r for p in plans if p.schedule_id in moved for r in p.runs]
    if not runs:
        return []
    # a run already due at that time stays, and this one is not returned
    inserted = {r["id"] for r in tx.each("insert_run", [new_run_params(r, now) for r in runs])}
    return [r for r in runs if r.id in inserted]


def _schedule_rows(part: SchedulePart) -> tuple[list[Params], list[Params], list[Params], list[Params]]:
    """What ``Tx.add_schedules`` takes for ``part``: the checks of its jobs, its schedules' rows, their feature keys
    and its first runs' rows."""
    schedules = part.schedules
    jobs = {(s.job_product, s.job_tag) for s in schedules}
    planned = {key: _planning(job) for key, job in part.planned_from.items() if key in jobs}
    checks: list[Params] = [
        {"product_tag": key[0], "tag": key[1], "absent": False, "planned": key in planned, **planned.get(key, {})}
        for key in sorted(jobs)
    ]
    # a schedule that runs a shared job must not have a job of its own product by that tag (made meanwhile)
    checks += [
        {"product_tag": key[0], "tag": key[1], "absent": True, "planned": False}
        for key in sorted({(s.product_tag, s.job_tag) for s in schedules if not s.job_product})
    ]
    rows = {s.id: schedule_params(s) for s in schedules}
    keyed: list[Params] = [{"id": s.id, "feature_key": s.feature_key} for s in schedules if s.feature_key]
    firsts: list[Params] = []
    for run in part.runs:  # a first run takes its schedule's values from the row written, its job's in the insert
        row = rows.get(run.schedule_id)
        if row is None:
            raise NotFoundError("schedule", run.schedule_id)
        firsts.append({**row, **new_run_params(run, run.scheduled_at), "now": row["created_at"]})
    return checks, list(rows.values()), keyed, firsts


def _claim_params(
    worker_id: str, limit: int, lease_for: timedelta, now: datetime, *, due_by: datetime | None = None
) -> Params:
    """What a claim of up to ``limit`` runs for ``worker_id`` binds (``LimitsCore._claim``). ``due_by`` (default
    ``now``): runs under no limit due by then are claimed too, each to start at its due time; runs under a limit
    are claimed only when due (a limit counts a run from its claim)."""
    return {
        "worker_id": worker_id,
        "lease_until": ms(now + lease_for),
        "now": ms(now),
        "due_by": ms(now if due_by is None else due_by),
        "limit": limit,
    }


def _with_attempts(tx: Tx, row: Row) -> Run:
    """The run of ``row`` with its attempts, oldest first."""
    return run_from_row(row, [attempt_from_row(a) for a in tx.all("attempts_of_run", {"run_id": row["id"]})])


def _claim_order(rows: list[Row]) -> list[Run]:
    rows.sort(key=lambda r: (r["available_at"] - r["priority"] * 1000, r["id"]))  # claim order, on every backend
    return [run_from_row(r) for r in rows]


def _pause_after_failures(tx: Tx, failed: list[Row], now: datetime) -> None:
    """Pause the ``pause_on_failure`` schedules of runs that just failed for good (rows: id, schedule_id)."""
    pauses = [
        {"schedule_id": r["schedule_id"], "now": ms(now), "reason": f"paused after run {r['id']} failed"}
        for r in failed
    ]
    if pauses:
        tx.many("pause_on_failure", pauses)


def _release_held(tx: Tx, ended: list[str], now: datetime) -> None:
    """Runs held behind these ended runs (``buffer_one``) become due now; only their schedules are looked at.
    Releasing is idempotent (a held run is released only when no run of its schedule is active), so an
    outcome that changed nothing (its lease was lost) may name its run here too. Nothing is read back, so on
    PostgreSQL both statements go in the round trip of the outcomes' writes (and of the claim's first pick)."""
    if not ended:
        return
    # On PostgreSQL the first waits (FOR SHARE) for a scheduler that is deciding about these schedules.
    tx.run("lock_buffer_one_schedules", {"run_ids": ended})
    tx.run("release_held_runs", {"run_ids": ended, "now": ms(now)})


def _count(row: Row | None) -> int:
    assert row is not None
    return int(next(iter(row.values())))


def _job_name(product_tag: str, tag: str) -> str:
    return f"job {tag!r} of product {product_tag!r}" if product_tag else f"job {tag!r}"


def _planning(job: JobDefinition) -> dict[str, Any]:
    """What of a job definition a schedule is planned from (and its version), as the jobs table holds it: the
    fields the checks of ``Tx.add_schedules`` compare with the stored row."""
    return {
        "event_type": job.event_type.value,
        "event_tag": job.event_tag,
        "executions": job.executions,
        "intervals": job.intervals,
        "start_at": ms(job.start_at),
        "updated_at": ms(job.updated_at),
    }
