"""The store contract (``store/base.py``), checked with real behaviour against every backend.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``). Times are fixed; ``now`` is passed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace
from storekit import Backend, paged, postgres_backend, sqlite_backend

from ductape_jobs.clock import FakeClock
from ductape_jobs.engine.scheduler import Scheduler
from ductape_jobs.errors import ConflictError, NotFoundError, StaleJobError
from ductape_jobs.ids import new_id
from ductape_jobs.inputs import JobDefinition
from ductape_jobs.models import (
    JobEventTypes,
    Misfire,
    NewRun,
    Overlap,
    Run,
    RunFilter,
    RunPhase,
    Schedule,
    ScheduleStatus,
    TriggeredBy,
)
from ductape_jobs.store import Advance, DueSchedule, Outcome, Released, ScheduleChange, Store, Wakeups
from ductape_jobs.store.codec import ms
from ductape_jobs.store.sql import load_migrations

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
LEASE = timedelta(seconds=30)


# ------------------------------------------------------------------------------------------ builders


def job(tag: str = "report", **extra: Any) -> JobDefinition:
    fields: dict[str, Any] = {"name": tag.title(), "tag": tag, "event_type": "FUNCTION", "event_tag": f"fn-{tag}"}
    return JobDefinition(**{**fields, **extra})


def schedule(job_tag: str = "report", *, next_run_at: datetime | None = T0, **extra: Any) -> Schedule:
    fields: dict[str, Any] = {
        "id": new_id("job"),
        "job_tag": job_tag,
        "env": "prd",
        "product_tag": "shop",
        "input": {"user": "u1"},
        "retries": 0,
        "status": ScheduleStatus.ACTIVE,
        "start_at": T0,
        "next_run_at": next_run_at,
        "run_count": 0,
        "created_at": T0,
    }
    return Schedule(**{**fields, **extra})


def due_run(s: Schedule, at: datetime = T0, *, held: bool = False, phase: RunPhase | None = None) -> NewRun:
    return NewRun(
        id=new_id("run"),
        schedule_id=s.id,
        scheduled_at=at,
        available_at=None if held else at,
        phase=phase or (RunPhase.SCHEDULED if held else RunPhase.QUEUED),
        triggered_by=TriggeredBy.SCHEDULE,
    )


def setup(store: Store, *runs_at: datetime, tag: str = "report", **schedule_extra: Any) -> tuple[Schedule, list[str]]:
    """A job, one schedule and a due run at each of ``runs_at``; the schedule and the run ids."""
    if store.get_job("", tag) is None:
        store.create_job(job(tag), T0)
    s = schedule(tag, **{"next_run_at": None, **schedule_extra})
    runs = [due_run(s, at) for at in runs_at]
    store.add_schedules([s], runs)
    return s, [r.id for r in runs]


def ok(run: Run, worker: str = "w1", at: datetime = T0, output: Any = None) -> Outcome:
    return Outcome(run.id, run.attempt, worker, True, at, 5, output=output)


def fail(run: Run, worker: str = "w1", at: datetime = T0, retry_at: datetime | None = None) -> Outcome:
    return Outcome(run.id, run.attempt, worker, False, at, 5, error="RuntimeError: boom", retry_at=retry_at)


def run_of(store: Store, run_id: str) -> Run:
    found = store.get_run(run_id)
    assert found is not None
    return found


def outcomes(store: Store, run_id: str) -> list[str | None]:
    return [a.outcome for a in run_of(store, run_id).attempts]


def in_threads(*fns: Callable[[], Any]) -> list[Any]:
    """Run ``fns`` at once (released together by a barrier); their results, or re-raise the first error."""
    barrier = threading.Barrier(len(fns))
    results: list[Any] = [None] * len(fns)
    errors: list[BaseException] = []

    def body(i: int, fn: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results


# ---------------------------------------------------------------------------------------------- jobs


def test_jobs_create_get_list_update_delete(store: Store) -> None:
    created = store.create_job(job("b", executions=3, intervals=60_000), T0)
    assert created.created_at == created.updated_at == T0
    store.create_job(job("a", event_type="ACTION"), T0)
    got = store.get_job("", "b")
    assert got is not None
    assert (got.name, got.event_type, got.event_tag, got.executions, got.intervals) == (
        "B",
        JobEventTypes.FUNCTION,
        "fn-b",
        3,
        60_000,
    )
    assert got.created_at == T0 and got.start_at is None
    assert [j.tag for j in store.list_jobs()] == ["a", "b"]

    updated = store.update_job("", "a", {"name": "Renamed", "event_tag": "other"}, T0 + MIN)
    assert (updated.name, updated.event_tag, updated.updated_at) == ("Renamed", "other", T0 + MIN)
    again = store.get_job("", "a")
    assert again is not None and (again.name, again.updated_at, again.created_at) == ("Renamed", T0 + MIN, T0)

    store.delete_job("", "b", T0)
    assert store.get_job("", "b") is None and [j.tag for j in store.list_jobs()] == ["a"]
    assert store.get_job("", "nope") is None


def test_job_errors(store: Store) -> None:
    store.create_job(job("a"), T0)
    with pytest.raises(ConflictError, match="'a'"):
        store.create_job(job("a", name="Other"), T0)
    assert store.get_job("", "a").name == "A"  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        store.update_job("", "nope", {"name": "x"}, T0)
    with pytest.raises(NotFoundError):
        store.delete_job("", "nope", T0)


@pytest.mark.parametrize("status", [ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED])
def test_a_job_with_a_live_schedule_cannot_be_deleted(store: Store, status: ScheduleStatus) -> None:
    s, _ = setup(store, status=status)
    with pytest.raises(ConflictError, match="report"):
        store.delete_job("", "report", T0)
    assert store.get_job("", "report") is not None
    store.update_schedule(s.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED))
    store.delete_job("", "report", T0)
    assert store.get_job("", "report") is None


def test_deleting_a_job_cancels_its_finished_schedules_runs_that_have_not_started(store: Store) -> None:
    """A new-user probe: a one-off's schedule is ``completed`` once its run is made, so deleting its job left the
    queued run (and a run waiting to retry) to run later, for a job that no longer was. They are cancelled with the
    delete's reason, and their schedules too; a run that ended, and another job's, are left as they are."""
    finished = {"status": ScheduleStatus.COMPLETED}
    queued_s, (queued,) = setup(store, T0 + MIN, **finished)
    retry_s, (retrying,) = setup(store, T0, **finished)
    done_s, (done,) = setup(store, T0, **finished)
    running_s, (running,) = setup(store, T0, **finished)
    other_s, (other,) = setup(store, T0 + MIN, tag="other", **finished)
    claimed = {r.id: r for r in store.acquire_runs("w1", 5, timedelta(minutes=1), T0)}
    assert set(claimed) == {retrying, done, running}
    store.finish_runs([fail(claimed[retrying], retry_at=T0 + MIN), ok(claimed[done])], T0)
    assert run_of(store, retrying).phase is RunPhase.RETRY_SCHEDULED

    store.delete_job("", "report", T0 + timedelta(seconds=1), "cancelled: job report deleted")
    assert store.get_job("", "report") is None
    for schedule_id, run_id in ((queued_s.id, queued), (retry_s.id, retrying)):
        s = store.get_schedule(schedule_id)
        assert s is not None and (s.status, s.reason) == (ScheduleStatus.CANCELLED, "cancelled: job report deleted")
        r = run_of(store, run_id)
        assert (r.phase, r.error, r.completed_at) == (
            RunPhase.CANCELLED,
            "cancelled: job report deleted",
            T0 + timedelta(seconds=1),
        )
    assert store.get_schedule(done_s.id).status is ScheduleStatus.COMPLETED  # type: ignore[union-attr]
    assert run_of(store, done).phase is RunPhase.COMPLETED
    # a review: the run running at the delete goes on; when it fails, no retry is made for the job deleted
    assert store.get_schedule(running_s.id).status is ScheduleStatus.CANCELLED  # type: ignore[union-attr]
    assert run_of(store, running).phase is RunPhase.RUNNING
    store.finish_runs([fail(claimed[running], retry_at=T0 + MIN)], T0 + 2 * timedelta(seconds=1))
    assert run_of(store, running).phase is RunPhase.CANCELLED
    assert store.get_schedule(other_s.id).status is ScheduleStatus.COMPLETED  # type: ignore[union-attr]
    assert run_of(store, other).phase is RunPhase.QUEUED
    assert store.acquire_runs("w1", 5, timedelta(minutes=1), T0 + 2 * MIN) != []  # the other job's run only
    assert run_of(store, queued).phase is RunPhase.CANCELLED


def test_update_job_moves_the_schedules_that_follow_its_cadence(store: Store) -> None:
    store.create_job(job(intervals=60_000), T0)
    follows = schedule(every=MIN, follows_job=True, next_run_at=T0 + MIN, last_due_at=T0, run_count=1)
    own = schedule(every=MIN, next_run_at=T0 + MIN, last_due_at=T0, run_count=1)
    store.add_schedules([follows, own], [])
    store.update_job("", "report", {"intervals": 120_000}, T0 + timedelta(seconds=10))
    moved = store.get_schedule(follows.id)
    assert moved is not None and (moved.every, moved.next_run_at) == (2 * MIN, T0 + 2 * MIN)
    kept = store.get_schedule(own.id)
    assert kept is not None and (kept.every, kept.next_run_at) == (MIN, T0 + MIN)


def test_a_schedule_following_its_job_that_has_not_run_keeps_its_first_occurrence(store: Store) -> None:
    """A job no longer repeating (intervals 0) left a schedule that had not run yet active with nothing due: it never
    ran. It runs once at its start; one that ran is completed, paused or not."""
    start = T0 + timedelta(hours=1)
    store.create_job(job(intervals=60_000, executions=5), T0)
    pending = schedule(every=MIN, limit=5, follows_job=True, start_at=start, next_run_at=start)
    paused = schedule(every=MIN, limit=5, follows_job=True, start_at=start, next_run_at=start,
                      status=ScheduleStatus.PAUSED)  # fmt: skip
    ran = schedule(every=MIN, limit=5, follows_job=True, next_run_at=T0 + MIN, last_due_at=T0, run_count=1)
    store.add_schedules([pending, paused, ran], [])
    store.update_job("", "report", {"intervals": 0}, T0 + timedelta(seconds=10))
    got = {s.id: store.get_schedule(s.id) for s in (pending, paused, ran)}
    shown = {k: None if v is None else (v.status, v.every, v.limit, v.next_run_at) for k, v in got.items()}
    assert shown == {
        pending.id: (ScheduleStatus.ACTIVE, None, None, start),
        paused.id: (ScheduleStatus.PAUSED, None, None, start),
        ran.id: (ScheduleStatus.COMPLETED, None, None, None),
    }
    # and back: given intervals again, the one-off repeats from its start, as many times as the job says
    store.update_job("", "report", {"intervals": 120_000, "executions": 3}, T0 + timedelta(seconds=20))
    again = store.get_schedule(pending.id)
    assert again is not None and (again.every, again.limit, again.next_run_at) == (2 * MIN, 3, start)


# ----------------------------------------------------------------------------------------- schedules


def test_add_schedules_stores_them_and_first_runs_copy_the_job_and_schedule(store: Store) -> None:
    store.create_job(job("report", event_type="DATABASE_ACTION", event_tag="db-report"), T0)
    s = schedule(
        input={"user": "u1", "n": [1, 2]},
        retries=2,
        app="billing",
        timeout=timedelta(seconds=5),
        cron="0 9 * * *",
        tz="Europe/London",
        overlap=Overlap.SKIP,
        misfire=Misfire.SKIP,
        pause_on_failure=True,
        next_run_at=T0 + timedelta(days=1),
        last_due_at=T0,
        run_count=1,
        cache="report-cache",
        session_tag="sess",
        session={"user_id": 7},
    )
    first = due_run(s)
    store.add_schedules([s], [first])
    assert store.get_schedule(s.id) == s

    run = run_of(store, first.id)
    assert (run.job_tag, run.event_type, run.event_tag) == ("report", JobEventTypes.DATABASE_ACTION, "db-report")
    assert (run.input, run.env, run.product_tag, run.app) == ({"user": "u1", "n": [1, 2]}, "prd", "shop", "billing")
    assert (run.cache, run.session) == ("report-cache", {"user_id": 7})
    assert (run.max_retries, run.timeout, run.triggered_by) == (2, timedelta(seconds=5), TriggeredBy.SCHEDULE)
    assert (run.phase, run.scheduled_at, run.available_at, run.attempt, run.attempts) == (
        RunPhase.QUEUED,
        T0,
        T0,
        0,
        [],
    )


def test_add_schedules_is_all_or_nothing(store: Store) -> None:
    first, _ = setup(store)
    fresh = schedule()
    clash = replace(schedule(), id=first.id)
    with pytest.raises(ConflictError):
        store.add_schedules([fresh, clash], [due_run(fresh)])
    assert store.get_schedule(fresh.id) is None
    assert store.count_runs() == {}


def test_add_schedules_of_an_unknown_job_is_not_found(store: Store) -> None:
    s = schedule("ghost")
    with pytest.raises(NotFoundError, match="ghost"):
        store.add_schedules([s], [due_run(s)])
    assert store.get_schedule(s.id) is None


def test_get_and_list_schedules(store: Store) -> None:
    store.create_job(job("a"), T0)
    store.create_job(job("b"), T0)
    made = [schedule("a" if i % 2 else "b", created_at=T0 + i * MIN) for i in range(5)]
    store.add_schedules(made, [])
    store.update_schedule(made[0].id, T0, ScheduleChange(status=ScheduleStatus.PAUSED, reason="paused"))
    assert store.get_schedule("nope") is None
    assert [s.id for s in store.list_schedules()] == [s.id for s in reversed(made)]  # newest first
    assert [s.id for s in store.list_schedules(job_tag="a")] == [made[3].id, made[1].id]
    assert [s.id for s in store.list_schedules(status=ScheduleStatus.PAUSED)] == [made[0].id]
    assert [s.id for s in store.list_schedules(status=ScheduleStatus.ACTIVE, job_tag="b")] == [made[4].id, made[2].id]
    assert [s.id for s in store.list_schedules(limit=2, offset=1)] == [made[3].id, made[2].id]


def test_update_schedule_changes_timing_and_cancels_pending_runs(store: Store) -> None:
    s, (running, queued) = setup(store, T0 - MIN, T0)
    later = due_run(s, T0 + MIN)
    store.trigger(s.id, later)
    (claimed,) = store.acquire_runs("w1", 1, LEASE, T0)
    assert claimed.id == running

    changed = store.update_schedule(
        s.id, T0, ScheduleChange(every=2 * MIN, limit=5, next_run_at=T0 + 2 * MIN, tz="Asia/Tokyo", reason="edited")
    )
    assert (changed.every, changed.limit, changed.next_run_at, changed.tz, changed.reason) == (
        2 * MIN,
        5,
        T0 + 2 * MIN,
        "Asia/Tokyo",
        "edited",
    )
    assert store.get_schedule(s.id) == changed

    cancelled = store.update_schedule(
        s.id,
        T0,
        ScheduleChange(
            status=ScheduleStatus.CANCELLED, reason="cancelled: done", next_run_at=None, cancel_pending=True
        ),
    )
    assert (cancelled.status, cancelled.next_run_at) == (ScheduleStatus.CANCELLED, None)
    for run_id in (queued, later.id):
        run = run_of(store, run_id)
        assert (run.phase, run.error, run.completed_at) == (RunPhase.CANCELLED, "cancelled: done", T0)
    assert run_of(store, running).phase is RunPhase.RUNNING  # a run already going finishes
    with pytest.raises(NotFoundError):
        store.update_schedule("nope", T0, ScheduleChange(reason="x"))


# -------------------------------------------------------------------------------------- advance_due


def every_minute(due: DueSchedule, now: datetime = T0) -> Advance:
    """A planner: one run for the due occurrence, the next a minute later."""
    s = due.schedule
    assert s.next_run_at is not None
    return Advance(s.id, s.next_run_at, s.next_run_at + MIN, False, [due_run(s, s.next_run_at)], 0, s.next_run_at)


def test_advance_due_creates_runs_and_moves_next_run_at(store: Store) -> None:
    store.create_job(job(), T0)
    due = schedule(every=MIN, next_run_at=T0 - MIN)
    later = schedule(every=MIN, next_run_at=T0 + MIN)
    paused = schedule(every=MIN, next_run_at=T0 - MIN, status=ScheduleStatus.PAUSED)
    store.add_schedules([due, later, paused], [])
    seen: list[DueSchedule] = []

    def planner(d: DueSchedule) -> Advance:
        seen.append(d)
        return every_minute(d)

    created = store.advance_due(T0, 10, planner)
    assert seen == [DueSchedule(due, 0, False)]
    assert [(r.schedule_id, r.scheduled_at) for r in created] == [(due.id, T0 - MIN)]
    moved = store.get_schedule(due.id)
    assert moved is not None
    assert (moved.next_run_at, moved.last_due_at, moved.run_count) == (T0, T0 - MIN, 1)
    (run,) = store.list_runs(RunFilter(job_id=due.id))
    assert (run.id, run.phase, run.scheduled_at) == (created[0].id, RunPhase.QUEUED, T0 - MIN)
    assert store.advance_due(T0 - timedelta(seconds=1), 10, planner) == []  # nothing due yet


def test_advance_due_takes_the_oldest_first_up_to_limit(store: Store) -> None:
    store.create_job(job(), T0)
    made = [schedule(every=MIN, next_run_at=T0 - i * MIN) for i in range(4)]
    store.add_schedules(made, [])
    created = store.advance_due(T0, 2, every_minute)
    assert [r.schedule_id for r in created] == [made[3].id, made[2].id]


def test_advance_due_finishes_and_skips(store: Store) -> None:
    store.create_job(job(), T0)
    s = schedule(next_run_at=T0)
    store.add_schedules([s], [])
    plan = Advance(s.id, T0, None, True, [], skipped=1, last_due_at=T0)
    assert store.advance_due(T0, 10, lambda d: plan) == []
    done = store.get_schedule(s.id)
    assert done is not None
    assert (done.status, done.next_run_at, done.skipped_count, done.run_count) == (ScheduleStatus.COMPLETED, None, 1, 0)
    assert store.advance_due(T0 + MIN, 10, every_minute) == []


def test_advance_due_refuses_a_stale_expected_next(store: Store) -> None:
    store.create_job(job(), T0)
    s = schedule(every=MIN, next_run_at=T0)
    store.add_schedules([s], [])

    def stale(d: DueSchedule) -> Advance:  # planned from an old copy of the schedule
        return replace(every_minute(d), expected_next=T0 - MIN)

    assert store.advance_due(T0, 10, stale) == []
    kept = store.get_schedule(s.id)
    assert kept is not None and (kept.next_run_at, kept.run_count) == (T0, 0)
    assert store.count_runs() == {}


def test_advance_due_tells_the_planner_about_running_and_held_runs(store: Store) -> None:
    s, _ = setup(store, T0 - 2 * MIN, overlap=Overlap.BUFFER_ONE, every=MIN)
    store.acquire_runs("w1", 1, LEASE, T0)
    store.trigger(s.id, due_run(s, T0 - MIN, held=True))
    store.update_schedule(s.id, T0, ScheduleChange(next_run_at=T0))
    seen: list[DueSchedule] = []

    def planner(d: DueSchedule) -> Advance:
        seen.append(d)
        return Advance(s.id, T0, T0 + MIN, False, [], skipped=1, last_due_at=T0)

    store.advance_due(T0, 10, planner)
    assert [(d.active_runs, d.buffered) for d in seen] == [(1, True)]
    assert store.get_schedule(s.id).skipped_count == 1  # type: ignore[union-attr]


def test_racing_advance_and_trigger_make_one_run_per_occurrence(backend: Backend) -> None:
    a, b = backend.open(), backend.open()
    a.create_job(job(), T0)
    made = [schedule(every=MIN, next_run_at=T0) for _ in range(20)]
    a.add_schedules(made, [])
    won_by_trigger: list[str] = []

    def schedulers() -> None:
        a.advance_due(T0, 100, every_minute)

    def triggers() -> None:
        for s in made:
            try:
                b.trigger(s.id, due_run(s, T0))
                won_by_trigger.append(s.id)
            except ConflictError:
                pass

    in_threads(schedulers, triggers)
    for s in made:
        runs = a.list_runs(RunFilter(job_id=s.id))
        assert [r.scheduled_at for r in runs] == [T0], s.id
    assert a.count_runs() == {RunPhase.QUEUED: 20}


def test_racing_schedulers_create_each_occurrence_once(backend: Backend) -> None:
    stores = [backend.open() for _ in range(4)]
    stores[0].create_job(job(), T0)
    made = [schedule(every=MIN, next_run_at=T0, misfire=Misfire.RUN_ALL) for _ in range(30)]
    stores[0].add_schedules(made, [])
    now = T0 + 10 * MIN  # 11 occurrences each: T0, T0+1m, ..., T0+10m
    schedulers = [Scheduler(s, FakeClock(now), batch=7) for s in stores]
    in_threads(*[lambda sc=sc: sc.tick(now) for sc in schedulers])  # type: ignore[misc]

    assert stores[0].count_runs() == {RunPhase.QUEUED: 30 * 11}
    for s in made:
        runs = stores[0].list_runs(RunFilter(job_id=s.id))
        assert sorted(r.scheduled_at for r in runs) == [T0 + i * MIN for i in range(11)]
        after = stores[0].get_schedule(s.id)
        assert after is not None and (after.run_count, after.next_run_at) == (11, T0 + 11 * MIN)


# ------------------------------------------------------------------------------------------- claims


def test_acquire_runs_claims_due_runs_oldest_first_and_records_attempts(store: Store) -> None:
    s, (r2, r1, future) = setup(store, T0 - MIN, T0 - 2 * MIN, T0 + MIN)
    store.trigger(s.id, due_run(s, T0 - 3 * MIN, held=True))  # held: not claimable
    got = store.acquire_runs("w1", 10, LEASE, T0)
    assert [r.id for r in got] == [r1, r2]
    for run in got:
        assert (run.phase, run.attempt, run.lease_owner, run.lease_expires_at, run.started_at) == (
            RunPhase.RUNNING,
            1,
            "w1",
            T0 + LEASE,
            T0,
        )
        (attempt,) = run_of(store, run.id).attempts
        assert (attempt.attempt, attempt.worker_id, attempt.started_at, attempt.finished_at) == (1, "w1", T0, None)
    assert store.acquire_runs("w2", 10, LEASE, T0) == []
    (late,) = store.acquire_runs("w2", 10, LEASE, T0 + MIN)
    assert late.id == future


def test_acquire_runs_respects_limit(store: Store) -> None:
    _, ids = setup(store, *(T0 - i * MIN for i in range(5)))
    first = store.acquire_runs("w1", 2, LEASE, T0)
    assert [r.id for r in first] == [ids[4], ids[3]]
    assert len(store.acquire_runs("w1", 10, LEASE, T0)) == 3


def test_racing_workers_each_get_a_run_once(backend: Backend) -> None:
    setup_store = backend.open()
    _, ids = setup(setup_store, *(T0 - timedelta(milliseconds=i) for i in range(500)))
    workers = {"w1": backend.open(), "w2": backend.open()}
    got: dict[str, list[str]] = {"w1": [], "w2": []}

    def claim(worker: str) -> None:
        store = workers[worker]
        while True:
            runs = store.acquire_runs(worker, 7, LEASE, T0)
            got[worker].extend(r.id for r in runs)
            if not runs and RunPhase.QUEUED not in store.count_runs():
                return

    in_threads(lambda: claim("w1"), lambda: claim("w2"))
    assert set(got["w1"]) | set(got["w2"]) == set(ids)
    assert not set(got["w1"]) & set(got["w2"])
    assert len(got["w1"]) + len(got["w2"]) == 500
    for worker, claimed in got.items():
        for run_id in claimed[:20]:
            assert [(a.attempt, a.worker_id) for a in run_of(setup_store, run_id).attempts] == [(1, worker)]


# ------------------------------------------------------------------------------------------ outcomes


def test_finish_runs_records_completed_retry_and_failed(store: Store) -> None:
    _, (done, again, lost) = setup(store, T0 - 2 * MIN, T0 - MIN, T0)
    by_id = {r.id: r for r in store.acquire_runs("w1", 10, LEASE, T0)}
    end = T0 + timedelta(seconds=3)
    store.finish_runs(
        [
            ok(by_id[done], at=end, output={"rows": 3}),
            fail(by_id[again], at=end, retry_at=end + MIN),
            fail(by_id[lost], at=end),
        ],
        end,
    )
    completed = run_of(store, done)
    assert (completed.phase, completed.output, completed.completed_at, completed.duration_ms, completed.error) == (
        RunPhase.COMPLETED,
        {"rows": 3},
        end,
        5,
        None,
    )
    assert completed.lease_owner is None and completed.lease_expires_at is None
    retrying = run_of(store, again)
    assert (retrying.phase, retrying.available_at, retrying.retry_count, retrying.error) == (
        RunPhase.RETRY_SCHEDULED,
        end + MIN,
        1,
        "RuntimeError: boom",
    )
    failed = run_of(store, lost)
    assert (failed.phase, failed.completed_at, failed.error) == (RunPhase.FAILED, end, "RuntimeError: boom")
    assert [outcomes(store, i) for i in (done, again, lost)] == [["completed"], ["failed"], ["failed"]]
    assert run_of(store, done).attempts[0].finished_at == end

    assert store.acquire_runs("w2", 10, LEASE, end + timedelta(seconds=59)) == []
    (second,) = store.acquire_runs("w2", 10, LEASE, end + MIN)
    assert (second.id, second.attempt, second.retry_count) == (again, 2, 1)
    store.finish_runs([Outcome(again, 2, "w2", False, end + MIN, 1, error="slow", outcome="timeout")], end + MIN)
    assert outcomes(store, again) == ["failed", "timeout"]
    assert run_of(store, again).phase is RunPhase.FAILED
    assert store.count_runs() == {RunPhase.COMPLETED: 1, RunPhase.FAILED: 2}


def test_recording_outcomes_answers_the_retries_a_cancel_took_away(store: Store) -> None:
    """Two runs of a schedule cancelled while they ran fail with retries left, and a run of another schedule too:
    the cancelled schedule's runs end ``cancelled`` (no retry) and the store answers them, so that their worker
    does not count and log them as retried; the other's retry is made. ``finish_and_acquire`` answers them too."""
    s, (first, second) = setup(store, T0 - MIN, T0)
    _, (other,) = setup(store, T0)
    by_id = {r.id: r for r in store.acquire_runs("w1", 10, LEASE, T0)}
    store.update_schedule(
        s.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED, reason="cancelled", cancel_pending=True)
    )
    retry_at = T0 + MIN
    assert store.finish_runs([fail(by_id[first], retry_at=retry_at), fail(by_id[other], retry_at=retry_at)], T0) == {
        first
    }
    recorded = store.finish_and_acquire([fail(by_id[second], retry_at=retry_at)], T0, "w1", 10, LEASE)
    assert (recorded.claimed, recorded.cancelled) == ([], {second})
    assert [run_of(store, i).phase for i in (first, second, other)] == [
        RunPhase.CANCELLED,
        RunPhase.CANCELLED,
        RunPhase.RETRY_SCHEDULED,
    ]
    assert store.finish_runs([ok(by_id[other])], T0) == frozenset()  # lease lost: nothing changed, nothing said


def test_outcomes_with_large_outputs_and_errors_are_recorded_as_small_ones_are(store: Store) -> None:
    """A batch mixes outputs and errors of a few bytes and of kilobytes (SQLite writes the large ones by a bound
    statement of their own, the rest as one JSON list): each is recorded whole, on its run and its attempt, and a
    late outcome of a lost attempt with a long error is recorded on that attempt only."""
    _, ids = setup(store, T0 - 4 * MIN, T0 - 3 * MIN, T0 - 2 * MIN, T0 - MIN, T0)
    by_id = {r.id: r for r in store.acquire_runs("w1", 4, LEASE, T0)}
    small_out, large_out, small_err, large_err = ids[:4]
    big = {"body": "é" * 3000 + '"quoted"\n' + "x" * 3000}
    long_error = "RuntimeError: " + "trace line\n" * 300  # past LARGE_TEXT, within ERROR_TEXT_CHARS
    store.finish_runs(
        [
            ok(by_id[small_out], output={"rows": 3}),
            ok(by_id[large_out], output=big),
            Outcome(small_err, 1, "w1", False, T0, 5, error="RuntimeError: short"),
            Outcome(large_err, 1, "w1", False, T0, 5, error=long_error),
        ],
        T0,
    )
    assert [run_of(store, i).output for i in (small_out, large_out)] == [{"rows": 3}, big]
    assert [run_of(store, i).error for i in (small_err, large_err)] == ["RuntimeError: short", long_error]
    assert [run_of(store, i).attempts[0].error for i in ids[:4]] == [None, None, "RuntimeError: short", long_error]
    assert [outcomes(store, i) for i in ids[:4]] == [["completed"], ["completed"], ["failed"], ["failed"]]

    (first,) = store.acquire_runs("w1", 1, LEASE, T0)
    later = T0 + LEASE + timedelta(seconds=1)
    assert [r.run_id for r in store.rescue_expired(later, max_rescues=3)] == [ids[4]]
    (second,) = store.acquire_runs("w2", 1, LEASE, later)
    store.finish_runs([Outcome(first.id, 1, "w1", False, later, 5, error=long_error)], later)  # w1 answers late
    run = run_of(store, ids[4])
    assert (run.phase, run.lease_owner, run.error) == (RunPhase.RUNNING, "w2", None)
    assert [(a.outcome, a.error) for a in run.attempts] == [("lost, then failed", long_error), (None, None)]
    store.finish_runs([ok(second, "w2", later, output=big)], later)
    assert (run_of(store, ids[4]).phase, run_of(store, ids[4]).output) == (RunPhase.COMPLETED, big)


def test_of_two_outcomes_for_one_attempt_in_a_batch_the_first_is_recorded(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """On the run and on its attempt alike, whichever kinds they are and in either order (the stores apply a
    batch's completions before its failures; SQLite a JSON list's rows for one row in no set order). The one
    dropped is logged, naming its run and attempt."""
    _, ids = setup(store, T0 - MIN, T0)
    claimed = store.acquire_runs("w1", 2, LEASE, T0)
    by_id = {r.id: r for r in claimed}
    failing, completing = ids
    failed = Outcome(failing, 1, "w1", False, T0, 5, error="first: failed")
    store.finish_runs([failed, ok(by_id[failing], output={"second": True})], T0)
    store.finish_runs([ok(by_id[completing], output={"first": True}), Outcome(completing, 1, "w1", False, T0, 5)], T0)
    first_failed, first_completed = run_of(store, failing), run_of(store, completing)
    assert (first_failed.phase, first_failed.error, first_failed.output) == (RunPhase.FAILED, "first: failed", None)
    assert outcomes(store, failing) == ["failed"] and first_failed.attempts[0].error == "first: failed"
    assert (first_completed.phase, first_completed.output) == (RunPhase.COMPLETED, {"first": True})
    assert outcomes(store, completing) == ["completed"]
    dropped = [r.getMessage() for r in caplog.records if r.name == "ductape_jobs.store" and "dropped" in r.getMessage()]
    assert dropped == [
        f"run {failing}, attempt 1: a second outcome (completed) in one batch is dropped; the first is recorded",
        f"run {completing}, attempt 1: a second outcome (failed) in one batch is dropped; the first is recorded",
    ]


def test_an_output_that_does_not_encode_fails_its_attempt_and_not_the_batch(store: Store) -> None:
    """An output the executor's check let through that still fails to encode (a value that contains itself, an
    integer too long for text) fails its own attempt, named; the other outcomes of the batch are recorded."""
    _, ids = setup(store, T0 - 2 * MIN, T0 - MIN, T0)
    by_id = {r.id: r for r in store.acquire_runs("w1", 3, LEASE, T0)}
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    looped, huge, fine = ids
    store.finish_runs(
        [ok(by_id[looped], output=cyclic), ok(by_id[huge], output={"n": 10**5000}), ok(by_id[fine], output=1)], T0
    )
    assert (run_of(store, fine).phase, run_of(store, fine).output) == (RunPhase.COMPLETED, 1)
    for run_id, cause in [(looped, "ValueError: Circular reference detected"), (huge, "ValueError: Exceeds the limit")]:
        run = run_of(store, run_id)
        assert (run.phase, run.output, outcomes(store, run_id)) == (RunPhase.FAILED, None, ["failed"])
        assert (
            run.error is not None
            and run.error.startswith("ResultError: the output cannot be stored")
            and cause in run.error
        )


def test_a_lone_surrogate_in_an_output_is_kept_as_its_escapes_text(store: Store) -> None:
    """An HTTP answer's JSON may escape a lone surrogate; UTF-8 cannot encode it, and every list of runs holding it
    answered 500. It is kept as the text of its escape (as an error's is); a pair (an emoji) stays as it is, and two
    keys stay two."""
    _, (run_id,) = setup(store, T0)
    (claimed,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.finish_runs([ok(claimed, output={"s": "a\ud800b", "\udce9": ["\U0001f600"], chr(0xDC00): 2})], T0)
    run = run_of(store, run_id)
    assert (run.phase, run.output) == (
        RunPhase.COMPLETED,
        {"s": "a\\ud800b", "\\udce9": ["\U0001f600"], "\\udc00": 2},
    )
    json.dumps(run.output).encode()  # and it encodes


def test_an_outcome_from_a_worker_that_lost_its_lease_changes_only_its_attempt(store: Store) -> None:
    _, (run_id,) = setup(store, T0)
    (first,) = store.acquire_runs("w1", 1, LEASE, T0)
    later = T0 + LEASE + timedelta(seconds=1)
    assert [r.run_id for r in store.rescue_expired(later, max_rescues=3)] == [run_id]
    (second,) = store.acquire_runs("w2", 1, LEASE, later)
    assert second.attempt == 2

    store.finish_runs([ok(first, "w1", later, output="late")], later)  # w1 finally answers
    run = run_of(store, run_id)
    assert (run.phase, run.lease_owner, run.attempt, run.output) == (RunPhase.RUNNING, "w2", 2, None)
    # the late outcome is recorded on its own attempt, and nothing else
    assert [(a.outcome, a.worker_id) for a in run.attempts] == [("lost, then completed", "w1"), (None, "w2")]
    store.finish_runs([ok(first, "w1", later, output="again")], later)  # told twice: recorded once
    assert outcomes(store, run_id)[0] == "lost, then completed"

    store.finish_runs([ok(second, "w2", later, output="fresh")], later)
    run = run_of(store, run_id)
    assert (run.phase, run.output, outcomes(store, run_id)) == (
        RunPhase.COMPLETED,
        "fresh",
        ["lost, then completed", "completed"],
    )


def test_extend_leases_only_for_runs_the_worker_holds(store: Store) -> None:
    _, (a, b, c, d) = setup(store, T0 - 3 * MIN, T0 - 2 * MIN, T0 - MIN, T0)
    store.acquire_runs("w1", 2, LEASE, T0)
    store.acquire_runs("w2", 1, LEASE, T0)
    until = T0 + 5 * MIN
    assert store.extend_leases("w1", [a, b, c, d, "nope"], until) == 2
    assert [run_of(store, i).lease_expires_at for i in (a, b, c)] == [until, until, T0 + LEASE]
    assert run_of(store, d).lease_expires_at is None
    assert store.extend_leases("w1", [], until) == 0


def test_release_runs_gives_them_back_unstarted(store: Store) -> None:
    _, (a, b) = setup(store, T0 - MIN, T0)
    store.acquire_runs("w1", 1, LEASE, T0)
    store.acquire_runs("w2", 1, LEASE, T0)
    at = T0 + timedelta(seconds=5)
    assert store.release_runs("w1", [a, b], at) == Released(queued=1, cancelled=0)
    released = run_of(store, a)
    assert (released.phase, released.available_at, released.lease_owner) == (RunPhase.QUEUED, at, None)
    assert [(x.outcome, x.finished_at) for x in released.attempts] == [("released", at)]
    assert run_of(store, b).phase is RunPhase.RUNNING
    (again,) = store.acquire_runs("w3", 5, LEASE, at)
    assert (again.id, again.attempt) == (a, 2)


def test_a_run_claimed_ahead_and_given_back_before_its_start_was_never_attempted(store: Store) -> None:
    """Released before its start (a claim ahead, then a stop): its attempt ended before it began (a negative
    duration), its start stayed set while it was queued, and its first real run was numbered 2."""
    _, (ahead, now) = setup(store, T0 + MIN, T0)
    _, claimed = store.advance_due_and_acquire(T0, 10, every_minute, "w1", 2, LEASE, ahead=MIN)
    assert {r.id: r.started_at for r in claimed} == {ahead: T0 + MIN, now: T0}
    assert store.release_runs("w1", [ahead, now], T0 + timedelta(seconds=5)) == Released(queued=2, cancelled=0)
    back, started = run_of(store, ahead), run_of(store, now)
    assert (back.phase, back.attempt, back.started_at, back.attempts) == (RunPhase.QUEUED, 0, None, [])
    assert back.available_at == T0 + MIN  # still due at its time
    assert (started.attempt, [a.outcome for a in started.attempts]) == (1, ["released"])  # it had started
    again = {r.id: r.attempt for r in store.acquire_runs("w2", 5, LEASE, T0 + MIN)}
    assert again == {ahead: 1, now: 2}


def test_a_run_the_worker_never_began_goes_back_unattempted_past_its_due_time(store: Store) -> None:
    """A soak probe: a stop waited for its other runs past the due time of a run it had claimed ahead and never
    begun, and the store, judging by the time alone, counted an attempt (its first run said attempt 2). The worker
    names the runs it never began (``unstarted``): given back as if not claimed, whatever the time; a cancelled
    schedule's the same; the others it names not keep their attempt."""
    _, (ahead, now) = setup(store, T0 + MIN, T0)
    s, (gone,) = setup(store, T0 + MIN)
    _, claimed = store.advance_due_and_acquire(T0, 10, every_minute, "w1", 3, LEASE, ahead=MIN)
    assert {r.id for r in claimed} == {ahead, now, gone}
    store.update_schedule(s.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED, cancel_pending=True))
    later = T0 + 2 * MIN  # past the due time of the ones claimed ahead
    assert store.release_runs("w1", [ahead, now, gone], later, unstarted=[ahead, gone]) == Released(1 + 1, 1)
    back, begun, ended = run_of(store, ahead), run_of(store, now), run_of(store, gone)
    assert (back.phase, back.attempt, back.started_at, back.attempts) == (RunPhase.QUEUED, 0, None, [])
    assert (ended.phase, ended.attempt, ended.attempts) == (RunPhase.CANCELLED, 0, [])
    assert (begun.attempt, [a.outcome for a in begun.attempts]) == (1, ["released"])
    assert {r.id: r.attempt for r in store.acquire_runs("w2", 5, LEASE, later)} == {ahead: 1, now: 2}


def test_leased_runs_are_those_a_worker_holds_in_claim_order(store: Store) -> None:
    _, (a, b, c) = setup(store, T0 - 2 * MIN, T0 - MIN, T0)
    assert [r.id for r in store.acquire_runs("w1", 2, LEASE, T0)] == [a, b]
    store.acquire_runs("w2", 1, LEASE, T0)
    held = store.leased_runs("w1")
    assert [(r.id, r.phase, r.lease_owner, r.attempt) for r in held] == [
        (a, RunPhase.RUNNING, "w1", 1),
        (b, RunPhase.RUNNING, "w1", 1),
    ]
    store.finish_runs([Outcome(a, 1, "w1", True, T0, 5)], T0)
    assert [r.id for r in store.leased_runs("w1")] == [b]  # a finished run is held no more
    assert [r.id for r in store.leased_runs("w2")] == [c]
    assert store.leased_runs("w3") == []


def test_rescue_expired_requeues_then_fails_a_run_lost_too_often(store: Store) -> None:
    _, (run_id, alive) = setup(store, T0 - MIN, T0)
    store.acquire_runs("w1", 1, LEASE, T0)
    store.acquire_runs("w2", 1, LEASE, T0 + MIN)
    assert [r.run_id for r in store.rescue_expired(T0 + LEASE, max_rescues=1)] == []  # expires only after its time
    at = T0 + LEASE + timedelta(seconds=1)
    assert [r.run_id for r in store.rescue_expired(at, max_rescues=1)] == [run_id]
    rescued = run_of(store, run_id)
    assert (rescued.phase, rescued.available_at, rescued.lease_owner) == (RunPhase.QUEUED, at, None)
    (attempt,) = rescued.attempts
    assert (attempt.outcome, attempt.finished_at) == ("lost", at)
    assert attempt.error is not None and "w1" in attempt.error
    assert run_of(store, alive).phase is RunPhase.RUNNING

    store.acquire_runs("w3", 1, LEASE, at)
    gone = T0 + 2 * MIN  # both leases have expired by now
    told = {r.run_id: r for r in store.rescue_expired(gone, max_rescues=1)}  # which came to what: metrics, logs
    assert sorted(told) == sorted([run_id, alive])
    failed = run_of(store, run_id)
    assert failed.phase is RunPhase.FAILED and failed.error is not None and "lost 2 times" in failed.error
    assert (told[run_id].error, told[run_id].event_type) == (failed.error, JobEventTypes.FUNCTION)
    assert told[alive].error is None
    assert outcomes(store, run_id) == ["lost", "lost"]
    assert run_of(store, alive).phase is RunPhase.QUEUED


def test_a_run_whose_schedule_was_cancelled_while_it_ran_is_not_retried(store: Store) -> None:
    """cancel() cancels the runs that have not started, retries made before it included; a run running then
    finishes, but its failed attempt made a retry that ran after the cancel (a new start). It is cancelled too,
    in the outcome's transaction; a schedule not cancelled keeps its retry, whatever the batch holds."""
    s, (run_id,) = setup(store, T0, retries=1)
    _, (other_id,) = setup(store, T0, retries=1)
    claimed = {r.id: r for r in store.acquire_runs("w1", 2, LEASE, T0)}
    store.update_schedule(
        s.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED, reason="cancelled: gone", cancel_pending=True)
    )
    assert run_of(store, run_id).phase is RunPhase.RUNNING  # running ones finish
    store.finish_runs([fail(claimed[run_id], retry_at=T0 + MIN), fail(claimed[other_id], retry_at=T0 + MIN)], T0)
    cancelled = run_of(store, run_id)
    assert (cancelled.phase, cancelled.error, cancelled.available_at) == (RunPhase.CANCELLED, "cancelled: gone", None)
    assert cancelled.attempts[-1].error == "RuntimeError: boom"  # the attempt says why it failed
    assert run_of(store, other_id).phase is RunPhase.RETRY_SCHEDULED
    assert [r.id for r in store.acquire_runs("w1", 2, LEASE, T0 + MIN)] == [other_id]


def test_a_run_of_a_cancelled_schedule_a_rescue_takes_back_ends_cancelled(store: Store) -> None:
    """A run running when its schedule was cancelled, whose worker then died: the rescue ends it ``cancelled`` (its
    attempt ``lost``, the schedule's reason its error) instead of queueing it to run after the cancel; a run of a
    schedule not cancelled is rescued as before, whatever the batch holds."""
    s, (run_id,) = setup(store, T0)
    _, (other_id,) = setup(store, T0)
    store.acquire_runs("w1", 2, LEASE, T0)
    store.update_schedule(
        s.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED, reason="cancelled: gone", cancel_pending=True)
    )
    at = T0 + LEASE + timedelta(seconds=1)
    told = {r.run_id: r for r in store.rescue_expired(at, max_rescues=3)}
    assert sorted(told) == sorted([run_id, other_id])
    assert (told[run_id].cancelled, told[run_id].error) == (True, None)
    assert (told[other_id].cancelled, told[other_id].error) == (False, None)
    ended = run_of(store, run_id)
    assert (ended.phase, ended.error, ended.available_at, ended.completed_at) == (
        RunPhase.CANCELLED,
        "cancelled: gone",
        None,
        at,
    )
    assert (ended.lease_owner, ended.duration_ms, outcomes(store, run_id)) == (None, None, ["lost"])
    assert run_of(store, other_id).phase is RunPhase.QUEUED
    assert [r.id for r in store.acquire_runs("w2", 5, LEASE, at)] == [other_id]


def test_a_run_of_a_cancelled_schedule_its_worker_gives_back_ends_cancelled(store: Store) -> None:
    """Given back at a stop (begun, or claimed ahead and not yet begun) after its schedule was cancelled: ended
    ``cancelled``, not queued to run after the cancel. The begun one's attempt says ``released``; the one never
    begun has none, as a run cancelled before its start."""
    s, (begun, ahead) = setup(store, T0, T0 + MIN)
    _, (other_id,) = setup(store, T0)
    _, claimed = store.advance_due_and_acquire(T0, 10, every_minute, "w1", 3, LEASE, ahead=MIN)
    assert {r.id for r in claimed} == {begun, ahead, other_id}
    store.update_schedule(s.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED, cancel_pending=True))
    at = T0 + timedelta(seconds=5)
    assert store.release_runs("w1", [begun, ahead, other_id], at) == Released(queued=1, cancelled=2)
    for run_id in (begun, ahead):
        ended = run_of(store, run_id)
        assert (ended.phase, ended.error, ended.available_at, ended.lease_owner) == (
            RunPhase.CANCELLED,
            "cancelled",
            None,
            None,
        )
    assert (run_of(store, begun).attempt, outcomes(store, begun)) == (1, ["released"])
    assert (run_of(store, ahead).attempt, run_of(store, ahead).started_at, outcomes(store, ahead)) == (0, None, [])
    assert run_of(store, other_id).phase is RunPhase.QUEUED
    assert [r.id for r in store.acquire_runs("w2", 5, LEASE, T0 + MIN)] == [other_id]


def test_retry_run_queues_a_failed_run_once_more(store: Store) -> None:
    s, (run_id, other) = setup(store, T0 - MIN, T0, retries=1)
    claimed = {r.id: r for r in store.acquire_runs("w1", 2, LEASE, T0)}
    store.finish_runs([fail(claimed[run_id], retry_at=T0 + MIN), ok(claimed[other])], T0)
    (again,) = store.acquire_runs("w1", 2, LEASE, T0 + MIN)
    store.finish_runs([fail(again, at=T0 + MIN)], T0 + MIN)
    assert run_of(store, run_id).phase is RunPhase.FAILED

    failed = run_of(store, run_id)
    retried = store.retry_run(run_id, T0 + 2 * MIN)
    assert (retried.phase, retried.available_at, retried.max_retries, retried.completed_at) == (
        RunPhase.QUEUED,
        T0 + 2 * MIN,
        retried.retry_count,
        None,
    )
    # a retry that counts (the stats counted the run as completed first try), and none automatic after it; not the
    # failed attempt's times, which the run.queued event already leaves out
    assert (failed.retry_count, retried.retry_count, retried.started_at, retried.duration_ms) == (1, 2, None, None)
    assert retried.error == failed.error
    assert retried.attempts == run_of(store, run_id).attempts and len(retried.attempts) == 2  # its history kept
    assert run_of(store, run_id).phase is RunPhase.QUEUED
    (third,) = store.acquire_runs("w1", 2, LEASE, T0 + 2 * MIN)
    assert third.attempt == 3
    with pytest.raises(ConflictError, match="completed"):
        store.retry_run(other, T0)
    with pytest.raises(ConflictError, match="running"):
        store.retry_run(run_id, T0)
    with pytest.raises(NotFoundError):
        store.retry_run("nope", T0)

    extra = due_run(s, T0 + 9 * MIN)
    store.trigger(s.id, extra)
    store.update_schedule(s.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED, cancel_pending=True))
    assert store.retry_run(extra.id, T0 + 3 * MIN).phase is RunPhase.QUEUED  # cancelled runs can be retried too
    with pytest.raises(ConflictError, match="is cancelled; it runs nothing more"):
        store.trigger(s.id, due_run(s, T0 + 10 * MIN))  # but a cancelled schedule makes no new run


def test_trigger_adds_a_manual_run_of_its_own_but_an_occurrence_only_once(store: Store) -> None:
    s, _ = setup(store)
    manual = NewRun(new_id("run"), s.id, T0 + MIN, T0 + MIN, RunPhase.QUEUED, TriggeredBy.MANUAL)
    store.trigger(s.id, manual)
    run = run_of(store, manual.id)
    assert (run.triggered_by, run.input, run.event_tag) == (TriggeredBy.MANUAL, {"user": "u1"}, "fn-report")
    again = replace(manual, id=new_id("run"))
    store.trigger(s.id, again)  # a second manual run in the same millisecond is a run of its own
    occurrence = due_run(s, T0 + MIN)
    store.trigger(s.id, occurrence)  # the occurrence of that time is not taken by the manual runs
    with pytest.raises(ConflictError):
        store.trigger(s.id, due_run(s, T0 + MIN))  # ... and it stays one
    runs = store.list_runs(RunFilter(job_id=s.id))
    assert sorted(r.id for r in runs) == sorted([manual.id, again.id, occurrence.id])
    with pytest.raises(NotFoundError, match="ghost"):
        store.trigger("ghost", replace(manual, id=new_id("run"), schedule_id="ghost"))


# ---------------------------------------------------------------------------------- overlap, pausing


@pytest.mark.parametrize("ending", ["completed", "failed", "retried"])
def test_a_held_buffer_one_run_is_released_when_the_previous_run_ends(store: Store, ending: str) -> None:
    s, (first,) = setup(store, T0, overlap=Overlap.BUFFER_ONE)
    held = due_run(s, T0 + MIN, held=True)
    store.trigger(s.id, held)
    (running,) = store.acquire_runs("w1", 5, LEASE, T0 + 2 * MIN)  # the held run is not claimable
    assert running.id == first
    end = T0 + 3 * MIN
    outcome = {"completed": ok(running), "failed": fail(running), "retried": fail(running, retry_at=end + MIN)}
    store.finish_runs([outcome[ending]], end)
    released = run_of(store, held.id)
    if ending == "retried":  # the previous run is still going (it will be retried): keep holding
        assert (released.phase, released.available_at) == (RunPhase.SCHEDULED, None)
    else:
        assert (released.phase, released.available_at) == (RunPhase.QUEUED, end)
        (next_run,) = store.acquire_runs("w1", 5, LEASE, end)
        assert next_run.id == held.id


def test_a_held_run_is_released_when_the_previous_run_is_lost_for_good(store: Store) -> None:
    s, (first,) = setup(store, T0, overlap=Overlap.BUFFER_ONE)
    held = due_run(s, T0 + MIN, held=True)
    store.trigger(s.id, held)
    store.acquire_runs("w1", 5, LEASE, T0)
    at = T0 + 2 * LEASE
    assert [r.run_id for r in store.rescue_expired(at, max_rescues=0)] == [first]
    assert run_of(store, first).phase is RunPhase.FAILED
    assert (run_of(store, held.id).phase, run_of(store, held.id).available_at) == (RunPhase.QUEUED, at)


@pytest.mark.parametrize("ending", ["completed", "failed", "lost"])
def test_an_ending_run_releases_only_the_runs_held_behind_it(store: Store, ending: str) -> None:
    """Rule that once drifted between backends: only the ended runs' own schedules are looked at."""
    s, _ = setup(store, T0, overlap=Overlap.BUFFER_ONE)
    held = due_run(s, T0 + MIN, held=True)
    store.trigger(s.id, held)
    other, _ = setup(store, overlap=Overlap.BUFFER_ONE)
    stray = due_run(other, T0 + MIN, held=True)  # held with nothing ahead of it: not this ending's business
    store.trigger(other.id, stray)
    (running,) = store.acquire_runs("w1", 5, LEASE, T0 + 2 * MIN)
    end = T0 + 3 * MIN
    if ending == "lost":
        end = T0 + 2 * MIN + 2 * LEASE
        assert [r.run_id for r in store.rescue_expired(end, max_rescues=0)] == [running.id]
    else:
        store.finish_runs([ok(running) if ending == "completed" else fail(running)], end)
    assert (run_of(store, held.id).phase, run_of(store, held.id).available_at) == (RunPhase.QUEUED, end)
    assert (run_of(store, stray.id).phase, run_of(store, stray.id).available_at) == (RunPhase.SCHEDULED, None)


def test_acquired_runs_come_back_oldest_due_first_then_by_id(store: Store) -> None:
    """Rule that once drifted between backends: the order of ``acquire_runs``'s result."""
    times = [T0 - 3 * MIN, T0 - MIN, T0 - 2 * MIN, T0 - MIN, T0 - 3 * MIN, T0]
    made = [setup(store, at)[1][0] for at in times]
    claimed = store.acquire_runs("w1", 10, LEASE, T0)
    expected = sorted(zip(times, made, strict=True))
    assert [(r.available_at, r.id) for r in claimed] == expected


def test_a_final_failure_pauses_a_pause_on_failure_schedule(store: Store) -> None:
    s, (a, b) = setup(store, T0 - MIN, T0, pause_on_failure=True, every=MIN, next_run_at=T0 + MIN)
    plain, (c,) = setup(store, T0, every=MIN, next_run_at=T0 + MIN)
    runs = {r.id: r for r in store.acquire_runs("w1", 5, LEASE, T0)}
    store.finish_runs([fail(runs[a], retry_at=T0 + MIN), fail(runs[c])], T0)
    assert store.get_schedule(s.id).status is ScheduleStatus.ACTIVE  # type: ignore[union-attr]
    assert store.get_schedule(plain.id).status is ScheduleStatus.ACTIVE  # type: ignore[union-attr]
    store.finish_runs([fail(runs[b])], T0)
    paused = store.get_schedule(s.id)
    assert paused is not None and paused.status is ScheduleStatus.PAUSED
    assert paused.reason is not None and b in paused.reason
    assert store.advance_due(T0 + 2 * MIN, 10, every_minute) != []  # only the plain one is still due
    assert store.list_runs(RunFilter(job_id=s.id, phase=RunPhase.QUEUED)) == []


def test_a_run_lost_too_often_pauses_a_pause_on_failure_schedule(store: Store) -> None:
    s, (a,) = setup(store, T0, pause_on_failure=True, every=MIN, next_run_at=T0 + MIN)
    plain, (c,) = setup(store, T0, every=MIN, next_run_at=T0 + MIN)
    store.acquire_runs("w1", 5, LEASE, T0)
    assert sorted(r.run_id for r in store.rescue_expired(T0 + LEASE + MIN, max_rescues=0)) == sorted(
        [a, c]
    )  # failed for good
    assert run_of(store, a).phase is RunPhase.FAILED
    paused = store.get_schedule(s.id)
    assert paused is not None and paused.status is ScheduleStatus.PAUSED
    assert paused.reason is not None and a in paused.reason
    assert store.get_schedule(plain.id).status is ScheduleStatus.ACTIVE  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------- queries


def test_list_runs_filters_and_newest_first(store: Store) -> None:
    sa, a_ids = setup(store, T0, T0 + MIN, T0 + 2 * MIN, tag="a")
    sb, b_ids = setup(store, T0 + 30 * timedelta(seconds=1), T0 + 3 * MIN, tag="b")
    (claimed,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.finish_runs([ok(claimed)], T0)

    def ids(**flt: Any) -> list[str]:
        return [r.id for r in store.list_runs(RunFilter(**flt))]

    assert ids() == [b_ids[1], a_ids[2], a_ids[1], b_ids[0], a_ids[0]]
    assert ids(job_id=sa.id) == [a_ids[2], a_ids[1], a_ids[0]]
    assert ids(job_tag="b") == [b_ids[1], b_ids[0]]
    assert ids(phase=RunPhase.COMPLETED) == [a_ids[0]]
    assert ids(phase=RunPhase.QUEUED, job_id=sb.id) == [b_ids[1], b_ids[0]]
    assert ids(since=T0 + MIN) == [b_ids[1], a_ids[2], a_ids[1]]  # since inclusive
    assert ids(since=T0 + MIN, until=T0 + 3 * MIN) == [a_ids[2], a_ids[1]]  # until exclusive
    assert ids(limit=2, offset=1) == [a_ids[2], a_ids[1]]
    assert ids(job_tag="nope") == []


def test_list_runs_after_a_run_pages_through_every_run_once_in_order(store: Store) -> None:
    """A page past a run (its id the cursor) is the rest of the order: runs due at one instant (three schedules'
    occurrences, tied by due time) go by their ids, each once, under every filter (each its own query)."""
    at = [T0, T0 + MIN, T0 + 2 * MIN]
    sa, _ = setup(store, *at, tag="a")
    setup(store, *at, tag="a")
    setup(store, *at[:2], tag="b")
    for claimed in store.acquire_runs("w1", 3, LEASE, T0 + MIN):
        store.finish_runs([fail(claimed)], T0 + MIN)

    def ids(**flt: Any) -> list[str]:
        return [r.id for r in store.list_runs(RunFilter(**flt))]

    for flt in ({}, {"job_id": sa.id}, {"job_tag": "b"}, {"phase": RunPhase.FAILED}, {"phase": RunPhase.QUEUED}):
        whole = ids(**flt)
        assert len(whole) >= 2, flt
        assert paged(ids, 2, **flt) == whole, flt
        assert ids(**flt, after=whole[0], offset=1, limit=2) == whole[2:4], flt  # an offset counts past the cursor
    assert ids(after=ids()[-1]) == []
    with pytest.raises(NotFoundError) as found:
        store.list_runs(RunFilter(after="run_none"))
    assert found.value.kind == "run"


def test_list_schedules_after_a_schedule_pages_through_every_schedule_once_in_order(store: Store) -> None:
    """Schedules made at one instant (tied by their making) go by their ids, each once, under the filters."""
    store.create_job(job("a"), T0)
    store.create_job(job("b"), T0)
    made = [schedule("a" if i % 3 else "b", created_at=T0 + (i // 4) * MIN) for i in range(10)]
    store.add_schedules(made, [])

    def ids(**flt: Any) -> list[str]:
        return [s.id for s in store.list_schedules(**flt)]

    for flt in ({}, {"job_tag": "a"}, {"status": ScheduleStatus.ACTIVE}):
        whole = ids(**flt)
        assert len(whole) >= 4, flt
        assert paged(ids, 3, **flt) == whole, flt
    assert sorted(ids()) == sorted(s.id for s in made)
    with pytest.raises(NotFoundError) as found:
        store.list_schedules(after="job_none")
    assert found.value.kind == "schedule"


def test_next_wakeup_reports_each_kind(store: Store) -> None:
    assert store.next_wakeup() == Wakeups()
    store.create_job(job(), T0)
    active = schedule(next_run_at=T0 + 5 * MIN)
    paused = schedule(next_run_at=T0 + MIN, status=ScheduleStatus.PAUSED)
    store.add_schedules([active, paused], [])
    wake = store.next_wakeup()
    assert (wake.schedule_due, wake.run_due, wake.lease_expiry, wake.earliest()) == (
        T0 + 5 * MIN,
        None,
        None,
        T0 + 5 * MIN,
    )
    store.trigger(active.id, due_run(active, T0 - MIN))
    store.trigger(active.id, due_run(active, T0 + 2 * MIN))
    store.trigger(active.id, due_run(active, T0 - 9 * MIN, held=True))  # held: not due by time
    assert store.next_wakeup().run_due == T0 - MIN
    store.acquire_runs("w1", 1, LEASE, T0)
    wake = store.next_wakeup()
    assert (wake.run_due, wake.lease_expiry, wake.earliest()) == (T0 + 2 * MIN, T0 + LEASE, T0 + LEASE)


def test_count_runs_by_phase(store: Store) -> None:
    assert store.count_runs() == {}
    s, _ = setup(store, T0 - 2 * MIN, T0 - MIN, T0, T0 + MIN)
    runs = store.acquire_runs("w1", 2, LEASE, T0 - MIN)
    store.finish_runs([ok(runs[0])], T0)
    assert store.count_runs() == {RunPhase.COMPLETED: 1, RunPhase.RUNNING: 1, RunPhase.QUEUED: 2}
    store.update_schedule(s.id, T0, ScheduleChange(cancel_pending=True))
    assert store.count_runs() == {RunPhase.COMPLETED: 1, RunPhase.RUNNING: 1, RunPhase.CANCELLED: 2}


# ---------------------------------------------------------------------------------------- migrations


def test_migrating_twice_is_a_no_op(backend: Backend) -> None:
    store = backend.open()
    fresh = backend.snapshot()
    store.migrate()
    backend.open().migrate()
    assert backend.snapshot() == fresh
    package = f"ductape_jobs.store.{backend.name}.migrations"
    assert fresh["versions"] == [v for v, _ in load_migrations(package)]
    assert set(fresh["tables"]) >= {"jobs", "schedules", "runs", "attempts", "cache_entries", "schema_migrations"}
    assert {"feature_runs", "feature_events"} <= set(fresh["tables"])  # 0003_features


def test_concurrent_migrations_apply_each_version_once(backend: Backend) -> None:
    stores = [backend.open(migrate=False) for _ in range(4)]
    in_threads(*[s.migrate for s in stores])
    reference = backend.snapshot()
    package = f"ductape_jobs.store.{backend.name}.migrations"
    assert reference["versions"] == [v for v, _ in load_migrations(package)]
    stores[0].create_job(job(), T0)
    assert stores[3].get_job("", "report") is not None


def test_both_backends_have_the_same_tables_and_columns(tmp_path: Path) -> None:
    with sqlite_backend(tmp_path) as lite, postgres_backend() as pg:
        lite.open()
        pg.open()
        assert lite.columns() == pg.columns()


# ------------------------------------------------------------------------------------------ the cache


def test_cache_entries_live_until_they_expire(store: Store) -> None:
    assert store.cache_get("k", T0) == (False, None)
    store.cache_put("k", {"rows": [1, 2]}, T0 + MIN, T0)
    assert store.cache_get("k", T0 + timedelta(seconds=59)) == (True, {"rows": [1, 2]})
    assert store.cache_get("k", T0 + MIN) == (False, None)  # expired at its time
    store.cache_put("k", None, T0 + 2 * MIN, T0 + MIN)  # a cached None is still a hit
    assert store.cache_get("k", T0 + MIN) == (True, None)
    store.cache_put("other", "v", T0 + 5 * MIN, T0 + MIN)
    assert store.cache_get("other", T0 + 4 * MIN) == (True, "v")


def test_a_schedule_planned_from_a_changed_job_is_refused(store: Store) -> None:
    """schedule() plans from cached job definitions; the write checks them, so a stale one is never used."""
    created = store.create_job(job("r"), T0)
    stale = store.get_job("", "r")
    assert stale is not None
    store.update_job("", "r", {"intervals": 60_000}, T0)  # another client, in the same millisecond
    s = schedule("r")
    with pytest.raises(StaleJobError):
        store.add_schedules([s], [], planned_from={("", "r"): stale})
    assert store.get_schedule(s.id) is None  # nothing written
    fresh = store.get_job("", "r")
    assert fresh is not None and fresh.intervals == 60_000 and created.intervals == 0
    store.add_schedules([s], [], planned_from={("", "r"): fresh})
    assert store.get_schedule(s.id) is not None


def test_migration_23_makes_the_one_offs_made_without_repeat_follow_their_job(backend: Backend) -> None:
    """A schedule made without ``repeat`` while its job had no intervals was written not following it (so a
    job.update that gave the job intervals did not make it repeat); version 23 makes the waiting ones follow it.
    One made with ``repeat`` (cron or every) keeps its own, and so does one that ended."""
    backend.migrate_to(22)
    columns = (
        "id, job_tag, env, product_tag, input, retries, status, start_at, next_run_at, created_at, updated_at, cron,"
        " every_ms"
    )
    # stranded before the fix: following its job, which an update to intervals 0 left with nothing due
    backend.execute(
        f"INSERT INTO schedules ({columns}, follows_job) VALUES ({{}}, 1)".format(
            ":id, 'report', 'prd', 'shop', '{}', 0, 'active', :t, NULL, :t, :t, NULL, NULL"
            if backend.path is not None
            else "%(id)s, 'report', 'prd', 'shop', '{}', 0, 'active', %(t)s, NULL, %(t)s, %(t)s, NULL, NULL"
        ),
        {"id": "stranded", "t": ms(T0)},
    )
    for sid, status, cron, every in [
        ("one_off", "active", None, None),
        ("paused_one", "paused", None, None),
        ("done_one", "completed", None, None),
        ("by_cron", "active", "0 9 * * *", None),
        ("by_every", "active", None, 60_000),
    ]:
        params = {"id": sid, "status": status, "cron": cron, "every": every, "t": ms(T0)}
        values = "%(id)s, 'report', 'prd', 'shop', '{}', 0, %(status)s, %(t)s, %(t)s, %(t)s, %(t)s, %(cron)s, %(every)s"
        if backend.path is not None:
            values = values.replace("%(", ":").replace(")s", "")
        backend.execute(f"INSERT INTO schedules ({columns}) VALUES ({values})", params)
    store = backend.open()  # migrates to the latest
    follows = {sid: found.follows_job for sid in ("one_off", "paused_one", "done_one", "by_cron", "by_every")
               if (found := store.get_schedule(sid)) is not None}  # fmt: skip
    assert follows == {"one_off": True, "paused_one": True, "done_one": False, "by_cron": False, "by_every": False}
    stranded = store.get_schedule("stranded")
    assert stranded is not None and stranded.next_run_at == T0  # due at its start again: it runs once
