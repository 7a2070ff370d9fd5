"""Retention (``RetentionStore``: ``prune`` and ``count_prunable``), on every backend: what is pruned and when,
what never is, batches, racing pruners, and that the API's statistics of the last hour do not change.

Times are fixed; ``now`` is passed.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from storekit import PG_URL, Backend

from ductape_jobs.features import EventResult, FeatureRun, FeatureRunStatus
from ductape_jobs.ids import new_id
from ductape_jobs.inputs import JobDefinition
from ductape_jobs.models import (
    DeliveryStatus,
    NewRun,
    Overlap,
    RunPhase,
    Schedule,
    ScheduleStatus,
    TriggeredBy,
    Webhook,
    WebhookDelivery,
)
from ductape_jobs.retention import PruneCounts, Retention
from ductape_jobs.store import Advance, DueSchedule, Outcome, ScheduleChange, Store

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
DAY = timedelta(days=1)
LEASE = timedelta(seconds=30)
DEFAULT = Retention()
_SEQ = itertools.count()  # distinct due times: one run per (schedule, due time)


# ------------------------------------------------------------------------------------------ builders


def add_schedule(store: Store, **extra: Any) -> Schedule:
    if store.get_job("", "report") is None:
        store.create_job(JobDefinition(name="Report", tag="report", event_type="FUNCTION", event_tag="fn"), T0)
    fields: dict[str, Any] = {
        "id": new_id("job"),
        "job_tag": "report",
        "env": "prd",
        "product_tag": "shop",
        "input": {},
        "retries": 0,
        "status": ScheduleStatus.ACTIVE,
        "start_at": T0,
        "next_run_at": None,
        "run_count": 0,
        "created_at": T0,
    }
    s = Schedule(**{**fields, **extra})
    store.add_schedules([s], [])
    return s


def add_run(store: Store, s: Schedule, at: datetime, *, held: bool = False) -> str:
    phase = RunPhase.SCHEDULED if held else RunPhase.QUEUED
    run = NewRun(new_id("run"), s.id, at, None if held else at, phase, TriggeredBy.SCHEDULE)
    store.trigger(s.id, run)
    return run.id


def run_to_end(store: Store, s: Schedule, ended: datetime, *, ok: bool = True) -> str:
    """A run due about a minute before ``ended`` that completes (or fails for good) at ``ended``."""
    run_id = add_run(store, s, ended - timedelta(minutes=1, milliseconds=next(_SEQ)))
    (run,) = store.acquire_runs("w1", 1, LEASE, ended - SEC)
    assert run.id == run_id
    store.finish_runs([Outcome(run.id, run.attempt, "w1", ok, ended, 5, error=None if ok else "boom")], ended)
    return run_id


def rows(backend: Backend, table: str) -> int:
    """How many rows ``table`` holds, read outside the store."""
    if backend.path is not None:
        db = sqlite3.connect(backend.path)
        try:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            db.close()
    import psycopg

    with psycopg.connect(PG_URL, options=f"-c search_path={backend.schema}") as conn:
        found = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
        assert found is not None
        return int(found[0])


def prune_all(store: Store, now: datetime, retention: Retention = DEFAULT, limit: int = 1000) -> PruneCounts:
    total = PruneCounts()
    while True:
        counts = store.prune(now, retention, limit)
        total += counts
        if max(counts.as_dict().values()) < limit:
            return total


def feature_run(store: Store, status: FeatureRunStatus | None, ended: datetime) -> str:
    """A feature run of two events, created a minute before ``ended`` and ending then (``None``: still running)."""
    run = FeatureRun(
        id=new_id("feat"),
        product_tag="shop",
        env="dev",
        feature_tag="remind",
        input={},
        status=FeatureRunStatus.RUNNING,
        created_at=ended - timedelta(minutes=1),
        updated_at=ended - timedelta(minutes=1),
        lease_owner="d1",
        lease_expires_at=ended + LEASE,
        events=[EventResult("s", "a", "function", 0), EventResult("s", "b", "function", 1)],
    )
    store.create_feature_run(run)
    if status is not None:
        assert store.finish_feature_run(run.id, "d1", status, ended)
    return run.id


# ------------------------------------------------------------------------------------------------ runs


def test_finished_runs_go_after_their_keep_by_completion_time_and_unfinished_ones_never(store: Store) -> None:
    s = add_schedule(store)
    completed = run_to_end(store, s, T0)
    failed = run_to_end(store, s, T0, ok=False)
    retried = run_to_end(store, s, T0, ok=False)
    store.retry_run(retried, T0 + SEC)  # queued again: unfinished, its completion time cleared
    running = add_run(store, s, T0 - DAY)
    (claimed,) = store.acquire_runs("w2", 1, LEASE, T0 - DAY)
    assert claimed.id == running
    queued = add_run(store, s, T0 + 400 * DAY)  # due far ahead
    held_schedule = add_schedule(store, overlap=Overlap.BUFFER_ONE)
    held = add_run(store, held_schedule, T0 - 10 * DAY, held=True)
    cancelled_schedule = add_schedule(store)
    cancelled = add_run(store, cancelled_schedule, T0 + DAY)
    store.update_schedule(cancelled_schedule.id, T0, ScheduleChange(cancel_pending=True))
    assert store.get_run(cancelled) is not None and store.get_run(cancelled).phase is RunPhase.CANCELLED  # type: ignore[union-attr]

    def present() -> set[str]:
        ids = [completed, failed, retried, running, queued, held, cancelled]
        return {i for i in ids if store.get_run(i) is not None}

    everything = {completed, failed, retried, running, queued, held, cancelled}
    assert prune_all(store, T0 + 7 * DAY - SEC) == PruneCounts()  # just younger than 7 days: kept
    assert present() == everything
    gone = prune_all(store, T0 + 7 * DAY + SEC)  # just older: completed and cancelled go, failed stays
    assert (gone.runs, gone.attempts) == (2, 1)  # the cancelled run never started: no attempt
    assert present() == everything - {completed, cancelled}
    assert prune_all(store, T0 + 30 * DAY - SEC) == PruneCounts()
    gone = prune_all(store, T0 + 30 * DAY + SEC)
    assert (gone.runs, gone.attempts) == (1, 1)
    assert present() == {retried, running, queued, held}
    gone = prune_all(store, T0 + 1000 * DAY)  # unfinished runs stay, however old; the statistics' minutes go
    assert gone == PruneCounts(run_minutes=gone.run_minutes) and gone.run_minutes > 0
    assert present() == {retried, running, queued, held}
    assert store.count_runs() == {RunPhase.QUEUED: 2, RunPhase.RUNNING: 1, RunPhase.SCHEDULED: 1}


def test_each_clients_keeps_are_honoured(store: Store) -> None:
    s = add_schedule(store)
    completed = run_to_end(store, s, T0)
    failed = run_to_end(store, s, T0, ok=False)
    keep = Retention(keep_completed=timedelta(hours=1), keep_failed=timedelta(hours=2))
    assert prune_all(store, T0 + timedelta(hours=1) - SEC, keep).runs == 0
    assert prune_all(store, T0 + timedelta(hours=1) + SEC, keep).runs == 1
    assert store.get_run(completed) is None and store.get_run(failed) is not None
    assert prune_all(store, T0 + timedelta(hours=2) - SEC, keep).runs == 0
    assert prune_all(store, T0 + timedelta(hours=2) + SEC, keep).runs == 1
    assert store.get_run(failed) is None


def test_a_run_goes_with_its_attempts(store: Store, backend: Backend) -> None:
    s = add_schedule(store)
    run_id = add_run(store, s, T0)
    (run,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.finish_runs([Outcome(run.id, 1, "w1", False, T0, 5, error="x", retry_at=T0 + SEC)], T0)
    (run,) = store.acquire_runs("w1", 1, LEASE, T0 + SEC)
    store.finish_runs([Outcome(run.id, 2, "w1", True, T0 + SEC, 5)], T0 + SEC)
    other = run_to_end(store, s, T0 + 10 * DAY)  # younger: it and its attempt stay
    assert len(store.get_run(run_id).attempts) == 2  # type: ignore[union-attr]
    assert rows(backend, "attempts") == 3
    gone = prune_all(store, T0 + 8 * DAY)
    assert (gone.runs, gone.attempts) == (1, 2)
    assert rows(backend, "attempts") == 1 and store.get_run(other) is not None


def test_batches_smaller_than_the_rows_delete_them_all_in_several_passes(store: Store, backend: Backend) -> None:
    s = add_schedule(store)
    for i in range(25):
        run_to_end(store, s, T0 + i * SEC)
    now = T0 + 8 * DAY
    passes = [store.prune(now, DEFAULT, 10).runs for _ in range(4)]
    assert passes == [10, 10, 5, 0]
    assert rows(backend, "runs") == 0 and rows(backend, "attempts") == 0


def test_racing_pruners_delete_each_row_once_and_both_finish(backend: Backend) -> None:
    first = backend.open()
    schedules = [add_schedule(first) for _ in range(5)]  # each batch counts pruned runs on several schedules
    for i in range(120):
        run_to_end(first, schedules[i * 7 % 5], T0 + i * SEC)
    second = backend.open()
    totals: list[PruneCounts] = []
    errors: list[BaseException] = []

    def pruner(store: Store) -> None:
        try:
            total = PruneCounts()
            while (counts := store.prune(T0 + 8 * DAY, DEFAULT, 7)).runs:
                total += counts
            totals.append(total)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pruner, args=(st,)) for st in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(totals) == 2  # both finished
    assert sum(t.runs for t in totals) == 120 and sum(t.attempts for t in totals) == 120
    assert rows(backend, "runs") == 0 and rows(backend, "attempts") == 0
    histories = [first.schedule_history(s.id, 10) for s in schedules]
    assert [(h.total, h.successful) for h in histories if h is not None] == [(24, 24)] * 5  # each counted once
    ended = first.runs_per_minute(T0 - DAY, T0 + DAY)  # from the statistics of the pruned runs, each added once
    assert sum(m.completed for m in ended) == 120 and first.run_stats().by_phase[RunPhase.COMPLETED] == 120


def test_a_pruner_skips_rows_another_holds_and_does_not_wait(pg_backend: Backend) -> None:
    """On PostgreSQL the batch is picked FOR UPDATE SKIP LOCKED: rows locked by another pruner (or anything else)
    are left to it, at once."""
    import psycopg

    store = pg_backend.open()
    s = add_schedule(store)
    ids = [run_to_end(store, s, T0 + i * SEC) for i in range(6)]
    with psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema} -c lock_timeout=5s") as other:
        other.execute("SELECT id FROM runs WHERE id = ANY(%s) FOR UPDATE", [ids[:2]])  # held, not committed
        gone = store.prune(T0 + 8 * DAY, DEFAULT, 100)  # would wait (and fail the test's timeout) without SKIP LOCKED
        assert gone.runs == 4
        other.rollback()
    assert {i for i in ids if store.get_run(i) is not None} == set(ids[:2])
    assert store.prune(T0 + 8 * DAY, DEFAULT, 100).runs == 2


# ------------------------------------------------------------------------- features, webhooks, cache


def test_feature_runs_go_with_their_events_by_outcome(store: Store, backend: Backend) -> None:
    completed = feature_run(store, FeatureRunStatus.COMPLETED, T0)
    failed = feature_run(store, FeatureRunStatus.FAILED, T0)
    running = feature_run(store, None, T0 - 100 * DAY)
    gone = prune_all(store, T0 + 7 * DAY + SEC)
    assert (gone.feature_runs, gone.feature_events) == (1, 2)
    assert store.get_feature_run(completed) is None and store.get_feature_run(failed) is not None
    gone = prune_all(store, T0 + 30 * DAY + SEC)
    assert (gone.feature_runs, gone.feature_events) == (1, 2)
    assert store.get_feature_run(failed) is None and store.get_feature_run(running) is not None
    assert rows(backend, "feature_events") == 2  # the running one's


def test_webhook_deliveries_go_once_ended_and_old(store: Store) -> None:
    hook = Webhook(
        id=new_id("wh"), product_tag="shop", url="http://127.0.0.1:9/h", events=["job.completed"], secret="s",
        created_at=T0,
    )  # fmt: skip
    store.add_webhook(hook)
    made = [
        WebhookDelivery(
            id=new_id("dlv"),
            webhook_id=hook.id,
            event="job.completed",
            payload={},
            status=DeliveryStatus.PENDING,
            attempts=0,
            created_at=T0,
            next_attempt_at=T0,
        )
        for _ in range(3)
    ]
    store.enqueue_deliveries(made)
    claimed = [d.delivery.id for d in store.due_deliveries(T0, 10, LEASE)]
    delivered, failed, pending = sorted(claimed)
    store.record_delivery(delivered, T0, ok=True, status=200)
    store.record_delivery(failed, T0, ok=False, error="down")
    store.record_delivery(pending, T0, ok=False, error="down", retry_at=T0 + 1000 * DAY)

    def left() -> set[str]:
        return {d.id for d in store.list_deliveries(hook.id)}

    assert prune_all(store, T0 + 7 * DAY - SEC).webhook_deliveries == 0
    assert prune_all(store, T0 + 7 * DAY + SEC).webhook_deliveries == 1
    assert left() == {failed, pending}
    assert prune_all(store, T0 + 30 * DAY + SEC).webhook_deliveries == 1
    assert prune_all(store, T0 + 999 * DAY).webhook_deliveries == 0
    assert left() == {pending}


def test_expired_cache_entries_go(store: Store, backend: Backend) -> None:
    store.cache_put("old", 1, T0 + SEC, T0)
    store.cache_put("new", 2, T0 + DAY, T0)
    assert prune_all(store, T0 + 2 * SEC).cache_entries == 1
    assert store.cache_get("new", T0 + 2 * SEC) == (True, 2)
    assert rows(backend, "cache_entries") == 1


def test_a_dry_run_counts_what_a_prune_deletes_and_deletes_nothing(store: Store, backend: Backend) -> None:
    s = add_schedule(store)
    for i in range(5):
        run_to_end(store, s, T0 + i * SEC, ok=i % 2 == 0)
    feature_run(store, FeatureRunStatus.COMPLETED, T0)
    store.cache_put("k", 1, T0, T0)
    now = T0 + 8 * DAY
    counted = store.count_prunable(now, DEFAULT)
    assert counted == PruneCounts(runs=3, attempts=3, feature_runs=1, feature_events=2, cache_entries=1)
    assert (rows(backend, "runs"), rows(backend, "attempts"), rows(backend, "feature_events")) == (5, 5, 2)
    assert store.count_prunable(now, DEFAULT) == counted  # nothing changed
    assert prune_all(store, now) == counted


def test_the_statistics_of_the_last_hour_are_unchanged_by_a_prune(store: Store) -> None:
    """The dashboard's overview reads the last hour only; the forecast reads schedules. Pruning history
    older than a day leaves both as they were."""
    now = T0 + 30 * DAY
    s = add_schedule(store, next_run_at=now + timedelta(minutes=5))
    for i in range(10):  # old history, to be pruned
        run_to_end(store, s, T0 + i * SEC, ok=i % 3 != 0)
    for i in range(8):  # the last hour
        run_to_end(store, s, now - timedelta(minutes=50) + i * timedelta(minutes=5), ok=i % 4 != 0)
    add_run(store, s, now - SEC)  # waiting in the queue

    def stats() -> tuple[Any, ...]:
        return (
            store.runs_per_minute(now - timedelta(hours=1), now + timedelta(minutes=1)),
            sorted(store.lateness_sample(now - timedelta(hours=1), 500)),
            store.queue_depth(now),
            [x.id for x in store.next_due_schedules(10)],
        )

    before = stats()
    assert prune_all(store, now, Retention(keep_completed=DAY, keep_failed=DAY)).runs == 10
    assert stats() == before


def test_what_the_scheduler_reads_of_a_schedule_survives_a_prune(store: Store) -> None:
    """The overlap check sees the running and held runs as before, and the counts stay on the schedule."""
    s = add_schedule(store, overlap=Overlap.BUFFER_ONE, every=timedelta(minutes=1), run_count=40)
    for i in range(3):  # old history of this schedule, to be pruned
        run_to_end(store, s, T0 - 40 * DAY + i * SEC)
    running = add_run(store, s, T0 - 31 * DAY)
    (claimed,) = store.acquire_runs("w1", 1, LEASE, T0)
    assert claimed.id == running
    add_run(store, s, T0 - 20 * DAY, held=True)
    now = T0 + SEC
    store.extend_leases("w1", [running], now + LEASE)
    assert prune_all(store, now).runs == 3
    store.update_schedule(s.id, now, ScheduleChange(next_run_at=now))
    seen: list[DueSchedule] = []

    def planner(d: DueSchedule) -> Advance:
        seen.append(d)
        return Advance(s.id, now, now + timedelta(minutes=1), False, [], skipped=1, last_due_at=now)

    store.advance_due(now, 10, planner)
    assert [(d.active_runs, d.buffered, d.schedule.run_count) for d in seen] == [(1, True, 40)]


def test_a_schedules_history_still_counts_its_pruned_runs(store: Store) -> None:
    s = add_schedule(store)
    outcomes = [True, True, True, False, False]  # the oldest, completed, go first
    ids = [run_to_end(store, s, T0 + i * SEC, ok=ok) for i, ok in enumerate(outcomes)]
    before = store.schedule_history(s.id, 50)
    assert before is not None and (before.total, before.successful, before.failed) == (5, 3, 2)
    assert prune_all(store, T0 + 8 * DAY).runs == 3
    after = store.schedule_history(s.id, 50)
    assert after is not None and (after.total, after.successful, after.failed) == (5, 3, 2)
    assert [(e.run_id, e.number) for e in after.executions] == [(ids[4], 5), (ids[3], 4)]
    assert prune_all(store, T0 + 31 * DAY).runs == 2
    gone = store.schedule_history(s.id, 50)
    assert gone is not None and (gone.total, gone.successful, gone.failed, gone.executions) == (5, 3, 2, [])
    add_run(store, s, T0 + 40 * DAY)
    newest = store.schedule_history(s.id, 50)
    assert newest is not None and [e.number for e in newest.executions] == [6]


# ------------------------------------------------------------------------------------------- schedules


def test_an_ended_schedule_goes_with_its_last_run_and_one_with_a_run_left_stays(store: Store) -> None:
    """A queue's one-offs: each schedule ended when its run was made, and was kept for ever (its input with it), a
    row for every schedule(). It goes with its last run; one whose failed run is kept longer stays with it; an
    active or paused schedule never goes."""
    done = add_schedule(store, status=ScheduleStatus.COMPLETED)
    run_to_end(store, done, T0)
    failing = add_schedule(store, status=ScheduleStatus.COMPLETED)
    run_to_end(store, failing, T0, ok=False)
    live = add_schedule(store)
    run_to_end(store, live, T0)
    paused = add_schedule(store, status=ScheduleStatus.PAUSED)
    run_to_end(store, paused, T0)
    now = T0 + 8 * DAY
    assert store.count_prunable(now, DEFAULT).schedules == 1
    assert prune_all(store, now) == PruneCounts(runs=3, attempts=3, schedules=1)
    assert store.get_schedule(done.id) is None
    assert {s.id for s in store.list_schedules()} == {failing.id, live.id, paused.id}
    assert prune_all(store, T0 + 31 * DAY) == PruneCounts(runs=1, attempts=1, schedules=1)
    assert {s.id for s in store.list_schedules()} == {live.id, paused.id}


def test_the_sweep_takes_the_ended_schedules_no_run_took_with_it(store: Store) -> None:
    """One cancelled before its first run has no run to go with, nor one that ended after its runs were pruned: a
    sweep by id, a batch at each prune, takes them once past their keep, and starts again from the first once it
    has looked at the last. One that ended lately stays for its keep."""
    old = add_schedule(store, status=ScheduleStatus.CANCELLED)
    lately = add_schedule(store, status=ScheduleStatus.CANCELLED, created_at=T0 + 7 * DAY)
    active = add_schedule(store)
    now = T0 + 8 * DAY
    assert store.count_prunable(now, DEFAULT).schedules == 1
    assert sum(store.prune(now, DEFAULT, 1).schedules for _ in range(4)) == 1  # three batches of one, then none
    assert store.get_schedule(old.id) is None
    store.update_schedule(active.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED, cancel_pending=True))
    assert sum(store.prune(now, DEFAULT, 1).schedules for _ in range(3)) == 1  # from the first again
    assert [s.id for s in store.list_schedules()] == [lately.id]


def test_a_job_events_schedule_stays_while_its_feature_run_may_run_again(store: Store) -> None:
    """A feature run resumed after a crash, or a failed one retried, looks its JOB event's schedule up by key:
    pruned, it would make the schedule, and run its job, again. Once its feature run completed (or was pruned), it
    goes as any other."""
    running, failed = feature_run(store, None, T0), feature_run(store, FeatureRunStatus.FAILED, T0)
    keyed = {}
    for run_id in (running, failed):
        keyed[run_id] = add_schedule(store, status=ScheduleStatus.COMPLETED, feature_key=f"{run_id}:0:remind")
        run_to_end(store, keyed[run_id], T0)
    now = T0 + 8 * DAY
    assert store.count_prunable(now, DEFAULT).schedules == 0
    assert prune_all(store, now).schedules == 0
    assert all(store.get_schedule(s.id) is not None for s in keyed.values())
    assert store.finish_feature_run(running, "d1", FeatureRunStatus.COMPLETED, now)
    assert prune_all(store, now).schedules == 1
    assert store.get_schedule(keyed[running].id) is None
    # the feature runs past their keep, then (the sweep, after them) the failed one's schedule
    assert prune_all(store, T0 + 31 * DAY) == PruneCounts(schedules=1, feature_runs=2, feature_events=4)
    assert store.list_schedules() == []
