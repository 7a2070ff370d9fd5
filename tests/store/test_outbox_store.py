"""The outbox of lifecycle events (``OutboxStore``), on SQLite and PostgreSQL: an event is written with the state
change it describes and rolled back with it, only when some webhook takes it, in order per schedule; a consumer
reads after its own cursor (one that was down catches up), and a relay that fails moves nothing."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from datetime import timedelta

import psycopg
import pytest
from storekit import PG_URL, Backend
from test_contract import T0, due_run, fail, job, ok, run_of, schedule, setup

from ductape_jobs.errors import NotFoundError
from ductape_jobs.lifecycle import LifecycleEvent, RunCancelled, RunCompleted, RunRetryScheduled, ScheduleCreated
from ductape_jobs.models import DeliveryStatus, RunPhase, ScheduleStatus, Webhook, WebhookDelivery
from ductape_jobs.retention import Retention
from ductape_jobs.store import ScheduleChange, Store
from ductape_jobs.store.sqlite.dialect import OUTBOX_TRIGGERS

LEASE = timedelta(seconds=30)
ALL = [
    "job.scheduled",
    "job.paused",
    "job.resumed",
    "job.cancelled",
    "run.queued",
    "job.started",
    "run.attempt_failed",
    "run.attempt_lost",
    "run.cancelled",
    "job.completed",
    "job.failed",
]


def hook(store: Store, events: list[str] = ALL, product_tag: str = "shop") -> Webhook:
    made = Webhook(f"wh_{len(store.list_webhooks())}", product_tag, "https://example.com/h", events, "s" * 20, T0)
    store.add_webhook(made)
    return made


def pending(store: Store, expect: int, consumer: str = "webhooks") -> list[LifecycleEvent]:
    """The events after ``consumer``'s cursor, once ``expect`` of them are readable. On PostgreSQL an event is
    read only once every transaction older than it ended, in the whole cluster: a transaction of another test
    still open delays it (never loses it), so this waits up to 15 s."""
    deadline = time.monotonic() + 15
    while True:
        found = store.pending_events(consumer, 100)
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def relay(store: Store, consumer: str, limit: int, collect: Collect, expect: int) -> int:
    """``relay_events`` once ``expect`` events are readable (see ``pending``)."""
    pending(store, expect, consumer)
    return store.relay_events(consumer, limit, T0, collect)


def names(events: Sequence[LifecycleEvent]) -> list[str]:
    return [e.name for e in events]


_ids = itertools.count()


class Collect:
    """A relay that keeps what it was given and queues one delivery per event for the first webhook."""

    def __init__(self) -> None:
        self.seen: list[LifecycleEvent] = []

    def __call__(self, events: Sequence[LifecycleEvent], hooks: Sequence[Webhook]) -> list[WebhookDelivery]:
        self.seen.extend(events)
        return [
            WebhookDelivery(f"dlv_{next(_ids)}", hooks[0].id, e.name, {"seq": e.seq}, DeliveryStatus.PENDING, 0, e.at)
            for e in events
        ]


def test_events_are_written_with_the_changes_they_describe_in_order(store: Store) -> None:
    hook(store)
    s, (run_id,) = setup(store, T0)
    assert names(pending(store, 2)) == ["job.scheduled", "run.queued"]
    (run,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.finish_runs([fail(run, retry_at=T0 + timedelta(seconds=1))], T0)
    (run,) = store.acquire_runs("w1", 1, LEASE, T0 + timedelta(seconds=1))
    store.finish_runs([ok(run, at=T0 + timedelta(seconds=2))], T0 + timedelta(seconds=2))
    events = pending(store, 6)
    assert names(events) == [
        "job.scheduled",
        "run.queued",
        "job.started",
        "run.attempt_failed",
        "job.started",
        "job.completed",
    ]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    created, retried, restarted, completed = events[0], events[3], events[4], events[-1]
    # the second attempt starts with no error, end or duration: the first attempt's are not its own
    started = restarted.payload()
    assert (started["attempt"], started["status"]) == (2, "running")
    assert (started["error"], started["duration_ms"], started["completed_at"]) == (None, None, None)
    assert isinstance(created, ScheduleCreated) and created.payload()["job_id"] == s.id
    assert isinstance(retried, RunRetryScheduled)
    assert retried.payload()["error"] == "RuntimeError: boom" and retried.payload()["attempt"] == 1
    assert retried.payload()["retry_at"] == (T0 + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert isinstance(completed, RunCompleted) and completed.run_id == run_id
    data = completed.payload()
    assert (data["status"], data["attempt"], data["job_tag"], data["run_id"]) == ("completed", 2, "report", run_id)
    assert data["completed_at"] == (T0 + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")  # as REST spells it


def test_an_attempt_lost_carries_no_earlier_attempts_error_or_duration(store: Store) -> None:
    """A run fails once (a retry), its second attempt is lost, its third lost too often: ``run.attempt_lost`` and
    the final ``job.failed`` carried the first attempt's error and duration, and the run kept that duration."""
    hook(store, ["run.attempt_lost", "job.failed"])
    _, (run_id,) = setup(store, T0)
    (run,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.finish_runs([fail(run, retry_at=T0 + timedelta(seconds=1))], T0)  # attempt 1: 5 ms, an error
    store.acquire_runs("w1", 1, LEASE, T0 + timedelta(seconds=1))
    store.rescue_expired(T0 + timedelta(minutes=5), max_rescues=5)  # attempt 2 lost: queued again
    store.acquire_runs("w1", 1, LEASE, T0 + timedelta(minutes=5))
    store.rescue_expired(T0 + timedelta(minutes=10), max_rescues=1)  # attempt 3 lost too often: failed
    lost, failed = pending(store, 2)
    assert (lost.name, failed.name) == ("run.attempt_lost", "job.failed")
    assert (lost.payload()["attempt"], lost.payload()["error"], lost.payload()["duration_ms"]) == (2, None, None)
    assert failed.payload()["attempt"] == 3 and "lost" in failed.payload()["error"]
    assert failed.payload()["duration_ms"] is None
    assert run_of(store, run_id).duration_ms is None


def test_a_run_that_fails_after_its_schedule_was_cancelled_ends_with_run_cancelled(store: Store) -> None:
    """A run running when its schedule is cancelled, whose attempt then fails with retries left, makes no retry and
    ends ``cancelled`` (``cancel_retry``): its last event was ``job.started``, so a subscriber never learned that
    it ended. It ends with ``run.cancelled``: the run's end, its error the schedule's reason; no retry event."""
    hook(store, ["job.started", "run.attempt_failed", "run.cancelled", "job.failed"])
    s, (run_id,) = setup(store, T0)
    (run,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.update_schedule(
        s.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED, reason="cancelled: gone", cancel_pending=True)
    )
    store.finish_runs([fail(run, at=T0 + timedelta(seconds=2), retry_at=T0 + timedelta(seconds=3))], T0)
    started, ended = pending(store, 2)
    assert names([started, ended]) == ["job.started", "run.cancelled"]
    assert isinstance(ended, RunCancelled) and ended.run_id == run_id
    data = ended.payload()
    assert (data["status"], data["error"], data["attempt"]) == ("cancelled", "cancelled: gone", 1)
    assert data["completed_at"] == (T0 + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    assert "retry_at" not in data
    assert run_of(store, run_id).phase is RunPhase.CANCELLED


def test_a_store_of_an_older_release_writes_run_cancelled_once_migrated(backend: Backend) -> None:
    """A store whose run trigger an older release made (SQLite: created while a webhook existed; PostgreSQL: its
    function) writes ``run.cancelled`` once migrated: version 25 replaces what version 24 left."""
    from ductape_jobs.store.sql import load_migrations, load_queries

    store = backend.open()
    hook(store, ["run.cancelled"])
    old = {v: sql for v, sql in load_migrations(f"ductape_jobs.store.{backend.name}.migrations")}
    if backend.name == "sqlite":  # the trigger as outbox.sql wrote it before version 25
        backend.execute("DROP TRIGGER outbox_run_changed", {})
        trigger = load_queries("ductape_jobs.store.sqlite", "outbox.sql")["create_outbox_run_changed"]
        line = "WHEN NEW.phase = 'cancelled' AND OLD.phase = 'running' THEN 'run.cancelled'"
        assert line in trigger
        backend.execute(trigger.replace(line, ""), {})
    else:  # the function as version 17 made it
        text = old[17]
        start = text.index("CREATE OR REPLACE FUNCTION ductape_outbox_run()")
        backend.execute(text[start : text.index("$$;", start) + 3], {})
    backend.execute("DELETE FROM schema_migrations WHERE version = 25", {})
    again = backend.open()
    s, _ = setup(again, T0)
    (run,) = again.acquire_runs("w1", 1, LEASE, T0)
    again.update_schedule(s.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED, cancel_pending=True))
    again.finish_runs([fail(run, retry_at=T0 + timedelta(seconds=3))], T0)
    assert 25 in old and 25 in backend.snapshot()["versions"]  # the open migrated it
    assert names(pending(again, 1)) == ["run.cancelled"]


def test_a_run_queued_has_every_run_field_and_after_job_retry_keeps_only_its_error(store: Store) -> None:
    """``run.queued`` of a new run had no ``completed_at``, ``duration_ms`` or ``error`` on SQLite (PostgreSQL wrote
    them ``null``); queued again by ``job.retry`` it carried the failed attempt's start and duration."""
    hook(store, ["run.queued"])
    _, (run_id,) = setup(store, T0)
    (run,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.finish_runs([fail(run, at=T0 + timedelta(seconds=1))], T0 + timedelta(seconds=1))  # failed for good
    store.retry_run(run_id, T0 + timedelta(seconds=2))
    created, again = (e.payload() for e in pending(store, 2))
    fields = {"started_at", "completed_at", "duration_ms", "error"}
    assert fields <= set(created) and all(created[f] is None for f in fields)
    assert (again["status"], again["error"]) == ("queued", "RuntimeError: boom")
    assert (again["started_at"], again["completed_at"], again["duration_ms"]) == (None, None, None)


def test_a_schedule_paused_resumed_cancelled_and_a_final_failure_are_events(store: Store) -> None:
    hook(store, ["job.paused", "job.resumed", "job.cancelled", "job.failed"])
    s, _ = setup(store, T0, pause_on_failure=True)
    (run,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.finish_runs([fail(run)], T0)  # fails for good and pauses its schedule, in one transaction
    store.update_schedule(s.id, T0, ScheduleChange(status=ScheduleStatus.ACTIVE))
    store.update_schedule(s.id, T0, ScheduleChange(status=ScheduleStatus.CANCELLED, cancel_pending=True))
    events = pending(store, 4)
    assert names(events) == ["job.failed", "job.paused", "job.resumed", "job.cancelled"]
    assert events[0].payload()["status"] == RunPhase.FAILED.value
    assert events[1].payload()["reason"].startswith("paused after run")


def test_only_events_some_webhook_of_the_product_takes_are_written(store: Store) -> None:
    setup(store, T0)  # no webhook at all
    hook(store, ["job.completed"], product_tag="blog")  # another product's
    hook(store, ["job.completed"])
    setup(store, T0)
    (run,) = store.acquire_runs("w1", 1, LEASE, T0)
    assert store.pending_events("webhooks", 10) == []
    store.finish_runs([ok(run)], T0)
    assert names(pending(store, 1)) == ["job.completed"]


def test_an_event_is_rolled_back_with_its_change(store: Store) -> None:
    hook(store)
    store.create_job(job("report"), T0)
    good = schedule("report")
    unknown = schedule("nope")
    with pytest.raises(NotFoundError):
        store.add_schedules([good, unknown], [due_run(good)])
    assert store.list_schedules() == [] and store.pending_events("webhooks", 10) == []


def test_a_consumer_reads_after_its_cursor_and_catches_up(store: Store) -> None:
    hook(store)
    setup(store, T0)
    first = Collect()
    assert relay(store, "webhooks", 10, first, 2) == 2
    assert names(first.seen) == ["job.scheduled", "run.queued"]
    assert store.relay_events("webhooks", 10, T0, first) == 0  # nothing new
    assert store.pending_events("webhooks", 10) == []

    setup(store, T0)  # while no relay runs ("down"), events wait in the outbox
    setup(store, T0)
    later = Collect()
    assert relay(store, "webhooks", 3, later, 4) == 3  # a batch at a time, oldest first
    assert store.relay_events("webhooks", 3, T0, later) == 1
    assert names(later.seen) == ["job.scheduled", "run.queued", "job.scheduled", "run.queued"]
    assert len(store.list_deliveries("wh_0", limit=100)) == 6  # one delivery per relayed event

    other = Collect()  # a consumer seen for the first time starts at the oldest event kept
    assert relay(store, "metrics", 100, other, 6) == 6
    assert [e.seq for e in other.seen] == [e.seq for e in first.seen + later.seen]


def test_a_relay_that_fails_moves_nothing(store: Store) -> None:
    hook(store)
    setup(store, T0)

    def broken(events: Sequence[LifecycleEvent], hooks: Sequence[Webhook]) -> list[WebhookDelivery]:
        raise RuntimeError("relay crashed")

    pending(store, 2)
    with pytest.raises(RuntimeError):
        store.relay_events("webhooks", 10, T0, broken)
    assert names(pending(store, 2)) == ["job.scheduled", "run.queued"]
    assert store.list_deliveries("wh_0") == []
    again = Collect()
    assert store.relay_events("webhooks", 10, T0, again) == 2


def test_events_read_by_every_consumer_are_pruned(store: Store) -> None:
    hook(store)
    setup(store, T0)
    keep = Retention()
    assert store.count_prunable(T0, keep).outbox == 0  # no consumer has read them
    relay(store, "webhooks", 1, Collect(), 2)
    relay(store, "metrics", 10, Collect(), 2)
    assert store.count_prunable(T0, keep).outbox == 1  # webhooks read one, metrics both
    assert store.prune(T0, keep, 100).outbox == 1
    assert names(store.pending_events("webhooks", 10)) == ["run.queued"]
    relay(store, "webhooks", 10, Collect(), 1)
    store.prune(T0, keep, 100)  # SQLite keeps the newest row: its seq is the rowid, never to go back
    setup(store, T0)  # seq goes on past every cursor: nothing is skipped
    assert names(pending(store, 2)) == ["job.scheduled", "run.queued"]


def test_postgres_a_relay_never_passes_an_event_whose_transaction_commits_later(pg_backend: Backend) -> None:
    """seq is drawn at insert: a transaction that drew a lower seq may commit after a higher one was committed.
    The relay waits for it rather than moving its cursor past it."""
    store = pg_backend.open()
    hook(store, ["job.completed"])
    _, (first_id, second_id) = setup(store, T0, T0 + timedelta(seconds=1))
    first, second = store.acquire_runs("w1", 2, LEASE, T0 + timedelta(seconds=1))
    slow = psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema}")
    try:
        slow.execute(  # completes the first run: its event takes the lower seq, but does not commit yet
            "UPDATE runs SET phase = 'completed', updated_at = %s WHERE id = %s", [1, first.id]
        )
        store.finish_runs([ok(second)], T0)  # the higher seq, committed first
        early = Collect()
        assert store.relay_events("webhooks", 10, T0, early) == 0  # not past the open transaction's event
        slow.commit()
        relay(store, "webhooks", 10, early, 2)
        assert sorted(e.run_id or "" for e in early.seen) == sorted([first_id, second_id])
    finally:
        slow.close()


def outbox_triggers(backend: Backend) -> set[str]:
    """The triggers on runs and schedules, read outside the store."""
    if backend.path is not None:
        import sqlite3

        db = sqlite3.connect(backend.path)
        try:
            found = db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        finally:
            db.close()
        return {r[0] for r in found}
    with psycopg.connect(PG_URL, options=f"-c search_path={backend.schema}") as conn:
        rows = conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid IN ('runs'::regclass, 'schedules'::regclass)"
            " AND NOT tgisinternal"
        ).fetchall()
        return {r[0] for r in rows}


def test_the_outbox_triggers_exist_only_while_some_webhook_does(backend: Backend) -> None:
    """With no webhook, a run's insert and phase changes fire no trigger at all (the hot path pays nothing); the
    first webhook creates them in its own transaction, the last one's deletion drops them."""
    store = backend.open()
    assert outbox_triggers(backend) == set()
    first, second = hook(store, ["job.completed"]), hook(store, ["job.completed"])
    present = outbox_triggers(backend)
    assert present and present <= {"outbox_run", "outbox_schedule", *OUTBOX_TRIGGERS}
    store.delete_webhook(first.id)
    assert outbox_triggers(backend) == present  # one webhook is left
    s = schedule("report")
    store.create_job(job("report"), T0)
    store.add_schedules([s], [due_run(s, T0)])
    assert [e.name for e in pending(store, 0)] == []  # job.completed only: nothing yet
    store.delete_webhook(second.id)
    assert outbox_triggers(backend) == set()


def test_sqlite_a_database_of_version_14_with_a_webhook_keeps_its_outbox_triggers(sqlite_only_backend: Backend) -> None:
    backend = sqlite_only_backend
    backend.migrate_to(14)
    backend.execute(
        "INSERT INTO webhooks (id, product_tag, url, events, secret, created_at)"
        " VALUES ('wh_old', 'shop', 'https://example.com/h', '[\"job.completed\"]', :secret, 0)",
        {"secret": "s" * 20},
    )
    assert outbox_triggers(backend) == set(OUTBOX_TRIGGERS)  # version 11's, always there
    backend.open()  # migrates to the latest: version 15 drops them, and the webhook brings them back at once
    assert outbox_triggers(backend) == set(OUTBOX_TRIGGERS)
