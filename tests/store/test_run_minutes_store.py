"""The runs' statistics survive pruning (``run_minutes``, migration 14), on every backend: a run the pruner deletes
is added to the statistics of the minute it ended in and of the minute it was due in, in the same transaction, so
``runs_per_minute`` (the dashboard) and ``run_stats`` (``job.stats``) answer the same before and after; those
minutes go after their own keep (``Retention.keep_stats``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from storekit import Backend
from test_retention_store import DAY, SEC, T0, add_run, add_schedule, prune_all, rows, run_to_end

from ductape_jobs.inputs import JobDefinition
from ductape_jobs.models import RunPhase
from ductape_jobs.retention import PruneCounts, Retention
from ductape_jobs.store import Outcome, ScheduleChange, Store

MIN = timedelta(minutes=1)
ALL = Retention(keep_completed=timedelta(0), keep_failed=timedelta(0))  # every finished run goes


def retried_then(store: Store, s: Any, ended: Any, *, ok: bool) -> str:
    """A run that fails its first attempt, is retried, and then completes (or fails for good) at ``ended``."""
    run_id = add_run(store, s, ended - 2 * MIN)
    (run,) = store.acquire_runs("w1", 1, timedelta(seconds=30), ended - MIN - SEC)
    failed = Outcome(run.id, run.attempt, "w1", False, ended - MIN, 5, error="x", retry_at=ended - SEC)
    store.finish_runs([failed], ended - MIN)
    (again,) = store.acquire_runs("w1", 1, timedelta(seconds=30), ended - SEC)
    assert again.id == run_id
    store.finish_runs([Outcome(run_id, again.attempt, "w1", ok, ended, 5, error=None if ok else "boom")], ended)
    return run_id


def history(store: Store) -> None:
    """Runs of two products over several minutes: completed, failed, retried, cancelled, and one still queued."""
    shop = add_schedule(store)
    blog = add_schedule(store, product_tag="blog", env="dev")
    for i in range(6):
        run_to_end(store, shop, T0 + i * 20 * SEC, ok=i % 3 != 0)
    run_to_end(store, blog, T0 + 30 * SEC)
    retried_then(store, shop, T0 + 3 * MIN, ok=True)
    retried_then(store, blog, T0 + 4 * MIN, ok=False)
    cancelled = add_schedule(store)
    add_run(store, cancelled, T0 + 5 * MIN)
    store.update_schedule(cancelled.id, T0 + 5 * MIN, ScheduleChange(cancel_pending=True))
    add_run(store, shop, T0 + 10 * DAY)  # queued far ahead: never pruned


def statistics(store: Store) -> list[Any]:
    window = (T0 - 10 * MIN, T0 + 10 * MIN)
    return [
        store.runs_per_minute(*window),
        store.runs_per_minute(*window, product_tag="blog"),
        store.runs_per_minute(T0 + MIN, T0 + 4 * MIN),
        store.run_stats(),
        store.run_stats(product_tag="shop", env="prd"),
        store.run_stats(env="dev"),
        store.run_stats(since=T0 - 10 * MIN, until=T0 + 2 * MIN),  # whole minutes
        store.run_stats(since=T0 - 3 * MIN, until=T0 + 5 * MIN),
    ]


def test_the_statistics_read_the_same_before_and_after_every_run_is_pruned(store: Store, backend: Backend) -> None:
    history(store)
    before = statistics(store)
    assert before[3].total == 11 and before[3].by_phase[RunPhase.CANCELLED] == 1  # the history is what it says
    assert before[3].completed_after_retry == 1 and before[3].average_retry_count is not None
    gone = prune_all(store, T0 + DAY, ALL)
    assert gone.runs == 10 and rows(backend, "runs") == 1  # only the queued run is left
    assert statistics(store) == before


def test_a_jobs_count_keep_that_prunes_recent_runs_leaves_the_statistics(store: Store) -> None:
    """A job that keeps only its newest 2 completed runs: the others go within the hour, the dashboard's runs per
    minute do not change."""
    store.create_job(
        JobDefinition(name="Report", tag="report", event_type="FUNCTION", event_tag="fn", keep_completed=2), T0
    )
    s = add_schedule(store)
    for i in range(7):
        run_to_end(store, s, T0 + i * 15 * SEC)
    now = T0 + 2 * MIN
    before = store.runs_per_minute(now - timedelta(hours=1), now)
    assert sum(m.completed for m in before) == 7
    assert prune_all(store, now).runs == 5
    assert store.runs_per_minute(now - timedelta(hours=1), now) == before


def test_the_statistics_go_after_their_own_keep_and_a_dry_run_counts_them(store: Store, backend: Backend) -> None:
    history(store)
    prune_all(store, T0 + DAY, ALL)
    minutes = rows(backend, "run_minutes")
    assert minutes > 0
    keep = Retention(keep_completed=timedelta(0), keep_failed=timedelta(0), keep_stats=30 * DAY)
    assert prune_all(store, T0 + 30 * DAY - 10 * MIN, keep) == PruneCounts()  # younger than their keep: kept
    assert store.count_prunable(T0 + 31 * DAY, keep) == PruneCounts(run_minutes=minutes)
    assert rows(backend, "run_minutes") == minutes  # a dry run deletes nothing
    batches = []
    while gone := store.prune(T0 + 31 * DAY, keep, 2).run_minutes:
        batches.append(gone)
    assert sum(batches) == minutes and max(batches) == 2  # batches of at most 2 rows, whatever the minute holds
    assert rows(backend, "run_minutes") == 0
    assert store.runs_per_minute(T0 - 10 * MIN, T0 + 10 * MIN) == []
    assert store.run_stats().total == 1  # the queued run


def test_a_window_counts_pruned_runs_by_whole_minutes(store: Store) -> None:
    """Kept runs are counted to the millisecond; pruned ones by the minute they were due in (``run_stats``) or ended
    in (``runs_per_minute``), when it lies wholly in the window: never one outside it."""
    s = add_schedule(store)
    run_to_end(store, s, T0 + 2 * MIN + 30 * SEC)  # due in the minute starting T0 + MIN
    half = {"since": T0 + MIN + 30 * SEC, "until": T0 + 3 * MIN}
    assert store.run_stats(since=T0 + MIN, until=T0 + 2 * MIN).total == 1
    prune_all(store, T0 + DAY, ALL)
    assert store.run_stats(since=T0 + MIN, until=T0 + 2 * MIN).total == 1  # the whole minute: counted
    assert store.run_stats(**half).total == 0  # the minute is cut: its pruned runs are left out
    assert store.runs_per_minute(T0 + 2 * MIN, T0 + 3 * MIN)[0].completed == 1  # it ended in that minute
    assert store.runs_per_minute(T0 + 2 * MIN + 40 * SEC, T0 + 3 * MIN) == []  # cut: it ended before 2:40
    assert store.runs_per_minute(T0 + 2 * MIN, T0 + 2 * MIN + 10 * SEC) == []  # cut: never one that ended after
