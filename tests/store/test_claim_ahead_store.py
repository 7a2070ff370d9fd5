"""A tick that claims ahead (``Store.advance_due_and_acquire(..., ahead=)``, the worker's ``WorkerOptions.ahead``):
the schedules due within ``ahead`` are advanced, the runs under no limit due by then are claimed, and each starts
at its due time, which the run and its attempt record. Runs under a limit are claimed only when due.

Every test runs on SQLite and on PostgreSQL (``conftest.py``). Times are fixed; ``now`` is passed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from msgspec.structs import replace
from test_contract import LEASE, T0, fail, job, ok, run_of, schedule, setup

from ductape_jobs.clock import FakeClock
from ductape_jobs.engine.scheduler import Scheduler
from ductape_jobs.models import Misfire, Overlap, RunPhase
from ductape_jobs.store import Store

MS = timedelta(milliseconds=1)
AHEAD = 20 * MS


def once(store: Store, at: Any, tag: str = "report", **job_extra: Any) -> str:
    """A job ``tag`` of product shop (``job_extra``: its fields) and a schedule that runs it once, at ``at``."""
    if store.get_job("shop", tag) is None:
        store.create_job(job(tag, product_tag="shop", **job_extra), T0)
    s = schedule(tag, next_run_at=at, start_at=at, job_product="shop")
    store.add_schedules([s], [])
    return s.id


def test_a_tick_ahead_claims_the_runs_due_within_it_to_start_at_their_due_times(store: Store) -> None:
    soon, later = once(store, T0 + 10 * MS), once(store, T0 + 50 * MS)
    scheduler = Scheduler(store, FakeClock(T0))
    assert scheduler.tick_and_claim(T0, "w1", 10, LEASE) == ([], [], False)  # not ahead: nothing is due yet

    created, claimed, full = scheduler.tick_and_claim(T0, "w1", 10, LEASE, AHEAD)
    assert not full
    assert [r.schedule_id for r in created] == [soon] and [r.id for r in claimed] == [created[0].id]
    (run,) = claimed
    assert run.phase is RunPhase.RUNNING and run.lease_owner == "w1"
    assert run.scheduled_at == run.available_at == run.started_at == T0 + 10 * MS  # it starts when it is due
    assert run.lease_expires_at == T0 + LEASE  # the lease runs from the claim
    assert [a.started_at for a in run_of(store, run.id).attempts] == [T0 + 10 * MS]
    s_later = store.get_schedule(later)
    assert s_later is not None and s_later.next_run_at == T0 + 50 * MS and s_later.run_count == 0  # beyond it


def test_a_run_already_due_claimed_ahead_starts_at_the_claim(store: Store) -> None:
    """Ahead changes nothing for a run due before the claim: it starts then, as without."""
    _, (late,) = setup(store, T0 - 5 * MS)
    once(store, T0 + 5 * MS)
    _, claimed, _ = Scheduler(store, FakeClock(T0)).tick_and_claim(T0, "w1", 10, LEASE, AHEAD)
    started = {r.id: r.started_at for r in claimed}
    assert len(started) == 2 and started[late] == T0
    assert sorted(started.values()) == [T0, T0 + 5 * MS]


def test_runs_under_a_limit_are_claimed_only_when_due(store: Store) -> None:
    """A limit counts a run from its claim: one claimed ahead would take its slot (or its rate's window) early."""
    limited = once(store, T0 + 10 * MS, tag="sync", concurrency=1)
    scheduler = Scheduler(store, FakeClock(T0))
    created, claimed, _ = scheduler.tick_and_claim(T0, "w1", 10, LEASE, AHEAD)
    assert [r.schedule_id for r in created] == [limited] and claimed == []  # made, queued, not claimed
    assert store.acquire_runs("w1", 10, LEASE, T0 + 9 * MS) == []
    (run,) = store.acquire_runs("w1", 10, LEASE, T0 + 10 * MS)
    assert run.id == created[0].id and run.started_at == T0 + 10 * MS


def test_a_tick_ahead_claims_no_more_than_it_wants(store: Store) -> None:
    """A full claim leaves the other runs it made queued, for any worker to claim when they fall due."""
    for i in range(3):
        once(store, T0 + (i + 1) * MS)
    created, claimed, _ = Scheduler(store, FakeClock(T0)).tick_and_claim(T0, "w1", 2, LEASE, AHEAD)
    assert len(created) == 3 and len(claimed) == 2
    (left,) = {r.id for r in created} - {r.id for r in claimed}
    assert run_of(store, left).phase is RunPhase.SCHEDULED  # made before it is due
    assert store.acquire_runs("w2", 10, LEASE, T0 + 2 * MS) == []  # due at 3 ms
    assert [r.id for r in store.acquire_runs("w2", 10, LEASE, T0 + 3 * MS)] == [left]


def test_a_run_claimed_ahead_and_given_back_keeps_its_due_time(store: Store) -> None:
    """Released at a shutdown before it started, or rescued after its worker died, it is not due any sooner."""
    once(store, T0 + 10 * MS)
    once(store, T0 + 12 * MS)
    scheduler = Scheduler(store, FakeClock(T0))
    _, (first, second), _ = scheduler.tick_and_claim(T0, "w1", 10, 3 * MS, AHEAD)
    assert store.release_runs("w1", [first.id], T0 + MS).queued == 1
    assert [r.run_id for r in store.rescue_expired(T0 + 5 * MS, 3)] == [second.id]  # its 3 ms lease ran out
    for run, due in ((first, T0 + 10 * MS), (second, T0 + 12 * MS)):
        back = run_of(store, run.id)
        assert back.phase is RunPhase.QUEUED and back.available_at == due
    assert store.acquire_runs("w2", 10, LEASE, T0 + 6 * MS) == []  # neither is due yet
    assert [r.id for r in store.acquire_runs("w2", 10, LEASE, T0 + 12 * MS)] == [first.id, second.id]


def test_a_backlog_under_a_limit_leaves_other_runs_claimed_ahead(store: Store) -> None:
    """While runs wait for a full limit, the claim takes its other path (limits_core.py): that one claims ahead
    too."""
    backlog = [once(store, T0 - 2 * MS, tag="sync", concurrency=1), once(store, T0 - MS, tag="sync")]
    scheduler = Scheduler(store, FakeClock(T0))
    made, (_running,), _ = scheduler.tick_and_claim(T0, "w1", 10, LEASE)  # one runs, the other waits for its slot
    assert {r.schedule_id for r in made} == set(backlog)
    free = once(store, T0 + 10 * MS)
    _, claimed, _ = scheduler.tick_and_claim(T0 + MS, "w1", 10, LEASE, AHEAD)
    assert [(r.job_id, r.started_at) for r in claimed] == [(free, T0 + 10 * MS)]
    assert [a.started_at for a in run_of(store, claimed[0].id).attempts] == [T0 + 10 * MS]


def test_a_tick_ahead_judges_a_misfire_at_its_time_not_ahead(store: Store) -> None:
    """A skip-if-missed occurrence due within the tick's reach is not late: it runs."""
    if store.get_job("shop", "report") is None:
        store.create_job(job("report", product_tag="shop"), T0)
    s = schedule("report", next_run_at=T0 + 10 * MS, start_at=T0 + 10 * MS, job_product="shop", misfire=Misfire.SKIP)
    store.add_schedules([s], [])
    scheduler = Scheduler(store, FakeClock(T0), grace=5 * MS)  # a grace shorter than the tick looks ahead
    created, claimed, _ = scheduler.tick_and_claim(T0, "w1", 10, LEASE, AHEAD)
    assert len(created) == 1 and [r.started_at for r in claimed] == [T0 + 10 * MS]


def test_a_schedule_with_an_overlap_policy_is_ticked_only_when_due(store: Store) -> None:
    """Whether its previous run still goes is known only then: it is not planned ahead."""
    if store.get_job("shop", "report") is None:
        store.create_job(job("report", product_tag="shop"), T0)
    s = schedule("report", next_run_at=T0 + 10 * MS, start_at=T0 + 10 * MS, job_product="shop", overlap=Overlap.SKIP)
    store.add_schedules([s], [])
    scheduler = Scheduler(store, FakeClock(T0))
    assert scheduler.tick_and_claim(T0, "w1", 10, LEASE, AHEAD) == ([], [], False)
    created, claimed, _ = scheduler.tick_and_claim(T0 + 10 * MS, "w1", 10, LEASE, AHEAD)
    assert len(created) == 1 and [r.started_at for r in claimed] == [T0 + 10 * MS]


def overlapping(store: Store, overlap: Overlap) -> str:
    """A schedule of ``overlap`` every 100 ms from ``T0``."""
    store.create_job(job("report", product_tag="shop"), T0)
    s = schedule("report", next_run_at=T0, start_at=T0, job_product="shop", overlap=overlap, every=100 * MS)
    store.add_schedules([s], [])
    return s.id


def test_a_late_tick_of_a_skip_schedule_leaves_the_next_occurrence_to_its_own_tick(store: Store) -> None:
    """Reached 85 ms late, a tick ahead would have planned T0 + 100 ms with the run it just made as busy, and
    skipped it; the run ends at 90 ms, so the occurrence at 100 ms runs."""
    sid = overlapping(store, Overlap.SKIP)
    scheduler = Scheduler(store, FakeClock(T0))
    created, (first,), _ = scheduler.tick_and_claim(T0 + 85 * MS, "w1", 10, LEASE, AHEAD)
    assert [r.scheduled_at for r in created] == [T0]
    store.finish_runs([ok(first, at=T0 + 90 * MS)], T0 + 90 * MS)
    s = store.get_schedule(sid)
    assert s is not None and s.next_run_at == T0 + 100 * MS and s.skipped_count == 0
    created, _, _ = scheduler.tick_and_claim(T0 + 100 * MS, "w1", 10, LEASE, AHEAD)
    assert [r.scheduled_at for r in created] == [T0 + 100 * MS]


def test_a_late_tick_of_a_buffer_one_schedule_holds_no_run_not_yet_due(store: Store) -> None:
    """A held run is released (made due at once) when the run before it ends: one held ahead of its due time
    would then start before it."""
    overlapping(store, Overlap.BUFFER_ONE)
    scheduler = Scheduler(store, FakeClock(T0))
    created, (first,), _ = scheduler.tick_and_claim(T0 + 85 * MS, "w1", 10, LEASE, AHEAD)
    assert [r.scheduled_at for r in created] == [T0]
    store.finish_runs([ok(first, at=T0 + 90 * MS)], T0 + 90 * MS)
    assert store.acquire_runs("w1", 10, LEASE, T0 + 90 * MS) == []
    created, claimed, _ = scheduler.tick_and_claim(T0 + 100 * MS, "w1", 10, LEASE, AHEAD)
    assert [r.scheduled_at for r in created] == [T0 + 100 * MS]
    assert [(r.scheduled_at, r.started_at) for r in claimed] == [(T0 + 100 * MS, T0 + 100 * MS)]


def test_an_outcome_records_when_a_run_claimed_ahead_really_began(store: Store) -> None:
    """A run claimed ahead is recorded as starting at its due time; its outcome says when its task began (its
    worker's loop may have been busy then), and the run and its attempt keep that, however it ended. An outcome
    without it changes neither."""
    due = T0 + 10 * MS
    ids = [once(store, due, tag=f"t{i}") for i in range(4)]
    _, claimed, _ = Scheduler(store, FakeClock(T0)).tick_and_claim(T0, "w1", 10, LEASE, AHEAD)
    by_schedule = {r.job_id: r for r in claimed}
    done, failed, retried, plain = (by_schedule[i] for i in ids)
    began = due + 7 * MS
    end = due + 50 * MS
    store.finish_runs(
        [
            replace(ok(done, at=end), started_at=began),
            replace(fail(failed, at=end), started_at=began),
            replace(fail(retried, at=end, retry_at=end + LEASE), started_at=began),
            ok(plain, at=end),
        ],
        end,
    )
    for run, phase in ((done, RunPhase.COMPLETED), (failed, RunPhase.FAILED), (retried, RunPhase.RETRY_SCHEDULED)):
        stored = run_of(store, run.id)
        assert (stored.phase, stored.started_at) == (phase, began)
        assert [a.started_at for a in stored.attempts] == [began]
    stored = run_of(store, plain.id)
    assert stored.started_at == due and [a.started_at for a in stored.attempts] == [due]
    assert sorted(store.lateness_sample(T0, 10)) == [timedelta(0), *[7 * MS] * 2]  # the ended ones
