"""A schedule's history and the runs' statistics (``StatsStore.schedule_history`` and ``run_stats``), aggregated
by the database, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_contract import LEASE, MIN, T0, fail, ok, setup

from ductape_jobs.ids import new_id
from ductape_jobs.models import NewRun, RunPhase, Schedule, ScheduleStatus, TriggeredBy
from ductape_jobs.store import ScheduleChange, Store

SEC = timedelta(seconds=1)
END = T0 + 2 * MIN + SEC  # when the first batch ends
LATER = T0 + 5 * MIN + SEC  # when the retried run completes


def drive(store: Store) -> tuple[Schedule, dict[str, str]]:
    """Shop's schedule with five runs: completed at once, completed after a retry, manual and completed, failed
    for good, and running; and blog's (env dev) with a completed and a cancelled run."""
    s, (first, second, third, fourth) = setup(store, T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN)
    manual = NewRun(new_id("run"), s.id, T0 + MIN, T0 + MIN, RunPhase.QUEUED, TriggeredBy.MANUAL)
    store.trigger(s.id, manual)
    claimed = {r.id: r for r in store.acquire_runs("w1", 10, LEASE, T0 + 2 * MIN)}
    assert set(claimed) == {first, second, third, manual.id}
    outcomes = [
        ok(claimed[first], at=END, output={"n": 1}),
        fail(claimed[second], at=END, retry_at=T0 + 5 * MIN),
        ok(claimed[manual.id], at=END, output="by hand"),
        fail(claimed[third], at=END),
    ]
    store.finish_runs(outcomes, END)
    again = {r.id: r for r in store.acquire_runs("w1", 10, LEASE, T0 + 5 * MIN)}
    assert set(again) == {second, fourth}
    store.finish_runs([ok(again[second], at=LATER, output={"n": 2})], LATER)

    blog, _ = setup(store, T0 + 6 * MIN, T0 + 7 * MIN, product_tag="blog", env="dev")
    (blog_run,) = store.acquire_runs("w2", 1, LEASE, T0 + 7 * MIN)
    store.finish_runs([ok(blog_run, "w2", T0 + 7 * MIN)], T0 + 7 * MIN)
    store.update_schedule(blog.id, T0 + 8 * MIN, ScheduleChange(status=ScheduleStatus.CANCELLED, cancel_pending=True))
    return s, {"first": first, "second": second, "third": third, "fourth": fourth, "manual": manual.id}


# -------------------------------------------------------------------------------------------- history


def test_history_counts_every_run_and_numbers_the_newest_by_due_time(store: Store) -> None:
    s, ids = drive(store)
    history = store.schedule_history(s.id, 50)
    assert history is not None
    assert (history.job_id, history.job_tag) == (s.id, "report")
    assert (history.total, history.successful, history.failed) == (5, 3, 1)
    # newest first; the manual run and the occurrence due at the same instant are ordered by id
    tied = sorted([ids["second"], ids["manual"]])
    expected = [(5, ids["fourth"]), (4, ids["third"]), (3, tied[1]), (2, tied[0]), (1, ids["first"])]
    assert [(e.number, e.run_id) for e in history.executions] == expected
    by_id = {e.run_id: e for e in history.executions}

    done = by_id[ids["first"]]
    assert (done.phase, done.scheduled_at, done.started_at, done.completed_at) == (
        RunPhase.COMPLETED,
        T0,
        T0 + 2 * MIN,
        END,
    )
    assert (done.duration_ms, done.result, done.error, done.triggered_by) == (5, {"n": 1}, None, TriggeredBy.SCHEDULE)
    retried = by_id[ids["second"]]
    assert (retried.phase, retried.retry_count, retried.result, retried.completed_at) == (
        RunPhase.COMPLETED,
        1,
        {"n": 2},
        LATER,
    )
    assert (by_id[ids["manual"]].triggered_by, by_id[ids["manual"]].result) == (TriggeredBy.MANUAL, "by hand")
    failed = by_id[ids["third"]]
    assert (failed.phase, failed.error, failed.result) == (RunPhase.FAILED, "RuntimeError: boom", None)
    running = by_id[ids["fourth"]]
    assert (running.phase, running.started_at, running.completed_at, running.duration_ms) == (
        RunPhase.RUNNING,
        T0 + 5 * MIN,
        None,
        None,
    )


def test_history_keeps_its_counts_over_every_run_when_it_lists_fewer(store: Store) -> None:
    s, ids = drive(store)
    history = store.schedule_history(s.id, 2)
    assert history is not None
    assert (history.total, history.successful, history.failed) == (5, 3, 1)
    assert [(e.number, e.run_id) for e in history.executions] == [(5, ids["fourth"]), (4, ids["third"])]


def test_history_of_a_schedule_without_runs_is_empty_and_of_no_schedule_none(store: Store) -> None:
    s, _ = setup(store)
    history = store.schedule_history(s.id, 10)
    assert history is not None
    assert (history.job_tag, history.total, history.successful, history.failed, history.executions) == (
        "report",
        0,
        0,
        0,
        [],
    )
    assert store.schedule_history("job_nope", 10) is None


# ---------------------------------------------------------------------------------------------- stats


def test_stats_count_runs_by_phase_and_their_outcomes(store: Store) -> None:
    drive(store)
    shop = store.run_stats(product_tag="shop")
    assert {p: n for p, n in shop.by_phase.items() if n} == {
        RunPhase.COMPLETED: 3,
        RunPhase.FAILED: 1,
        RunPhase.RUNNING: 1,
    }
    assert set(shop.by_phase) == set(RunPhase)  # every phase, zeros included
    assert (shop.total, shop.finished, shop.success_rate) == (5, 4, 0.75)
    assert (shop.completed_first_try, shop.completed_after_retry, shop.average_retry_count) == (2, 1, 0.25)
    assert shop.product_tag == "shop" and shop.env is None

    every = store.run_stats()
    assert (every.total, every.finished, every.by_phase[RunPhase.CANCELLED]) == (7, 5, 1)
    assert (every.success_rate, every.completed_first_try) == (0.8, 3)
    blog = store.run_stats(env="dev")
    assert (blog.total, blog.by_phase[RunPhase.COMPLETED], blog.by_phase[RunPhase.CANCELLED]) == (2, 1, 1)
    assert (blog.success_rate, blog.average_retry_count) == (1.0, 0.0)
    assert store.run_stats(product_tag="shop", env="dev").total == 0


def test_stats_take_the_runs_due_in_a_window(store: Store) -> None:
    drive(store)
    window = store.run_stats(product_tag="shop", since=T0 + MIN, until=T0 + 3 * MIN)  # until is excluded
    assert (window.total, window.by_phase[RunPhase.COMPLETED], window.by_phase[RunPhase.FAILED]) == (3, 2, 1)
    assert (window.completed_first_try, window.completed_after_retry) == (1, 1)  # the manual run; the retried one
    assert window.average_retry_count == pytest.approx(1 / 3)
    assert window.success_rate == pytest.approx(2 / 3)
    assert (window.since, window.until) == (T0 + MIN, T0 + 3 * MIN)
    assert store.run_stats(since=T0 + 3 * MIN).total == 3  # the running run and blog's two
    assert store.run_stats(until=T0).total == 0


def test_stats_of_no_finished_run_have_no_rates(store: Store) -> None:
    setup(store, T0)
    stats = store.run_stats()
    assert (stats.total, stats.by_phase[RunPhase.QUEUED], stats.finished) == (1, 1, 0)
    assert (stats.success_rate, stats.average_retry_count) == (None, None)
    assert (stats.completed_first_try, stats.completed_after_retry) == (0, 0)
