"""Live streams of the outbox (``OutboxStore.open_stream`` and the rest), on SQLite and PostgreSQL: while a stream is
live every event is written, of every product, and read after a position in order; a stream resumes from a position
only when no event after it can be missing (else it starts at the newest event and says so); a stream whose lease
lapsed is expired by the pruner, which then drops the outbox's triggers (when no webhook wants them) and prunes the
events it pinned."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
from storekit import PG_URL, Backend
from test_contract import T0, ok, setup
from test_outbox_store import LEASE, hook, names, outbox_triggers, pending

from ductape_jobs.lifecycle import LifecycleEvent, StreamPosition, StreamStart
from ductape_jobs.retention import Retention
from ductape_jobs.store import Store

STREAM_LEASE = timedelta(seconds=30)
KEEP = Retention()


def read(store: Store, after: StreamPosition, expect: int) -> list[LifecycleEvent]:
    """The events after ``after``, once ``expect`` of them are readable (PostgreSQL: see ``pending``)."""
    deadline = time.monotonic() + 15
    while True:
        found = store.stream_events(after, 100)
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def run_one(store: Store, product_tag: str = "shop") -> str:
    """A schedule of ``product_tag`` with one run, claimed and completed: four events."""
    _, (run_id,) = setup(store, T0, product_tag=product_tag)
    (run,) = [r for r in store.acquire_runs("w1", 10, LEASE, T0) if r.id == run_id]
    store.finish_runs([ok(run)], T0)
    return run_id


def test_without_a_stream_or_a_webhook_nothing_is_written_and_no_trigger_exists(backend: Backend) -> None:
    store = backend.open()
    run_one(store)
    assert outbox_triggers(backend) == set()
    start = store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0)
    assert not start.gap and start.position.epoch == 1
    assert read(store, start.position, 0) == []  # what happened before the stream was not written


def test_a_live_stream_has_every_event_written_and_reads_them_in_order(backend: Backend) -> None:
    store = backend.open()
    hook(store, ["job.completed"], product_tag="blog")  # a webhook takes one name of another product only
    start = store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0)
    assert outbox_triggers(backend)
    shop_run = run_one(store)
    blog_run = run_one(store, "blog")
    events = read(store, start.position, 8)
    assert names(events) == ["job.scheduled", "run.queued", "job.started", "job.completed"] * 2
    assert [e.product_tag for e in events] == ["shop"] * 4 + ["blog"] * 4
    assert (events[3].run_id, events[7].run_id) == (shop_run, blog_run)
    assert [e.cursor for e in events] == sorted(e.cursor for e in events)
    middle = start.position.past(events[3])
    assert read(store, middle, 4) == events[4:]  # after a position: the rest, in order


def test_a_stream_resumes_from_a_position_without_loss_or_duplicates(backend: Backend) -> None:
    store = backend.open()
    first = store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0)
    run_one(store)
    events = read(store, first.position, 4)
    seen = first.position.past(events[1])  # the browser got two events, then its connection broke
    store.renew_stream("dashboard:a", first.position.past(events[-1]), T0 + STREAM_LEASE, T0)  # the server sent 4
    run_one(store)
    again = store.open_stream("dashboard:b", seen, T0 + STREAM_LEASE, T0)  # it reconnects: Last-Event-ID
    assert again.position == seen and not again.gap
    rest = read(store, again.position, 6)
    run = ["job.scheduled", "run.queued", "job.started", "job.completed"]
    assert names(rest) == run[2:] + run  # the two it missed, then the new ones
    assert rest[:2] == events[2:]


def test_a_stream_does_not_resume_past_pruned_events(backend: Backend) -> None:
    store = backend.open()
    start = store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0)
    run_one(store)
    events = read(store, start.position, 4)
    early = start.position.past(events[0])
    assert store.renew_stream("dashboard:a", start.position.past(events[-1]), T0 + STREAM_LEASE, T0)
    assert store.count_prunable(T0, KEEP).outbox >= 3  # read by every reader (SQLite keeps the newest row)
    store.prune(T0, KEEP, 100)
    resumed = store.open_stream("dashboard:b", early, T0 + STREAM_LEASE, T0)
    assert resumed.gap  # events after `early` are gone: the reader must reload
    assert resumed.position == start.position.past(events[-1])  # from the newest event on
    late = store.open_stream("dashboard:c", start.position.past(events[-1]), T0 + STREAM_LEASE, T0)
    assert not late.gap  # nothing after it was pruned


def test_the_pruner_keeps_what_a_live_stream_has_not_read(backend: Backend) -> None:
    store = backend.open()
    start = store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0)
    run_one(store)
    events = read(store, start.position, 4)
    assert store.count_prunable(T0, KEEP).outbox == 0  # the stream's cursor is still at its start
    store.renew_stream("dashboard:a", start.position.past(events[1]), T0 + STREAM_LEASE, T0)
    assert store.prune(T0, KEEP, 100).outbox == 2
    assert read(store, start.position.past(events[1]), 2) == events[2:]


def test_a_lapsed_stream_is_expired_its_triggers_dropped_and_its_events_pruned(backend: Backend) -> None:
    store = backend.open()
    start = store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0)
    run_one(store)
    read(store, start.position, 4)
    later = T0 + STREAM_LEASE + timedelta(seconds=1)
    assert store.count_prunable(later, KEEP).outbox >= 3  # a lapsed lease pins nothing, even before it is expired
    store.prune(later, KEEP, 100)
    assert outbox_triggers(backend) == set()  # no stream, no webhook: the hot path pays nothing again
    assert len(store.stream_events(StreamPosition(0, 0, 0), 100)) <= 1  # SQLite keeps the newest row
    assert not store.renew_stream("dashboard:a", start.position, later + STREAM_LEASE, later)  # it must reopen
    run_one(store)  # not written: nobody reads
    assert len(store.stream_events(StreamPosition(0, 0, 0), 100)) <= 1
    reopened = store.open_stream("dashboard:a", start.position, later + STREAM_LEASE, later)
    assert reopened.gap and reopened.position.epoch == 2  # events went unwritten since: a new epoch, reload


def test_a_stream_renewed_in_time_is_not_expired(backend: Backend) -> None:
    store = backend.open()
    start = store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0)
    at = T0 + timedelta(seconds=20)
    assert store.renew_stream("dashboard:a", start.position, at + STREAM_LEASE, at)
    assert store.expire_streams(T0 + STREAM_LEASE + timedelta(seconds=1)) == 0
    assert outbox_triggers(backend)
    assert store.expire_streams(at + STREAM_LEASE + timedelta(seconds=1)) == 1
    assert outbox_triggers(backend) == set()


def test_when_the_last_stream_lapses_only_what_webhooks_take_is_written_again(backend: Backend) -> None:
    store = backend.open()
    hook(store, ["job.completed"])
    start = store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0)
    run_one(store)
    assert names(read(store, start.position, 4)) == ["job.scheduled", "run.queued", "job.started", "job.completed"]
    assert store.expire_streams(T0 + STREAM_LEASE + timedelta(seconds=1)) == 1
    assert outbox_triggers(backend)  # the webhook still wants them
    webhooks_read = len(pending(store, 4))
    run_one(store)
    assert names(pending(store, webhooks_read + 1)[webhooks_read:]) == ["job.completed"]


def test_a_position_of_another_epoch_or_past_the_newest_event_is_not_resumed(backend: Backend) -> None:
    store = backend.open()
    start = store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0)
    run_one(store)
    newest = start.position.past(read(store, start.position, 4)[-1])
    future = StreamPosition(newest.epoch, newest.txid, newest.seq + 1000)
    assert store.open_stream("dashboard:b", future, T0 + STREAM_LEASE, T0).gap
    other_epoch = StreamPosition(newest.epoch + 1, newest.txid, newest.seq)
    assert store.open_stream("dashboard:c", other_epoch, T0 + STREAM_LEASE, T0).gap
    assert not store.open_stream("dashboard:d", newest, T0 + STREAM_LEASE, T0).gap


def test_postgres_a_stream_opening_during_an_outbox_prune_sees_what_it_pruned(pg_backend: Backend) -> None:
    """A pruner's outbox batch holds the outbox's marks from before it picks events until it commits; a stream
    opening meanwhile waits for it and then sees its pruned mark, so it cannot resume past events it deleted."""
    store = pg_backend.open()
    start = store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0)
    run_one(store)
    events = read(store, start.position, 4)
    got = start.position.past(events[0])  # the browser got one event; the server sent (and renewed to) all four
    store.renew_stream("dashboard:a", start.position.past(events[-1]), T0 + STREAM_LEASE, T0)
    pruner = psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema}")
    opened: list[StreamStart] = []
    try:
        pruner.execute("SELECT 1 FROM outbox_marks WHERE id = 1 FOR UPDATE")  # lock_outbox_marks
        opening = threading.Thread(
            target=lambda: opened.append(store.open_stream("dashboard:b", got, T0 + STREAM_LEASE, T0))
        )
        opening.start()
        deadline = time.monotonic() + 10
        while not pruner.execute(  # the opening stream waits for the pruner (on the marks' row lock)
            "SELECT 1 FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        ).fetchone():
            assert time.monotonic() < deadline, "the stream did not wait for the pruner"
            time.sleep(0.02)
        last = events[-2]  # the batch the pruner picked with the bound it read (stream a's cursor), and its mark
        pruner.execute("DELETE FROM outbox WHERE (txid, seq) <= (%s, %s)", [last.txid, last.seq])
        pruner.execute("UPDATE outbox_marks SET pruned_txid = %s, pruned_seq = %s WHERE id = 1", [last.txid, last.seq])
        pruner.commit()
        opening.join(timeout=10)
    finally:
        pruner.close()
    (resumed,) = opened
    assert resumed.gap  # events after `got` were pruned meanwhile: it says so rather than skip them


def test_postgres_the_first_stream_waits_for_writers_already_past_their_trigger(pg_backend: Backend) -> None:
    """With a webhook the triggers exist, and a writer whose trigger ran before the first stream's row was there
    wrote only what webhooks take: the stream waits for it to commit before it reads where it starts, so it
    never expects events that were not written."""
    store = pg_backend.open()
    hook(store, ["job.completed"])
    writer = psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema}")
    opened: list[StreamStart] = []
    try:
        writer.execute("LOCK TABLE runs IN ROW EXCLUSIVE MODE")  # a writer in flight (what an INSERT takes)
        opening = threading.Thread(
            target=lambda: opened.append(store.open_stream("dashboard:a", None, T0 + STREAM_LEASE, T0))
        )
        opening.start()
        deadline = time.monotonic() + 10
        while not writer.execute(  # the opening stream waits for the writer
            "SELECT 1 FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        ).fetchone():
            assert time.monotonic() < deadline, "the stream did not wait for the writer"
            time.sleep(0.02)
        assert not opened
        writer.commit()
        opening.join(timeout=10)
    finally:
        writer.close()
    assert len(opened) == 1
