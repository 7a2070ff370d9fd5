"""A job's own retention (``keep_completed`` / ``keep_failed``: a duration or a count), on every backend: its runs
of that outcome go by its rule and only by it, the other jobs' runs (another job of the same tag too) by the
client's, a dry run counts the same, and racing pruners delete each run once.

Times are fixed; ``now`` is passed.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from storekit import Backend
from test_retention_store import DAY, DEFAULT, SEC, T0, add_schedule, prune_all, rows, run_to_end

from ductape_jobs.errors import ValidationError
from ductape_jobs.inputs import JobDefinition
from ductape_jobs.models import Schedule, ScheduleStatus
from ductape_jobs.retention import MAX_KEEP_TIME, PruneCounts, Retention, parse_job_keep
from ductape_jobs.store import Store

HOUR = timedelta(hours=1)


def job_schedule(
    store: Store, tag: str, *, product: str = "", of: str = "shop", status: ScheduleStatus | None = None, **keeps: Any
) -> Schedule:
    """A schedule of product ``of`` running the job (product, tag), created with ``keeps`` if not there yet."""
    if store.get_job(product, tag) is None:
        job = JobDefinition(name=tag, tag=tag, product_tag=product or None, event_type="FUNCTION", event_tag="fn")
        store.create_job(job.model_copy(update=keeps), T0)
    more = {} if status is None else {"status": status}
    return add_schedule(store, job_tag=tag, job_product=product, product_tag=of, **more)


def runs_of(store: Store, ids: list[str]) -> list[str]:
    return [i for i in ids if store.get_run(i) is not None]


def test_a_jobs_duration_keeps_its_runs_of_that_outcome_and_the_client_keeps_the_rest(store: Store) -> None:
    short = job_schedule(store, "short", keep_completed=HOUR)
    other = job_schedule(store, "other")
    short_done = run_to_end(store, short, T0)
    short_failed = run_to_end(store, short, T0, ok=False)  # keep_failed unset: the client's 30 days
    other_done = run_to_end(store, other, T0)
    assert prune_all(store, T0 + HOUR - SEC) == PruneCounts()
    gone = prune_all(store, T0 + HOUR + SEC)
    assert (gone.runs, gone.attempts) == (1, 1)
    assert runs_of(store, [short_done, short_failed, other_done]) == [short_failed, other_done]
    assert prune_all(store, T0 + 7 * DAY + SEC).runs == 1  # the other job's completed run: the client's 7 days
    assert runs_of(store, [short_failed, other_done]) == [short_failed]
    assert prune_all(store, T0 + 30 * DAY + SEC).runs == 1


def test_a_job_that_keeps_longer_than_the_client_is_not_pruned_by_the_client(store: Store) -> None:
    long = job_schedule(store, "long", keep_completed=90 * DAY, keep_failed=timedelta(0))
    done = run_to_end(store, long, T0)
    failed = run_to_end(store, long, T0, ok=False)
    assert prune_all(store, T0 + SEC).runs == 1  # keep_failed 0: gone as soon as it ended
    assert prune_all(store, T0 + 89 * DAY).runs == 0  # past the client's 7 days, within the job's 90
    assert runs_of(store, [done, failed]) == [done]
    assert prune_all(store, T0 + 90 * DAY + SEC).runs == 1


def test_a_count_keeps_the_newest_runs_by_due_time(store: Store) -> None:
    s = job_schedule(store, "counted", keep_completed=3)
    done = [run_to_end(store, s, T0 + i * SEC) for i in range(8)]  # due in order
    failed = [run_to_end(store, s, T0 + (20 + i) * SEC, ok=False) for i in range(2)]
    gone = prune_all(store, T0 + 9 * SEC)  # a count does not wait for any age
    assert (gone.runs, gone.attempts) == (5, 5)
    assert runs_of(store, done) == done[-3:]
    assert runs_of(store, failed) == failed  # failed runs: the client's keep
    assert prune_all(store, T0 + 9 * SEC) == PruneCounts()  # idempotent
    assert prune_all(store, T0 + 1000 * DAY).runs == 2  # the failed ones, at last; the newest three stay
    assert runs_of(store, done) == done[-3:]


def test_a_count_of_zero_keeps_none_and_a_count_not_reached_prunes_nothing(store: Store) -> None:
    none = job_schedule(store, "none", keep_failed=0)
    few = job_schedule(store, "few", keep_failed=10)
    lost = [run_to_end(store, none, T0 + i * SEC, ok=False) for i in range(3)]
    kept = [run_to_end(store, few, T0 + (10 + i) * SEC, ok=False) for i in range(3)]
    assert prune_all(store, T0 + 20 * SEC).runs == 3
    assert runs_of(store, lost + kept) == kept


def test_another_products_job_of_the_same_tag_keeps_the_clients_rule(store: Store) -> None:
    own = job_schedule(store, "sync", product="shop", keep_completed=1)
    shared = job_schedule(store, "sync", of="mart")  # the shared job 'sync', run by another product: no keep
    own_runs = [run_to_end(store, own, T0 + i * SEC) for i in range(3)]
    shared_runs = [run_to_end(store, shared, T0 + (10 + i) * SEC) for i in range(3)]
    assert prune_all(store, T0 + DAY).runs == 2  # the shop's job keeps its newest one; the shared job's stay
    assert runs_of(store, own_runs + shared_runs) == own_runs[-1:] + shared_runs
    assert prune_all(store, T0 + 8 * DAY).runs == 3  # the shared job's, after the client's 7 days
    assert runs_of(store, own_runs + shared_runs) == own_runs[-1:]


def test_a_changed_or_cleared_keep_applies_at_the_next_prune(store: Store) -> None:
    s = job_schedule(store, "changing", keep_completed=5 * DAY)
    done = run_to_end(store, s, T0)
    assert prune_all(store, T0 + 2 * DAY).runs == 0
    store.update_job("", "changing", {"keep_completed": DAY}, T0)
    assert store.get_job("", "changing").keep_completed == DAY  # type: ignore[union-attr]
    store.update_job("", "changing", {"keep_completed": None}, T0)  # back to the client's 7 days
    assert store.get_job("", "changing").keep_completed is None  # type: ignore[union-attr]
    assert prune_all(store, T0 + 2 * DAY).runs == 0
    store.update_job("", "changing", {"keep_completed": DAY}, T0)
    assert prune_all(store, T0 + 2 * DAY).runs == 1
    assert store.get_run(done) is None


def test_a_dry_run_counts_the_jobs_own_keeps_too(store: Store, backend: Backend) -> None:
    counted_job = job_schedule(store, "counted", keep_completed=2)
    timed = job_schedule(store, "timed", keep_failed=HOUR)
    plain = add_schedule(store)
    for i in range(5):
        run_to_end(store, counted_job, T0 + i * SEC)
        run_to_end(store, timed, T0 + i * SEC, ok=False)
        run_to_end(store, plain, T0 + i * SEC)
    now = T0 + 2 * HOUR
    counted = store.count_prunable(now, DEFAULT)
    assert (counted.runs, counted.attempts) == (3 + 5, 3 + 5)  # the plain job's are younger than 7 days
    assert rows(backend, "runs") == 15
    assert prune_all(store, now) == counted
    later = T0 + 8 * DAY
    assert store.count_prunable(later, DEFAULT).runs == 5 == prune_all(store, later).runs


def test_a_dry_run_counts_the_ended_schedules_that_go_with_runs_a_jobs_own_keep_prunes(store: Store) -> None:
    """The count read the client's keeps only: an ended schedule whose run a job's own keep prunes (a duration, a
    count, or the client's keep for another product's job of that tag) was not counted, though the prune took it."""
    ended = {"status": ScheduleStatus.COMPLETED}
    for i in range(2):
        run_to_end(store, job_schedule(store, "short", keep_completed=HOUR, **ended), T0 + i * SEC)
    for i in range(3):
        run_to_end(store, job_schedule(store, "counted", keep_completed=1, **ended), T0 + i * SEC)
    run_to_end(store, job_schedule(store, "short", product="acme", **ended), T0)  # another product's: the client's
    long = job_schedule(store, "long", keep_completed=90 * DAY, **ended)
    run_to_end(store, long, T0)
    run_to_end(store, add_schedule(store, **ended), T0)
    now = T0 + 8 * DAY  # every schedule past the client's keep of it: it goes with its last run
    assert store.count_prunable(now, DEFAULT).schedules == 2 + 2 + 1 + 1
    assert prune_all(store, now).schedules == 2 + 2 + 1 + 1
    newest = [s for s in store.list_schedules() if s.job_tag == "counted"]
    assert sorted(s.id for s in store.list_schedules()) == sorted([long.id, *(s.id for s in newest)])
    assert len(newest) == 1  # the counted job's newest: its run is kept, and so is it


def test_the_clients_keep_when_no_job_has_its_own_is_unchanged(store: Store) -> None:
    s = add_schedule(store)
    done = [run_to_end(store, s, T0 + i * SEC) for i in range(3)]
    keep = Retention(keep_completed=HOUR)
    assert prune_all(store, T0 + HOUR + 3 * SEC, keep).runs == 3
    assert runs_of(store, done) == []


def test_racing_pruners_of_a_counted_job_delete_each_run_once(backend: Backend) -> None:
    first = backend.open()
    schedules = [job_schedule(first, "raced", keep_completed=10) for _ in range(3)]
    for i in range(90):
        run_to_end(first, schedules[i % 3], T0 + i * SEC)
    second = backend.open()
    totals: list[int] = []
    errors: list[BaseException] = []

    def pruner(store: Store) -> None:
        try:
            total = 0
            while n := store.prune(T0 + DAY, DEFAULT, 7).runs:
                total += n
            totals.append(total)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pruner, args=(st,)) for st in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(totals) == 2
    assert sum(totals) == 80 and rows(backend, "runs") == 10


@pytest.mark.parametrize(
    ("given", "rule"),
    [
        ("36501d", "is longer than 36500d"),
        ("800000d", "is longer than 36500d"),
        ("99999999999999999999d", "is neither a duration"),
        ("none", "is neither a duration (a number and s, m, h, d or w: 7d, 12h) nor a number of runs (100)"),
        ("99999999999", "a number of runs must be between 0 and 10,000,000"),
        ("\u00b2", "is neither a duration"),  # a superscript two: a digit to str.isdigit, not to int()
        ("\uff11\uff12", "is neither a duration"),  # fullwidth digits
        (timedelta(days=36_501), "must be at most 36500 days"),
    ],
)
def test_a_keep_past_a_hundred_years_or_not_in_ascii_digits_is_refused_naming_its_field(given: Any, rule: str) -> None:
    """Past 100 years ``now - keep`` leaves the calendar: the pruner of every worker failed at each pass."""
    with pytest.raises(ValidationError) as refused:
        parse_job_keep(given, "keep_completed")
    assert refused.value.field == "keep_completed" and rule in str(refused.value)
    with pytest.raises(ValidationError, match="must be at most 36500 days"):
        Retention(keep_failed=timedelta(days=36_501))
    assert parse_job_keep("36500d", "keep_completed") == MAX_KEEP_TIME


def test_a_keep_stored_past_the_bound_prunes_as_the_most_kept(store: Store, backend: Backend) -> None:
    """A job whose keep was stored before the bound was checked: read as 100 years, and the prune goes on."""
    old = job_schedule(store, "old", keep_completed=HOUR)
    done = run_to_end(store, old, T0)
    placeholder = ":v" if backend.path is not None else "%(v)s"
    backend.execute(f"UPDATE jobs SET keep_completed = {placeholder}", {"v": "800000d"})
    assert store.get_job("", "old").keep_completed == MAX_KEEP_TIME  # type: ignore[union-attr]
    assert prune_all(store, T0 + 8 * DAY) == PruneCounts()
    assert runs_of(store, [done]) == [done]
