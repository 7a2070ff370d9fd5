"""Shared resources and priorities in the store (``store/limits.py``), on SQLite and PostgreSQL.

Every test runs on both backends; racing claims use several store objects on one database.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from storekit import PG_URL, Backend
from test_contract import LEASE, MIN, T0, due_run, fail, in_threads, job, ok, run_of, schedule

from ductape_jobs.models import RunPhase
from ductape_jobs.resources import Rate, ResourceLimit, resource_key
from ductape_jobs.store import Store, limits_core
from ductape_jobs.store.base import Change
from ductape_jobs.store.codec import dumps
from ductape_jobs.store.dialect import Tx
from ductape_jobs.store.limits_core import BUSY_RECHECK, PASSED_OVER, RECHECK
from ductape_jobs.store.postgres.dialect import Q

SEC = timedelta(seconds=1)
CRM = ResourceLimit("shop", "crm-api", concurrency=2)
RECHECK_AFTER = timedelta(milliseconds=RECHECK)


def backlog(
    store: Store, tag: str, n: int, *, at: datetime = T0, priority: int | None = None, **job_extra: object
) -> list[str]:
    """A job ``tag`` of product shop (``job_extra``: its fields) and ``n`` runs of it due just before ``at``,
    one schedule each (of ``priority``); the run ids, oldest first."""
    if store.get_job("shop", tag) is None:
        store.create_job(job(tag, product_tag="shop", **job_extra), T0)
    ids = []
    for i in range(n):
        s = schedule(tag, next_run_at=None, job_product="shop", priority=priority)
        run = due_run(s, at - timedelta(milliseconds=n - i))
        store.add_schedules([s], [run])
        ids.append(run.id)
    return ids


def test_a_run_starts_only_while_its_resource_has_room_and_waits_without_spending_retries(store: Store) -> None:
    store.define_resources([CRM], T0)
    a = backlog(store, "sync-a", 2, resources=["crm-api"])
    b = backlog(store, "sync-b", 2, resources=["crm-api"])
    free = backlog(store, "free", 2)
    got = store.acquire_runs("w1", 10, LEASE, T0)
    limited = [r for r in got if r.job_tag != "free"]
    assert len(limited) == 2  # concurrency 2, over both jobs
    assert {r.job_tag for r in got if r.job_tag == "free"} == {"free"} and len(got) == 4  # others go on
    waiting = [run_of(store, i) for i in a + b if i not in {r.id for r in limited}]
    for run in waiting:
        assert run.phase is RunPhase.QUEUED and run.attempt == 0 and run.retry_count == 0
        assert run.waiting_on is not None and "concurrency of 'crm-api'" in run.waiting_on
    assert {r.id for r in store.waiting_runs(T0)} == {r.id for r in waiting}
    assert store.acquire_runs("w2", 10, LEASE, T0 + SEC) == []  # still full, from another worker
    store.finish_runs([ok(limited[0], at=T0 + SEC)], T0 + SEC)
    (next_one,) = store.acquire_runs("w2", 10, LEASE, T0 + SEC)
    assert next_one.id in {r.id for r in waiting} and next_one.waiting_on is None
    use = {u.limit.name: u for u in store.resource_use(T0 + SEC)}
    assert (use["crm-api"].running, use["crm-api"].waiting) == (2, 1)
    assert set(free) <= {r.id for r in got}


def test_a_failed_or_retried_run_frees_its_slot(store: Store) -> None:
    store.define_resources([ResourceLimit("shop", "db", concurrency=1)], T0)
    ids = backlog(store, "load", 2, resources=["db"])
    (first,) = store.acquire_runs("w1", 10, LEASE, T0)
    assert first.id == ids[0]
    store.finish_runs([fail(first, at=T0, retry_at=T0 + MIN)], T0)
    (second,) = store.acquire_runs("w1", 10, LEASE, T0)
    assert second.id == ids[1]


def test_a_job_s_own_concurrency_and_a_product_resource_both_hold(store: Store) -> None:
    store.define_resources([ResourceLimit("shop", "crm-api", concurrency=3)], T0)
    backlog(store, "own", 3, resources=["crm-api"], concurrency=1)
    backlog(store, "other", 3, resources=["crm-api"])
    got = store.acquire_runs("w1", 10, LEASE, T0)
    assert Counter(r.job_tag for r in got) == {"own": 1, "other": 2}
    held = [r for r in store.waiting_runs(T0) if r.job_tag == "own"]
    assert held and all("'job:own'" in (r.waiting_on or "") or "'crm-api'" in (r.waiting_on or "") for r in held)


def test_a_rate_limit_is_a_sliding_window_of_starts(store: Store) -> None:
    backlog(store, "ping", 10, rate="3/s")
    starts = []
    for step in range(0, 2500, 250):  # every 250 ms for 2.5 s
        now = T0 + timedelta(milliseconds=step)
        starts += [now for _ in store.acquire_runs("w1", 10, LEASE, now)]
    for t in starts:  # never more than 3 in any window of one second
        assert sum(1 for s in starts if t <= s < t + SEC) <= 3
    assert len(starts) == 9  # windows starting at 0, 1 s and 2 s
    use = {u.limit.name: u for u in store.resource_use(T0 + 2 * SEC)}
    assert use["job:ping"].limit.rate == Rate(3, SEC)


def test_a_claim_whose_time_is_older_than_one_already_made_still_counts_every_start(store: Store) -> None:
    """Claims commit in the order they got the limit's lock, not in the order of their ``now``: one that waited
    (its ``now`` read before the wait) must still see the starts a later-timed claim has already counted out of
    its own window. Rate 2/s: two start at 0.5 s, one at 1.6 s; a claim timed 1.4 s then finds the window
    (0.4 s, 1.4 s] full."""
    backlog(store, "ping", 5, at=T0 + SEC // 2, rate="2/s")
    ms = timedelta(milliseconds=1)
    assert len(store.acquire_runs("w1", 2, LEASE, T0 + 500 * ms)) == 2
    assert len(store.acquire_runs("w2", 1, LEASE, T0 + 1600 * ms)) == 1
    assert store.acquire_runs("w3", 10, LEASE, T0 + 1400 * ms) == []  # 0.5, 0.5 and 1.6 s: no room at 1.4 s
    assert len(store.acquire_runs("w3", 10, LEASE, T0 + 2600 * ms)) == 2  # (1.6 s, 2.6 s] is empty: the last two


def test_racing_workers_never_exceed_a_concurrency_limit(backend: Backend) -> None:
    setup_store = backend.open()
    setup_store.define_resources([ResourceLimit("shop", "crm-api", concurrency=3)], T0)
    ids = backlog(setup_store, "sync", 60, resources=["crm-api"])
    workers = [backend.open() for _ in range(4)]
    peak: list[int] = []
    done: list[str] = []

    def work(i: int) -> None:
        store, clock = workers[i], T0
        while len(done) < len(ids):
            runs = store.acquire_runs(f"w{i}", 5, LEASE, clock)
            running = setup_store.count_runs().get(RunPhase.RUNNING, 0)
            peak.append(running)
            for run in runs:
                store.finish_runs([ok(run, worker=f"w{i}")], clock)
                done.append(run.id)

    in_threads(*(lambda i=i: work(i) for i in range(4)))
    assert sorted(done) == sorted(ids)  # each once
    assert max(peak) <= 3


def test_a_worker_records_its_outcome_and_takes_the_freed_slot_in_one_transaction(store: Store) -> None:
    store.define_resources([CRM], T0)
    ids = backlog(store, "sync", 5, resources=["crm-api"])
    first = store.acquire_runs("w1", 10, LEASE, T0)
    assert [r.id for r in first] == ids[:2]
    (refill,) = store.finish_and_acquire([ok(first[0], at=T0 + SEC)], T0 + SEC, "w1", 10, LEASE).claimed
    assert refill.id == ids[2] and refill.lease_owner == "w1" and refill.attempt == 1
    assert run_of(store, ids[0]).phase is RunPhase.COMPLETED
    assert store.acquire_runs("w2", 10, LEASE, T0 + SEC) == []  # the slot went to w1: still 2 of 2
    assert store.finish_and_acquire([], T0 + SEC, "w1", 10, LEASE).claimed == []  # nothing ended, nothing frees
    both = store.finish_and_acquire([ok(first[1]), ok(refill)], T0 + 2 * SEC, "w1", 10, LEASE).claimed
    assert [r.id for r in both] == ids[3:5]  # two ended: two start, in claim order
    use = {u.limit.name: u for u in store.resource_use(T0 + 2 * SEC)}
    assert (use["crm-api"].running, use["crm-api"].waiting) == (2, 0)


def test_racing_workers_refilling_their_slots_never_exceed_a_concurrency_limit(backend: Backend) -> None:
    setup_store = backend.open()
    setup_store.define_resources([ResourceLimit("shop", "crm-api", concurrency=3)], T0)
    ids = backlog(setup_store, "sync", 60, resources=["crm-api"])
    workers = [backend.open() for _ in range(4)]
    peak: list[int] = []
    done: list[str] = []

    def work(i: int) -> None:
        store, me = workers[i], f"w{i}"
        runs = store.acquire_runs(me, 2, LEASE, T0)
        for _ in range(200):
            if len(done) >= len(ids):
                break
            peak.append(setup_store.count_runs().get(RunPhase.RUNNING, 0))
            done.extend(r.id for r in runs)
            runs = store.finish_and_acquire([ok(r, worker=me) for r in runs], T0, me, 2, LEASE).claimed

    in_threads(*(lambda i=i: work(i) for i in range(4)))
    assert sorted(done) == sorted(ids)  # each once
    assert 0 < max(peak) <= 3
    assert setup_store.count_runs().get(RunPhase.COMPLETED, 0) == 60


def test_priorities_order_due_runs_and_age(store: Store) -> None:
    low = backlog(store, "low", 3, priority=0)
    high = backlog(store, "high", 3, priority=50)
    late_high = backlog(store, "later", 1, at=T0 + 200 * SEC, priority=100)  # due 200 s later: aged past low
    got = store.acquire_runs("w1", 6, LEASE, T0)
    assert [r.id for r in got] == high + low
    assert store.acquire_runs("w1", 6, LEASE, T0 + 199 * SEC) == []
    assert [r.id for r in store.acquire_runs("w1", 6, LEASE, T0 + 200 * SEC)] == late_high
    assert got[0].priority == 50 and got[-1].priority == 0


def test_a_schedule_s_priority_overrides_its_job_s(store: Store) -> None:
    store.create_job(job("urgent", product_tag="shop", priority=10), T0)
    by_job = backlog(store, "urgent", 1)
    by_schedule = backlog(store, "plain", 1, priority=20)
    assert [r.id for r in store.acquire_runs("w1", 5, LEASE, T0)] == by_schedule + by_job


@pytest.mark.parametrize("n_free", [0, 30])
def test_runs_behind_a_full_resource_are_reached(store: Store, n_free: int) -> None:
    slow, fast = ResourceLimit("shop", "slow", concurrency=1), ResourceLimit("shop", "fast", concurrency=5)
    store.define_resources([slow, fast], T0)
    backlog(store, "slow", 40, at=T0 - MIN, resources=["slow"])
    fast_ids = backlog(store, "fast", 5, resources=["fast"])
    free_ids = backlog(store, "free", n_free)
    got = []
    while runs := store.acquire_runs("w1", 10, LEASE, T0):  # no run finishes
        got += runs
    assert Counter(r.job_tag for r in got)["slow"] == 1  # 39 wait
    assert {r.id for r in got} >= set(fast_ids) | set(free_ids)  # found behind them
    assert len(got) == 1 + 5 + n_free


def test_a_full_limit_holds_its_waiting_runs_with_one_row_and_wakes_workers_when_it_ends(backend: Backend) -> None:
    """Runs waiting behind a full set of limits are not written one by one (a backlog of thousands would be
    rewritten at every recheck): the set gets one hold, which next_wakeup reads instead of the runs' due times,
    and which covers the set's runs that fall due during it. A run under no limit is not held back by it."""
    store = backend.open()
    store.define_resources([ResourceLimit("shop", "db", concurrency=1)], T0)
    ids = backlog(store, "load", 30, resources=["db"])
    (first,) = store.acquire_runs("w1", 10, LEASE, T0)
    assert first.id == ids[0]
    hold = T0 + RECHECK_AFTER
    assert store.next_wakeup().run_due == hold  # not the waiting runs' due times (the past): no spinning
    waiting = store.waiting_runs(T0, limit=100)
    assert [r.id for r in waiting] == ids[1:]
    assert all("concurrency of 'db'" in (r.waiting_on or "") for r in waiting)
    assert "concurrency of 'db'" in (run_of(store, ids[1]).waiting_on or "")
    assert backend.rows("SELECT count(*) FROM limit_holds") == [(1,)]
    later = backlog(store, "load", 1, at=T0 + SEC // 2)  # due during the hold: covered by it
    assert store.next_wakeup().run_due == hold
    free = backlog(store, "free", 1, at=T0 + SEC // 4)  # under no limit: due when it is due
    assert store.next_wakeup().run_due == T0 + SEC // 4 - timedelta(milliseconds=1)
    assert [r.id for r in store.acquire_runs("w2", 10, LEASE, T0 + SEC // 4)] == free
    assert store.acquire_runs("w2", 10, LEASE, hold) == []  # looked again when the hold ended: still full
    assert store.next_wakeup().run_due == hold + RECHECK_AFTER
    assert backend.rows("SELECT count(*) FROM limit_holds") == [(1,)]
    assert len(store.waiting_runs(hold, limit=100)) == 30  # the run that fell due meanwhile waits too
    store.finish_runs([ok(first, at=hold)], hold)
    (second,) = store.acquire_runs("w2", 10, LEASE, hold)  # a claim does not wait for the hold: the slot is free
    assert second.id == ids[1] and run_of(store, second.id).waiting_on is None
    assert later[0] in {r.id for r in store.waiting_runs(hold + SEC, limit=100)}


def test_limits_that_change_release_the_holds_they_judged_and_no_other(store: Store) -> None:
    """A set held as full is looked at again as soon as its limit changes, not when its hold lapses (idle workers
    slept until then); limits stored again as they are, and a change to another resource, keep the hold."""
    store.define_resources([ResourceLimit("shop", "db", concurrency=1), CRM], T0)
    ids = backlog(store, "load", 3, resources=["db"])
    crm = backlog(store, "sync", 3, resources=["crm-api"])
    claimed = store.acquire_runs("w1", 10, LEASE, T0)
    assert {r.id for r in claimed} == {ids[0], *crm[:2]}  # db 1 of 1, crm-api 2 of 2: both sets held
    hold = T0 + RECHECK_AFTER
    assert store.next_wakeup().run_due == hold
    later = T0 + SEC // 10
    store.define_resources([ResourceLimit("shop", "db", concurrency=1), CRM], later)  # as stored
    assert {r.id for r in store.waiting_runs(later)} == {*ids[1:], crm[2]}
    store.define_resources([ResourceLimit("shop", "crm-api", concurrency=3)], later)  # the other set's limit
    assert {r.id for r in store.waiting_runs(later)} == set(ids[1:])  # db's set is still held
    assert store.next_wakeup().run_due == T0 - timedelta(milliseconds=1)  # crm-api's waiting run is due now
    assert [r.id for r in store.acquire_runs("w2", 10, LEASE, later)] == crm[2:]
    assert store.next_wakeup().run_due == later + RECHECK_AFTER  # that claim found db's set full again
    store.define_resources([ResourceLimit("shop", "db", concurrency=2)], later)
    assert store.next_wakeup().run_due == T0 - timedelta(milliseconds=2)  # db's second run: due now
    assert store.waiting_runs(later) == []  # and shown as waiting on nothing until a claim finds it full again
    assert [r.id for r in store.acquire_runs("w2", 10, LEASE, later)] == [ids[1]]


def test_declaring_a_resource_releases_the_hold_of_runs_that_named_it(store: Store) -> None:
    """A run naming a resource not declared is held for a minute; declaring it looks at the run again at once."""
    (run_id,) = backlog(store, "sync", 1, resources=["crm-api"])
    assert store.acquire_runs("w1", 10, LEASE, T0) == []
    assert store.next_wakeup().run_due > T0 + 10 * SEC
    assert "not declared" in (run_of(store, run_id).waiting_on or "")
    store.define_resources([CRM], T0 + SEC)
    assert store.next_wakeup().run_due == T0 - timedelta(milliseconds=1)
    assert [r.id for r in store.acquire_runs("w1", 10, LEASE, T0 + SEC)] == [run_id]


def test_a_job_s_own_limit_raised_releases_its_hold(store: Store) -> None:
    ids = backlog(store, "own", 3, concurrency=1)
    assert [r.id for r in store.acquire_runs("w1", 10, LEASE, T0)] == ids[:1]
    assert store.next_wakeup().run_due == T0 + RECHECK_AFTER
    store.update_job("shop", "own", {"concurrency": 3}, T0 + SEC // 10)
    assert store.next_wakeup().run_due == T0 - timedelta(milliseconds=2)
    assert [r.id for r in store.acquire_runs("w1", 10, LEASE, T0 + SEC // 10)] == ids[1:]


def test_a_limit_changed_while_a_claim_writes_its_holds_does_not_deadlock(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """A claim writes its holds in limit_keys order; the release of the holds of a changed limit locks them in the
    same order, so neither waits on the other in the opposite order (PostgreSQL would abort one after its
    deadlock_timeout, and the claim stalls meanwhile with its limits and runs locked)."""
    store = pg_backend.open()
    store.define_resources([ResourceLimit("shop", "db", concurrency=1)], T0)
    both, alone = '["shop/db","shop/x"]', '["shop/db"]'  # a claim writes `both` first (sorted)
    options = f"-c search_path={pg_backend.schema}"
    with psycopg.connect(PG_URL, autocommit=True, options=options) as setup:
        for keys in (alone, both):  # `alone` stored first: a scan of the table meets it first
            setup.execute("INSERT INTO limit_holds VALUES (%s, 'full', 1000000000000)", [keys])
    hold = Q["hold_limit_set"]
    with psycopg.connect(PG_URL, options=options) as claim, psycopg.connect(PG_URL, autocommit=True) as watch:
        claim.execute(hold, {"limit_keys": both, "waiting_on": PASSED_OVER, "held_until": 5, "full": False, "now": 0})
        done: list[str] = []
        changing = threading.Thread(
            target=lambda: done.append(
                str(store.define_resources([ResourceLimit("shop", "db", concurrency=2)], T0 + SEC))
            )
        )
        changing.start()
        _wait_until_blocked(watch, pg_backend, changing)  # the change waits on the claim's first hold
        claim.execute(hold, {"limit_keys": alone, "waiting_on": PASSED_OVER, "held_until": 5, "full": False, "now": 0})
        claim.commit()
    changing.join(timeout=30)
    assert done == ["None"]
    assert not [r for r in caplog.records if "deadlock" in r.getMessage()]
    assert pg_backend.rows("SELECT count(*) FROM limit_holds") == [(0,)]  # both released once the claim committed


def test_a_job_updated_while_a_claim_ticks_its_schedule_does_not_deadlock(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """A claim locks the schedules it ticks before it writes holds; an update of a job's cadence and own limit moves
    its schedules before it releases the holds, in the same order."""
    store = pg_backend.open()
    store.create_job(job("own", product_tag="shop", concurrency=1, intervals=60_000), T0)
    s = schedule("own", job_product="shop", follows_job=True)
    store.add_schedules([s], [])
    own = '["shop/job:own"]'
    options = f"-c search_path={pg_backend.schema}"
    with psycopg.connect(PG_URL, autocommit=True, options=options) as setup:
        setup.execute("INSERT INTO limit_holds VALUES (%s, 'full', 1000000000000)", [own])
    with psycopg.connect(PG_URL, options=options) as claim, psycopg.connect(PG_URL, autocommit=True) as watch:
        claim.execute("UPDATE schedules SET updated_at = updated_at + 1 WHERE id = %s", [s.id])  # a tick's lock
        done: list[str] = []
        changes = {"concurrency": 2, "intervals": 120_000}
        updating = threading.Thread(target=lambda: done.append(store.update_job("shop", "own", changes, T0 + SEC).tag))
        updating.start()
        _wait_until_blocked(watch, pg_backend, updating)  # the update waits on the schedule the claim ticks
        passed = {"limit_keys": own, "waiting_on": PASSED_OVER, "held_until": 5, "full": False, "now": 0}
        claim.execute(Q["hold_limit_set"], passed)  # its set passed over (the update holds the limit's row)
        claim.commit()
    updating.join(timeout=30)
    assert done == ["own"]
    assert not [r for r in caplog.records if "deadlock" in r.getMessage()]
    assert pg_backend.rows("SELECT count(*) FROM limit_holds") == [(0,)]  # released after the claim committed


def test_a_job_s_own_limit_taken_away_no_longer_holds_its_runs(store: Store) -> None:
    ids = backlog(store, "own", 3, concurrency=1)
    assert [r.id for r in store.acquire_runs("w1", 10, LEASE, T0)] == ids[:1]
    store.update_job("shop", "own", {"concurrency": None}, T0 + SEC // 10)
    assert store.next_wakeup().run_due == T0 - timedelta(milliseconds=2)
    assert [r.id for r in store.acquire_runs("w1", 10, LEASE, T0 + SEC // 10)] == ids[1:]
    use = {u.limit.key: u.limit for u in store.resource_use(T0 + SEC // 10)}
    assert use["shop/job:own"].concurrency is None and use["shop/job:own"].rate is None


def test_a_job_s_limits_changed_reach_its_pending_runs(store: Store) -> None:
    """A limits probe: a run's limits were copied when it was made, so a limit given to a job (an incident's brake)
    held none of its backlog, and a resource taken away kept holding it. Its pending runs wait under the job's limits
    as they are now; runs already running finish as they began."""
    ids = backlog(store, "late", 4)
    store.update_job("shop", "late", {"concurrency": 1}, T0)
    (first,) = store.acquire_runs("w1", 10, LEASE, T0)
    assert first.id == ids[0]
    assert "concurrency of 'job:late'" in (run_of(store, ids[1]).waiting_on or "")
    store.finish_runs([ok(first, at=T0 + SEC)], T0 + SEC)
    assert [r.id for r in store.acquire_runs("w1", 10, LEASE, T0 + SEC)] == [ids[1]]

    store.define_resources([CRM], T0)
    limited = backlog(store, "crm", 4, resources=["crm-api"])
    assert len(store.acquire_runs("w2", 10, LEASE, T0 + SEC)) == 2  # concurrency 2
    store.update_job("shop", "crm", {"resources": []}, T0 + 2 * SEC)
    assert sorted(r.id for r in store.acquire_runs("w2", 10, LEASE, T0 + 2 * SEC)) == sorted(limited[2:])


def test_a_run_running_when_its_job_s_limits_changed_is_queued_again_under_them(store: Store) -> None:
    """A review: a run running when the job got a limit kept its limits of when it was made, and so did its retry, a
    rescue's or a release's requeue of it, which then started beside the backlog the limit held. A run queued again
    takes its job's limits as they are then."""
    ids = backlog(store, "late", 3)
    retried, rescued = store.acquire_runs("w1", 2, LEASE, T0)
    store.update_job("shop", "late", {"concurrency": 1}, T0)
    store.finish_runs([fail(retried, at=T0, retry_at=T0 + SEC)], T0)
    assert store.rescue_expired(T0 + LEASE + SEC, 3)[0].run_id == rescued.id
    for run_id in (retried.id, rescued.id, ids[2]):
        assert run_of(store, run_id).limit_keys == ("shop/job:late",), run_id
    assert len(store.acquire_runs("w2", 10, LEASE, T0 + LEASE + 2 * SEC)) == 1  # concurrency 1, for the three


@pytest.mark.parametrize("cadence", [False, True], ids=["limits", "limits-and-cadence"])
def test_a_job_s_limits_changed_while_an_outcome_batch_locks_its_schedules_do_not_deadlock(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture, cadence: bool
) -> None:
    """A review: the update locked the schedules of the job's pending runs, then (its cadence changed) its other
    schedules in no set order, while an outcome batch locked the schedules of its failed runs in the order of their
    ids: each waited for a schedule the other held. Every schedule the update writes is locked first, in id order."""
    store = pg_backend.open()
    store.create_job(job("own", product_tag="shop", intervals=60_000), T0)
    made = [schedule("own", job_product="shop", follows_job=True, next_run_at=None) for _ in range(2)]
    first, second = sorted(made, key=lambda s: s.id)  # first: a running run only; second: a running and a pending
    store.add_schedules([first], [due_run(first, T0 - timedelta(milliseconds=9))])
    later = due_run(second, T0 + timedelta(hours=1))
    store.add_schedules([second], [due_run(second, T0 - timedelta(milliseconds=8)), later])
    running = store.acquire_runs("w1", 5, LEASE, T0)
    assert len(running) == 2
    options = f"-c search_path={pg_backend.schema}"
    with psycopg.connect(PG_URL, options=options) as other, psycopg.connect(PG_URL, autocommit=True) as watch:
        other.execute("SELECT id FROM runs WHERE id = %s FOR UPDATE", [later.id])  # a claim holding the pending run
        done: list[str] = []
        changes: dict[str, Any] = {"concurrency": 1, **({"intervals": 120_000} if cadence else {})}
        updating = threading.Thread(target=lambda: done.append(store.update_job("shop", "own", changes, T0 + SEC).tag))
        updating.start()
        _wait_until_blocked(watch, pg_backend, updating)  # holds the schedules it writes, waits on the pending run
        finishing = threading.Thread(target=store.finish_runs, args=([fail(r) for r in running], T0 + SEC))
        finishing.start()
        time.sleep(0.5)  # the batch locks the schedules of its failed runs, in id order
        other.rollback()
    for t in (updating, finishing):
        t.join(timeout=30)
        assert not t.is_alive()
    assert done == ["own"]
    assert not [r for r in caplog.records if "deadlock" in r.getMessage()]


def test_a_job_s_limits_changed_while_a_cancel_or_an_outcome_batch_runs_do_not_deadlock(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """A review: the change of a job's limits locked its runs not ended, then its schedules (to move their
    cadence), where a cancel locks a schedule, then its pending runs, and an outcome batch its runs in the order they
    came: each pair waited for the other until PostgreSQL broke it. The schedules of its pending runs are locked
    first, and running runs are left as they are."""
    store = pg_backend.open()
    store.create_job(job("own", product_tag="shop", intervals=60_000), T0)
    s = schedule("own", job_product="shop", follows_job=True, next_run_at=None)
    runs = [due_run(s, T0 - timedelta(milliseconds=i)) for i in (3, 2, 1)]
    store.add_schedules([s], runs)
    running = store.acquire_runs("w1", 2, LEASE, T0)
    options = f"-c search_path={pg_backend.schema}"
    with psycopg.connect(PG_URL, options=options) as cancel, psycopg.connect(PG_URL, autocommit=True) as watch:
        cancel.execute("SELECT id FROM schedules WHERE id = %s FOR UPDATE", [s.id])  # as a cancel does
        done: list[str] = []
        changes = {"concurrency": 1, "intervals": 120_000}
        updating = threading.Thread(target=lambda: done.append(store.update_job("shop", "own", changes, T0 + SEC).tag))
        updating.start()
        _wait_until_blocked(watch, pg_backend, updating)  # the update waits on the schedule the cancel holds
        finishing = threading.Thread(target=store.finish_runs, args=([ok(r) for r in reversed(running)], T0 + SEC))
        finishing.start()
        cancel.execute(
            "UPDATE runs SET phase = 'cancelled', available_at = NULL WHERE schedule_id = %s"
            " AND phase IN ('scheduled', 'queued', 'retry_scheduled')",
            [s.id],
        )
        cancel.commit()
    for t in (updating, finishing):
        t.join(timeout=30)
        assert not t.is_alive()
    assert done == ["own"]
    assert not [r for r in caplog.records if "deadlock" in r.getMessage()]


def _wait_until_blocked(watch: psycopg.Connection[Any], backend: Backend, writer: threading.Thread) -> None:
    """Until a connection of ``backend``'s stores waits on a lock (its URL names it: application_name)."""
    deadline = time.monotonic() + 30
    query = "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = %s"
    while not watch.execute(query, [backend.schema]).fetchone():
        assert writer.is_alive() and time.monotonic() < deadline
        time.sleep(0.005)


def test_limits_that_change_wake_the_workers_listening(pg_backend: Backend) -> None:
    listener, writer = pg_backend.open(), pg_backend.open()
    writer.define_resources([CRM], T0)
    backlog(writer, "sync", 3, resources=["crm-api"])
    assert len(writer.acquire_runs("w1", 10, LEASE, T0)) == 2  # the third waits: its set is held
    assert listener.wait_for_change(timedelta(milliseconds=10)) is None  # listening from now on
    writer.define_resources([CRM], T0 + SEC)  # as stored: nothing to wake for
    assert listener.wait_for_change(timedelta(milliseconds=200)) is None
    woke: list[Change | None] = []
    waiting = threading.Thread(target=lambda: woke.append(listener.wait_for_change(timedelta(seconds=10))))
    waiting.start()
    writer.define_resources([ResourceLimit("shop", "crm-api", concurrency=5)], T0 + SEC)
    waiting.join(timeout=15)
    assert woke == [Change(due=None)]  # due now


def test_every_set_of_limits_with_room_is_reached_however_many_full_sets_are_due_first(store: Store) -> None:
    """Five resources of concurrency 1, three due runs each, the sets in claim order: once four are full, a claim
    steps over all four and takes the fifth set's run (it looked at four sets at most before: the fifth waited
    with a free slot while next_wakeup said it was due, and the workers spun)."""
    names = [f"r{k}" for k in range(5)]
    store.define_resources([ResourceLimit("shop", n, concurrency=1) for n in names], T0)
    first = {n: backlog(store, f"j-{n}", 3, at=T0 - (5 - k) * MIN, resources=[n])[0] for k, n in enumerate(names)}
    got = [run.id for _ in range(5) for run in store.acquire_runs("w1", 1, LEASE, T0)]
    assert got == [first[n] for n in names]
    assert store.acquire_runs("w1", 1, LEASE, T0) == []  # every set full now
    wake = store.next_wakeup().run_due
    assert wake is not None and wake > T0  # the holds: nothing said due while nothing can start


class _Paused:
    """Worker A's claim stopped after its statement ``name`` (its rows read) until ``go_on``; worker B's runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        from ductape_jobs.store.postgres.dialect import PostgresTx

        self.name, self.paused, self.go_on = name, threading.Event(), threading.Event()
        all_, later = PostgresTx.all, PostgresTx.later

        def stop_after(sent: str) -> None:
            if sent == name and threading.current_thread().name == "A" and not self.paused.is_set():
                self.paused.set()
                assert self.go_on.wait(10)

        def all_then_stop(tx: PostgresTx, sent: str, params: Any = None) -> list[Any]:
            rows = all_(tx, sent, params)
            stop_after(sent)
            return rows

        def later_then_stop(tx: PostgresTx, sent: str, params: Any = None) -> Callable[[], list[Any]]:
            fetch = later(tx, sent, params)

            def fetched() -> list[Any]:
                rows = fetch()
                stop_after(sent)
                return rows

            return fetched

        monkeypatch.setattr(PostgresTx, "all", all_then_stop)
        monkeypatch.setattr(PostgresTx, "later", later_then_stop)

    def race(self, a: Store, a_wants: int, b: Store, b_wants: int) -> dict[str, list[str]]:
        """A claims and stops; B claims from start to end, which must not wait on A; then A goes on."""
        got: dict[str, list[str]] = {}

        def claim(store: Store, worker: str, limit: int) -> None:
            got[worker] = [r.id for r in store.acquire_runs(worker, limit, LEASE, T0)]

        thread_a = threading.Thread(target=claim, args=(a, "A", a_wants), name="A")
        thread_b = threading.Thread(target=claim, args=(b, "B", b_wants), name="B")
        thread_a.start()
        while not self.paused.is_set() and thread_a.is_alive():
            self.paused.wait(0.01)
        assert self.paused.is_set(), f"A's claim sent no {self.name}"
        thread_b.start()
        thread_b.join(5)
        waited = thread_b.is_alive()  # on a lock A holds
        self.go_on.set()
        thread_a.join(10)
        thread_b.join(10)
        assert not waited, "B waited for A's claim"
        assert sorted(got) == ["A", "B"]
        return got


@pytest.mark.parametrize(
    "paused_after",
    ["acquire_runs", "pick_limited_runs", "running_limit_keys", "lock_limited_runs", "claim_picked_runs"],
)
def test_a_claim_racing_another_never_takes_a_later_run_of_a_limit(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch, paused_after: str
) -> None:
    """Worker A's claim stops after one of its statements while worker B claims from start to end; then A goes on.
    Whatever the point, the limit of 1 goes to its first run, by either worker, and B never waits for A. (Picking
    runs with SKIP LOCKED before locking their limit let B, while A held the first run's row, take the limit with a
    later run: in a CI run a "normal" run started before every "high" one had.)"""
    setup = pg_backend.open()
    setup.define_resources([ResourceLimit("shop", "db", concurrency=1)], T0)
    low = backlog(setup, "load", 2, resources=["db"], priority=0)
    high = backlog(setup, "urgent", 2, resources=["db"], priority=50)
    got = _Paused(monkeypatch, paused_after).race(pg_backend.open(), 1, pg_backend.open(), 8)
    assert got["A"] + got["B"] == [high[0]]
    assert all(run_of(setup, i).phase is RunPhase.QUEUED for i in [high[1], *low])


def test_claims_that_pick_the_same_runs_under_different_limits_do_not_deadlock(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Limit b is full; its run is first in claim order, then a run under limit a. A (a batch of 1) locks b, finds
    it full and picks again; B (a batch of 2) picks both. Had B waited on b while holding a, and A then waited on
    a, the server would have aborted one as a deadlock (found by a review of a first form of this claim): B skips
    b, which A holds, and takes the run under a at once."""
    setup = pg_backend.open()
    setup.define_resources([ResourceLimit("shop", "a", concurrency=5), ResourceLimit("shop", "b", concurrency=1)], T0)
    backlog(setup, "fill", 1, resources=["b"])
    assert len(setup.acquire_runs("w0", 1, LEASE, T0)) == 1  # b is full
    (under_b,) = backlog(setup, "urgent", 1, resources=["b"], priority=50)
    (under_a,) = backlog(setup, "load", 1, resources=["a"])
    got = _Paused(monkeypatch, "running_limit_keys").race(pg_backend.open(), 1, pg_backend.open(), 2)
    assert got == {"A": [], "B": [under_a]}
    assert run_of(setup, under_b).phase is RunPhase.QUEUED
    assert "deadlock" not in caplog.text and "retrying" not in caplog.text


def test_a_run_passed_over_keeps_the_later_runs_of_its_other_limits_back(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Limit r has one slot. The first run is under s alone, the second under r and s, the third under r alone. A
    claims the first and stops holding s; B passes over the second (s is A's), and must not give r's slot to the
    third, which comes after it: r's slot goes in claim order, to the second, once s is free."""
    setup = pg_backend.open()
    setup.define_resources([ResourceLimit("shop", "r", concurrency=1), ResourceLimit("shop", "s", concurrency=5)], T0)
    (first,) = backlog(setup, "s-only", 1, resources=["s"], priority=100)
    (second,) = backlog(setup, "both", 1, resources=["r", "s"], priority=50)
    backlog(setup, "r-only", 1, resources=["r"], priority=0)
    got = _Paused(monkeypatch, "running_limit_keys").race(pg_backend.open(), 1, pg_backend.open(), 1)
    assert got == {"A": [first], "B": []}
    assert [r.id for r in setup.acquire_runs("C", 8, LEASE, T0)] == [second]


def _claim_while_held(backend: Backend, store: Store, query: str) -> list[str]:
    """One claim by ``store`` while a write of another kind holds the rows ``query`` locks (its transaction left
    open until the claim ends): the claim must end without waiting for them."""
    got: list[str] = []
    with psycopg.connect(PG_URL, options=f"-c search_path={backend.schema}") as conn:
        conn.execute(query.encode())
        claim = threading.Thread(target=lambda: got.extend(r.id for r in store.acquire_runs("w1", 8, LEASE, T0)))
        claim.start()
        claim.join(10)
        ended = not claim.is_alive()
        conn.rollback()
        claim.join(10)
    assert ended, "the claim waited for the rows another write holds"
    return got


def test_a_run_another_write_holds_is_passed_over_with_the_later_runs_of_its_limit(pg_backend: Backend) -> None:
    """A cancel, say, holds the first run's row: the claim does not wait for it, and does not give the limit's slot
    to the run after it; once the row is free, the first run is claimed."""
    setup = pg_backend.open()
    setup.define_resources([ResourceLimit("shop", "db", concurrency=1)], T0)
    first, later = backlog(setup, "load", 2, resources=["db"])
    assert _claim_while_held(pg_backend, setup, f"SELECT 1 FROM runs WHERE id = '{first}' FOR UPDATE") == []
    assert [r.id for r in setup.acquire_runs("w1", 8, LEASE, T0)] == [first]
    assert run_of(setup, later).phase is RunPhase.QUEUED


def test_a_limit_whose_row_another_write_holds_is_passed_over_not_waited_for(pg_backend: Backend) -> None:
    """A save of the limit's definition (an upsert) holds its row: the claim passes its runs over, and claims them
    once the row is free."""
    setup = pg_backend.open()
    setup.define_resources([ResourceLimit("shop", "db", concurrency=1)], T0)
    (run_id,) = backlog(setup, "load", 1, resources=["db"])
    assert _claim_while_held(pg_backend, setup, "UPDATE resources SET concurrency = 1") == []
    assert [r.id for r in setup.acquire_runs("w1", 8, LEASE, T0)] == [run_id]


def test_a_run_passed_over_is_looked_at_again_soon_not_at_once(pg_backend: Backend) -> None:
    """A set of limits passed over gets a short hold, as a full one gets its recheck: the workers' next_wakeup looks
    at its runs again after BUSY_RECHECK instead of at once (every worker claimed again and again while the row
    stayed held: about 500 claims a second in a review's run)."""
    setup = pg_backend.open()
    setup.define_resources([ResourceLimit("shop", "db", concurrency=1)], T0)
    first, _ = backlog(setup, "load", 2, resources=["db"])
    assert _claim_while_held(pg_backend, setup, f"SELECT 1 FROM runs WHERE id = '{first}' FOR UPDATE") == []
    assert setup.next_wakeup().run_due == T0 + timedelta(milliseconds=BUSY_RECHECK)
    assert {r.waiting_on for r in setup.waiting_runs(T0)} == {PASSED_OVER}


def test_a_run_that_a_full_limit_holds_keeps_no_later_run_of_its_other_limits_back(pg_backend: Backend) -> None:
    """r is full. The first run (r, t) is passed over (t is held by another transaction), the second (r, m) could
    not start anyway (r is full): it is held by r, as a full set is, and the run under m alone after it starts,
    m having room. (Passed over too, it kept m from the third run until t was free.)"""
    setup = pg_backend.open()
    setup.define_resources([ResourceLimit("shop", n, concurrency=c) for n, c in (("r", 1), ("t", 5), ("m", 5))], T0)
    (running,) = backlog(setup, "r-only", 1, resources=["r"], priority=100)
    assert [r.id for r in setup.acquire_runs("w0", 1, LEASE, T0)] == [running]  # r is full
    backlog(setup, "p", 1, resources=["r", "t"], priority=90)
    (x,) = backlog(setup, "x", 1, resources=["r", "m"], priority=80)
    (m,) = backlog(setup, "m", 1, resources=["m"], priority=0)
    assert _claim_while_held(pg_backend, setup, "UPDATE resources SET concurrency = 5 WHERE name = 't'") == [m]
    assert "concurrency of 'r'" in (run_of(setup, x).waiting_on or "")


def test_a_set_passed_over_keeps_a_full_limit_s_longer_hold_and_its_reason(pg_backend: Backend) -> None:
    """The set's limit is full (its recheck a second away); a claim that then passes the set over (the limit's row
    held by a save) leaves that hold as it is: the workers look again when the limit may have room, and the run
    still names the limit that holds it (a review saw a rate's minute replaced by 100 ms)."""
    setup = pg_backend.open()
    setup.define_resources([ResourceLimit("shop", "db", concurrency=1)], T0)
    first, second = backlog(setup, "load", 2, resources=["db"])
    assert [r.id for r in setup.acquire_runs("w0", 8, LEASE, T0)] == [first]  # full: the second is held
    assert _claim_while_held(pg_backend, setup, "UPDATE resources SET concurrency = 1") == []
    assert setup.next_wakeup().run_due == T0 + RECHECK_AFTER
    assert "concurrency of 'db'" in (run_of(setup, second).waiting_on or "")


def test_a_claim_writes_its_holds_in_one_order_whatever_holds_each_set(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holds of sets found full and of sets passed over go in limit_keys order: two claims writing the same rows in
    opposite orders deadlocked (a review forced it; each claim wrote its full sets, then its passed-over ones)."""
    from ductape_jobs.store.postgres.dialect import PostgresTx

    setup = pg_backend.open()
    setup.define_resources([ResourceLimit("shop", "a", concurrency=1), ResourceLimit("shop", "b", concurrency=1)], T0)
    backlog(setup, "fill", 1, resources=["b"], priority=100)
    assert len(setup.acquire_runs("w0", 1, LEASE, T0)) == 1  # b is full
    backlog(setup, "under-a", 1, resources=["a"], priority=50)
    backlog(setup, "under-b", 1, resources=["b"])
    written: list[list[str]] = []
    many = PostgresTx.many

    def recorded(tx: PostgresTx, name: str, params: Any) -> None:
        if name == "hold_limit_set":
            written.append([p["limit_keys"] for p in params])
        many(tx, name, params)

    monkeypatch.setattr(PostgresTx, "many", recorded)
    assert _claim_while_held(pg_backend, setup, "UPDATE resources SET concurrency = 1 WHERE name = 'a'") == []
    (keys,) = written
    assert len(keys) == 2 and keys == sorted(keys)  # a passed over, b full


@pytest.mark.parametrize(
    "api", [ResourceLimit("shop", "api", rate=Rate(1, timedelta(hours=1))), ResourceLimit("shop", "api", concurrency=1)]
)
def test_runs_under_a_limit_past_the_batch_are_not_held_by_runs_the_batch_left_out(
    store: Store, api: ResourceLimit
) -> None:
    """Two runs under no limit fill a batch of two ahead of two runs under a limit of one. The first of those is
    not claimed (the batch is full), so it must not count against the limit: the second is not held as if the
    limit were full (a review saw a rate's hour-long hold, and 'executing 1 of 1' with none executing). A later
    claim takes the first at once, and the workers' next look is not put off."""
    store.define_resources([api], T0)
    backlog(store, "free", 1, at=T0 - 2 * MIN)
    limited = backlog(store, "limited", 2, resources=["api"])
    assert [r.job_tag for r in store.acquire_runs("w1", 1, LEASE, T0)] == ["free"]  # the limited path from here
    backlog(store, "free", 2, at=T0 - MIN)
    assert [r.job_tag for r in store.acquire_runs("w1", 2, LEASE, T0)] == ["free", "free"]
    assert store.next_wakeup().run_due == T0 - timedelta(milliseconds=2)  # due, not held
    assert store.waiting_runs(T0) == []
    assert [r.id for r in store.acquire_runs("w2", 10, LEASE, T0)] == [limited[0]]


@pytest.mark.parametrize("to", [["narrow"], []])
def test_a_run_moved_under_other_limits_after_its_pick_is_judged_under_them(
    store: Store, monkeypatch: pytest.MonkeyPatch, to: list[str]
) -> None:
    """A probe on PostgreSQL: a job.update moving a backlog from a wide limit (concurrency 1,000) to a narrow one (1)
    committed between a claim's pick of the runs (read without a lock) and its lock of them, and the claim judged
    them under the wide one: 21 running under a concurrency of 1. Here the move is made at that point of the claim
    (its own transaction): the runs are judged under the limits they are under when locked."""
    store.define_resources(
        [ResourceLimit("shop", "wide", concurrency=100), ResourceLimit("shop", "narrow", concurrency=1)], T0
    )
    ids = backlog(store, "sync", 5, resources=["wide"])
    keys = [resource_key("shop", name) for name in to]
    real = limits_core._rooms
    moved: list[bool] = []

    def rooms_after_a_move(tx: Tx, picked: list[str], now: int) -> Any:
        if not moved:  # the first claim, after its pick: a job.update of the runs' limits commits
            params = {"limit_keys": dumps(keys) if keys else None, "tag": "sync", "product_tag": "shop"}
            tx.run("relimit_job_runs", params)
            moved.append(True)
        return real(tx, picked, now)

    monkeypatch.setattr(limits_core, "_rooms", rooms_after_a_move)
    got = store.acquire_runs("w1", 10, LEASE, T0)
    assert moved and got == []  # none under the limit it was picked under; the narrow one is not held by this claim
    later = T0 + timedelta(milliseconds=BUSY_RECHECK)
    got = store.acquire_runs("w2", 10, LEASE, later) + store.acquire_runs("w3", 10, LEASE, later)
    running = [run_of(store, i) for i in ids if run_of(store, i).phase is RunPhase.RUNNING]
    assert len(running) == (1 if keys else 5) == len(got)  # narrow: one at a time; no limit now: all of them
    assert all(run.limit_keys == tuple(keys) for run in running)
