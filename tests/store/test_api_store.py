"""The store methods the HTTP API needs (API keys, webhooks and deliveries, statistics, product filters),
against every backend (see ``conftest.py``). Times are fixed; ``now`` is passed."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from storekit import Backend, paged

from ductape_jobs.apikeys import ApiKeys, hash_key, new_key
from ductape_jobs.clock import FakeClock
from ductape_jobs.errors import ConflictError, NotFoundError, ValidationError
from ductape_jobs.ids import new_id
from ductape_jobs.inputs import JobDefinition
from ductape_jobs.models import (
    ApiKey,
    DeliveryStatus,
    KeyScope,
    LoginSession,
    MinuteCount,
    NewRun,
    RunFilter,
    RunPhase,
    Schedule,
    ScheduleStatus,
    TriggeredBy,
    Webhook,
    WebhookDelivery,
)
from ductape_jobs.store import Outcome, ScheduleChange, Store
from ductape_jobs.store.codec import ms
from ductape_jobs.store.sql import load_migrations

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
LEASE = timedelta(seconds=30)
HOUR = timedelta(hours=1)


def add_schedule(
    store: Store, *, product: str = "shop", env: str = "prd", next_run_at: datetime | None = None, **extra: Any
) -> Schedule:
    if store.get_job("", "report") is None:
        store.create_job(JobDefinition(name="Report", tag="report", event_type="FUNCTION", event_tag="fn"), T0)
    s = Schedule(
        id=new_id("job"),
        job_tag="report",
        env=env,
        product_tag=product,
        input={},
        retries=0,
        status=ScheduleStatus.ACTIVE,
        start_at=T0,
        next_run_at=next_run_at,
        run_count=0,
        created_at=T0,
        **extra,
    )
    store.add_schedules([s], [])
    return s


def add_run(store: Store, s: Schedule, at: datetime) -> str:
    run = NewRun(new_id("run"), s.id, at, at, RunPhase.QUEUED, TriggeredBy.SCHEDULE)
    store.trigger(s.id, run)
    return run.id


def run_to_end(store: Store, s: Schedule, due: datetime, started: datetime, ended: datetime, ok: bool) -> str:
    run_id = add_run(store, s, due)
    (run,) = store.acquire_runs("w1", 1, LEASE, started)
    assert run.id == run_id
    store.finish_runs([Outcome(run.id, run.attempt, "w1", ok, ended, 5, error=None if ok else "boom")], ended)
    return run_id


# ------------------------------------------------------------------------------------------ API keys


def key(prefix: str = "dtk_0123456789ab", **extra: Any) -> ApiKey:
    fields: dict[str, Any] = {"id": new_id("key"), "name": "ci", "prefix": prefix, "hash": "h", "created_at": T0}
    return ApiKey(**{**fields, **extra})


def test_api_keys_add_find_list_touch_revoke(store: Store) -> None:
    first = key()
    scoped = key("dtk_ba9876543210", product_tag="shop", env="prd", created_at=T0 + MIN)
    store.add_api_key(first)
    store.add_api_key(scoped)
    assert store.find_api_key(first.prefix) == first
    assert store.find_api_key("dtk_unknown") is None
    assert [k.id for k in store.list_api_keys()] == [scoped.id, first.id]  # newest first
    found = store.find_api_key(scoped.prefix)
    assert found is not None and (found.product_tag, found.env) == ("shop", "prd")

    store.touch_api_key(first.id, T0 + 2 * MIN)
    store.touch_api_key(first.id, T0 + MIN)  # never moves back
    touched = store.find_api_key(first.prefix)
    assert touched is not None and touched.last_used_at == T0 + 2 * MIN

    revoked = store.revoke_api_key(first.id, T0 + 3 * MIN)
    assert revoked.revoked_at == T0 + 3 * MIN
    assert store.revoke_api_key(first.id, T0 + 4 * MIN).revoked_at == T0 + 3 * MIN  # the first time stays
    with pytest.raises(NotFoundError):
        store.revoke_api_key("key_missing", T0)


def test_an_api_key_prefix_is_unique(store: Store) -> None:
    store.add_api_key(key())
    with pytest.raises(ConflictError):
        store.add_api_key(key())
    assert len(store.list_api_keys()) == 1


# ------------------------------------------------------------------------------------------ webhooks


def webhook(product: str = "shop", **extra: Any) -> Webhook:
    fields: dict[str, Any] = {
        "id": new_id("wh"),
        "product_tag": product,
        "url": "http://127.0.0.1:9/hook",
        "events": ["job.completed", "job.failed"],
        "secret": "whsec_test",
        "created_at": T0,
    }
    return Webhook(**{**fields, **extra})


def delivery(w: Webhook, at: datetime = T0, event: str = "job.completed") -> WebhookDelivery:
    return WebhookDelivery(
        id=new_id("dlv"),
        webhook_id=w.id,
        event=event,
        payload={"event": event, "data": {"run_id": "run_1"}},
        status=DeliveryStatus.PENDING,
        attempts=0,
        created_at=at,
        next_attempt_at=at,
    )


def test_webhooks_add_list_delete(store: Store) -> None:
    a = webhook("shop")
    b = webhook("blog", created_at=T0 + SEC)
    store.add_webhook(a)
    store.add_webhook(b)
    assert store.list_webhooks() == [a, b]
    assert store.list_webhooks(product_tag="blog") == [b]
    assert (store.get_webhook(b.id), store.get_webhook("nope")) == (b, None)
    # an id no id can be: a lone surrogate is refused by both, a NUL by PostgreSQL (SQLite keeps it: not found)
    with pytest.raises(ValidationError) as raised:
        store.get_webhook("a\udce9b")
    assert raised.value.field == "id"
    if store.capabilities.skip_locked:  # PostgreSQL
        with pytest.raises(ValidationError, match=r"^id: must not contain a NUL character"):
            store.get_webhook("a\x00b")
    else:
        assert store.get_webhook("a\x00b") is None
    store.enqueue_deliveries([delivery(a)])
    store.delete_webhook(a.id)
    assert store.list_webhooks() == [b]
    assert store.list_deliveries(a.id) == []  # its deliveries went with it
    with pytest.raises(NotFoundError):
        store.delete_webhook(a.id)


def test_deliveries_are_claimed_under_a_lease_and_recorded(store: Store) -> None:
    w = webhook()
    store.add_webhook(w)
    first, second, later = delivery(w, T0), delivery(w, T0 + SEC), delivery(w, T0 + MIN)
    store.enqueue_deliveries([first, second, later])
    store.enqueue_deliveries([delivery(webhook())])  # an unknown (deleted) webhook: dropped

    due = store.due_deliveries(T0 + SEC, 10, LEASE)
    assert [d.delivery.id for d in due] == [first.id, second.id]
    assert {(d.url, d.secret) for d in due} == {(w.url, w.secret)}
    assert due[0].delivery.payload == first.payload
    assert store.due_deliveries(T0 + SEC, 10, LEASE) == []  # claimed: nobody else takes them

    store.record_delivery(first.id, T0 + 2 * SEC, ok=True)
    store.record_delivery(second.id, T0 + 2 * SEC, ok=False, error="HTTP 500", retry_at=T0 + 4 * SEC)
    store.release_webhooks([w.id], T0 + SEC + LEASE)  # sent: as a sender lets its webhooks go
    by_id = {d.id: d for d in store.list_deliveries(w.id)}
    assert by_id[first.id].status is DeliveryStatus.DELIVERED
    assert (by_id[first.id].attempts, by_id[first.id].delivered_at) == (1, T0 + 2 * SEC)
    assert by_id[second.id].status is DeliveryStatus.PENDING
    assert (by_id[second.id].attempts, by_id[second.id].last_error) == (1, "HTTP 500")
    assert by_id[second.id].next_attempt_at == T0 + 4 * SEC

    again = store.due_deliveries(T0 + 5 * SEC, 10, LEASE)
    assert [d.delivery.id for d in again] == [second.id]
    store.record_delivery(second.id, T0 + 5 * SEC, ok=False, error="HTTP 500 again")
    store.release_webhooks([w.id], T0 + 5 * SEC + LEASE)
    failed = {d.id: d for d in store.list_deliveries(w.id)}[second.id]
    assert (failed.status, failed.attempts, failed.next_attempt_at) == (DeliveryStatus.FAILED, 2, None)
    store.record_delivery(second.id, T0 + 6 * SEC, ok=True)  # a finished delivery does not change any more
    assert {d.id: d for d in store.list_deliveries(w.id)}[second.id].status is DeliveryStatus.FAILED

    # A sender that died: its claim lapses after the lease and the delivery is due again.
    assert [d.delivery.id for d in store.due_deliveries(T0 + 2 * MIN, 10, LEASE)] == [later.id]
    assert [d.delivery.id for d in store.due_deliveries(T0 + 2 * MIN + LEASE, 10, LEASE)] == [later.id]
    assert [d.id for d in store.list_deliveries(w.id, limit=2)] == [later.id, second.id]  # newest first


def test_deliveries_after_a_delivery_page_through_every_one_once_in_order(store: Store) -> None:
    """Deliveries made at one instant (tied by their making) go by their ids, each once; a delivery of another
    webhook is no cursor of this one's list, as an unknown id is not."""
    w, other = webhook(), webhook()
    store.add_webhook(w)
    store.add_webhook(other)
    made = [delivery(w, T0 + (i // 3) * SEC) for i in range(8)]
    theirs = delivery(other)
    store.enqueue_deliveries([*made, theirs])

    def ids(**page: Any) -> list[str]:
        return [d.id for d in store.list_deliveries(w.id, **page)]

    whole = ids()
    assert sorted(whole) == sorted(d.id for d in made)
    assert paged(ids, 3) == whole
    assert ids(after=whole[0], offset=1, limit=2) == whole[2:4]  # an offset counts past the cursor
    for outside in (theirs.id, "dlv_none"):
        with pytest.raises(NotFoundError) as found:
            store.list_deliveries(w.id, after=outside)
        assert found.value.kind == "webhook delivery"


def test_the_delivery_backlog_counts_those_still_to_send_and_the_oldest(store: Store) -> None:
    assert store.delivery_backlog() == (0, None)
    w = webhook()
    store.add_webhook(w)
    first, second = delivery(w, T0), delivery(w, T0 + SEC)
    store.enqueue_deliveries([first, second, delivery(w, T0 + MIN)])
    assert store.delivery_backlog() == (3, T0)
    store.due_deliveries(T0 + SEC, 10, LEASE)
    store.record_delivery(first.id, T0 + 2 * SEC, ok=True)
    store.record_delivery(second.id, T0 + 2 * SEC, ok=False, error="HTTP 500", retry_at=T0 + 4 * SEC)  # to try again
    assert store.delivery_backlog() == (2, T0 + SEC)
    store.record_delivery(second.id, T0 + 5 * SEC, ok=False, error="HTTP 500")  # failed for good
    assert store.delivery_backlog() == (1, T0 + MIN)


def test_racing_senders_claim_each_delivery_once(backend: Backend) -> None:
    stores = [backend.open() for _ in range(4)]
    w = webhook()
    stores[0].add_webhook(w)
    made = [delivery(w, T0 + i * timedelta(milliseconds=1)) for i in range(60)]
    stores[0].enqueue_deliveries(made)
    by_id = {d.id: d for d in made}
    claimed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(stores))

    def sender(s: Store) -> None:
        barrier.wait(timeout=10)
        while True:
            batch = s.due_deliveries(T0 + SEC, 7, LEASE)
            if batch:
                with lock:
                    claimed.extend(d.delivery.id for d in batch)
                s.release_webhooks([w.id], T0 + SEC + LEASE)  # sent: the next batch may be anyone's
            elif not s.list_deliveries(w.id, limit=1) or len(claimed) == 60:
                return

    threads = [threading.Thread(target=sender, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(claimed) == 60 and len(set(claimed)) == 60
    # one sender at a time holds the webhook: its batches follow one another, each delivery after the one before
    assert claimed == sorted(claimed, key=lambda i: (by_id[i].created_at, i))


def test_one_sender_at_a_time_holds_a_webhook_so_its_events_arrive_in_order(backend: Backend) -> None:
    """Two worker processes each took due deliveries of one webhook and sent them at once: a schedule's
    ``job.completed`` reached it before its ``job.scheduled``. A sender now holds the webhooks it claims for, and
    another takes none of their deliveries until it lets them go; other webhooks' deliveries it takes meanwhile."""
    a, b = backend.open(), backend.open()
    w, other = webhook(), webhook()
    a.add_webhook(w)
    a.add_webhook(other)
    first, second = delivery(w, T0), delivery(w, T0 + SEC)
    a.enqueue_deliveries([first])
    assert [d.delivery.id for d in a.due_deliveries(T0 + SEC, 1, LEASE)] == [first.id]
    a.enqueue_deliveries([second, elsewhere := delivery(other, T0 + SEC)])
    # b: none of w's while a holds it (a sends first before second), other's at once
    assert [d.delivery.id for d in b.due_deliveries(T0 + 2 * SEC, 10, LEASE)] == [elsewhere.id]
    b.record_delivery(elsewhere.id, T0 + 2 * SEC, ok=True)
    a.record_delivery(first.id, T0 + 2 * SEC, ok=True)
    a.release_webhooks([w.id], T0 + SEC + LEASE)
    b.release_webhooks([other.id], T0 + 2 * SEC + LEASE)
    assert [d.delivery.id for d in b.due_deliveries(T0 + 3 * SEC, 10, LEASE)] == [second.id]
    # a sender that died lets it go at its lease's end
    a.enqueue_deliveries([third := delivery(w, T0 + 3 * SEC)])
    assert a.due_deliveries(T0 + 4 * SEC, 10, LEASE) == []  # b holds w (and has not let it go)
    assert [d.delivery.id for d in a.due_deliveries(T0 + 4 * SEC + LEASE, 10, LEASE)] == [second.id, third.id]


def test_deliveries_a_sender_let_go_unsent_are_due_at_once_in_their_place(backend: Backend) -> None:
    """A sender whose hold would not outlast another send stops and lets the webhook go with the rest of its claim:
    those deliveries are due at once (not at the lease's end), before the webhook's later events."""
    a, b = backend.open(), backend.open()
    w = webhook()
    a.add_webhook(w)
    first, second, third = delivery(w, T0), delivery(w, T0 + SEC), delivery(w, T0 + 2 * SEC)
    a.enqueue_deliveries([first, second, third])
    assert [d.delivery.id for d in a.due_deliveries(T0 + 2 * SEC, 10, LEASE)] == [first.id, second.id, third.id]
    a.record_delivery(first.id, T0 + 3 * SEC, ok=True)
    a.enqueue_deliveries([later := delivery(w, T0 + 4 * SEC)])
    a.release_webhooks([w.id], T0 + 2 * SEC + LEASE, unsent=[second.id, third.id])
    assert [d.delivery.id for d in b.due_deliveries(T0 + 5 * SEC, 10, LEASE)] == [second.id, third.id, later.id]
    by_id = {d.id: d for d in b.list_deliveries(w.id)}
    assert (by_id[second.id].attempts, by_id[first.id].status) == (0, DeliveryStatus.DELIVERED)
    # let go late, after another sender took them (its claim, a later lease): left as they are
    b.release_webhooks([w.id], T0 + 2 * SEC + LEASE, unsent=[second.id])
    assert a.due_deliveries(T0 + 6 * SEC, 10, LEASE) == []


# ----------------------------------------------------------------------------------- product filters


def test_schedules_and_runs_filter_by_product_and_env(store: Store) -> None:
    shop_prd = add_schedule(store, product="shop", env="prd")
    shop_dev = add_schedule(store, product="shop", env="dev")
    blog = add_schedule(store, product="blog", env="prd")
    runs = {s.id: add_run(store, s, T0) for s in (shop_prd, shop_dev, blog)}

    def schedules(**kw: Any) -> set[str]:
        return {s.id for s in store.list_schedules(**kw)}

    def run_ids(**kw: Any) -> set[str]:
        return {r.id for r in store.list_runs(RunFilter(**kw))}

    assert schedules(product_tag="shop") == {shop_prd.id, shop_dev.id}
    assert schedules(product_tag="shop", env="dev") == {shop_dev.id}
    assert schedules(env="prd") == {shop_prd.id, blog.id}
    assert schedules(product_tag="none") == set()
    assert run_ids(product_tag="shop") == {runs[shop_prd.id], runs[shop_dev.id]}
    assert run_ids(product_tag="blog", env="prd") == {runs[blog.id]}
    assert run_ids(product_tag="blog", env="dev") == set()


# ---------------------------------------------------------------------------------------- statistics


def test_runs_per_minute_counts_ended_runs_by_minute(store: Store) -> None:
    shop = add_schedule(store)
    blog = add_schedule(store, product="blog")
    run_to_end(store, shop, T0, T0, T0 + 10 * SEC, ok=True)
    run_to_end(store, shop, T0 + SEC, T0 + SEC, T0 + 50 * SEC, ok=False)
    run_to_end(store, shop, T0 + 2 * SEC, T0 + 2 * SEC, T0 + MIN + SEC, ok=True)
    run_to_end(store, blog, T0 + 3 * SEC, T0 + 3 * SEC, T0 + MIN + 2 * SEC, ok=True)
    cancelled = add_schedule(store)
    add_run(store, cancelled, T0 + 5 * SEC)
    store.update_schedule(
        cancelled.id, T0 + 20 * SEC, ScheduleChange(status=ScheduleStatus.CANCELLED, cancel_pending=True)
    )

    assert store.runs_per_minute(T0, T0 + 5 * MIN) == [
        MinuteCount(T0, completed=1, failed=1),
        MinuteCount(T0 + MIN, completed=2, failed=0),
    ]
    assert store.runs_per_minute(T0, T0 + 5 * MIN, product_tag="blog") == [MinuteCount(T0 + MIN, 1, 0)]
    assert store.runs_per_minute(T0, T0 + 5 * MIN, product_tag="shop", env="dev") == []
    assert store.runs_per_minute(T0 + MIN, T0 + MIN + 2 * SEC) == [MinuteCount(T0 + MIN, 1, 0)]  # until: excluded


def test_lateness_sample_covers_ended_and_running_runs_started_since(store: Store) -> None:
    s = add_schedule(store)
    run_to_end(store, s, T0, T0 + 2 * SEC, T0 + 3 * SEC, ok=True)  # 2 s late
    run_to_end(store, s, T0 + MIN, T0 + MIN + SEC // 2, T0 + 2 * MIN, ok=False)  # 0.5 s late
    add_run(store, s, T0 + 3 * MIN)
    store.acquire_runs("w1", 1, LEASE, T0 + 3 * MIN + 4 * SEC)  # running, 4 s late
    add_run(store, s, T0 + 4 * MIN)  # not started: not in the sample
    sample = store.lateness_sample(T0, 100)
    assert sorted(sample) == [SEC // 2, 2 * SEC, 4 * SEC]
    assert store.lateness_sample(T0, 1) == [4 * SEC]  # the latest first
    assert store.lateness_sample(T0 + 30 * SEC, 100) == [4 * SEC, SEC // 2]
    assert store.lateness_sample(T0, 100, product_tag="blog") == []


def test_queue_depth_counts_due_unclaimed_runs(store: Store) -> None:
    s = add_schedule(store)
    blog = add_schedule(store, product="blog")
    add_run(store, s, T0)
    add_run(store, s, T0 + SEC)
    add_run(store, s, T0 + MIN)  # not due yet
    add_run(store, blog, T0)
    assert store.queue_depth(T0 + SEC) == 3
    assert store.queue_depth(T0 + SEC, product_tag="shop") == 2
    store.acquire_runs("w1", 1, LEASE, T0 + SEC)
    assert store.queue_depth(T0 + SEC) == 2
    assert store.queue_depth(T0 + MIN, product_tag="shop", env="prd") == 2


def test_next_due_schedules_soonest_first(store: Store) -> None:
    later = add_schedule(store, next_run_at=T0 + 2 * MIN)
    soon = add_schedule(store, next_run_at=T0 + MIN)
    add_schedule(store, next_run_at=None)
    paused = add_schedule(store, next_run_at=T0)
    store.update_schedule(paused.id, T0, ScheduleChange(status=ScheduleStatus.PAUSED))
    blog = add_schedule(store, product="blog", next_run_at=T0 + 3 * MIN)
    assert [s.id for s in store.next_due_schedules(10)] == [soon.id, later.id, blog.id]
    assert [s.id for s in store.next_due_schedules(1)] == [soon.id]
    assert [s.id for s in store.next_due_schedules(10, before=T0 + 2 * MIN)] == [soon.id]
    assert [s.id for s in store.next_due_schedules(10, product_tag="blog")] == [blog.id]


def test_run_activity_changes_when_runs_are_created_start_and_end(store: Store) -> None:
    empty = store.run_activity(T0)
    assert (empty.latest_run_id, empty.latest_finished_at, empty.running, empty.queued) == (None, None, 0, 0)
    s = add_schedule(store)
    run_id = add_run(store, s, T0)
    created = store.run_activity(T0)
    assert (created.latest_run_id, created.queued, created.running) == (run_id, 1, 0)
    (run,) = store.acquire_runs("w1", 1, LEASE, T0)
    started = store.run_activity(T0)
    assert (started.queued, started.running) == (0, 1)
    store.finish_runs([Outcome(run.id, run.attempt, "w1", True, T0 + SEC, 5)], T0 + SEC)
    ended = store.run_activity(T0 + SEC)
    assert (ended.running, ended.latest_finished_at) == (0, T0 + SEC)
    assert store.run_activity(T0, product_tag="blog").latest_run_id is None


# ------------------------------------------------------------------------------- key scopes, login sessions


def test_a_key_keeps_its_scope(store: Store) -> None:
    for n, scope in enumerate(KeyScope):
        store.add_api_key(key(f"dtk_00000000000{n}", scope=scope))
        found = store.find_api_key(f"dtk_00000000000{n}")
        assert found is not None and found.scope is scope
    store.add_api_key(key("dtk_0000000000ff"))
    default = store.find_api_key("dtk_0000000000ff")
    assert default is not None and default.scope is KeyScope.ADMIN  # a record made without one: admin
    assert sorted(k.scope for k in store.list_api_keys()) == sorted([*KeyScope, KeyScope.ADMIN])


def login(k: ApiKey, token_hash: str = "a" * 64, at: datetime = T0, lasts: timedelta = HOUR) -> LoginSession:
    return LoginSession(token_hash=token_hash, key_id=k.id, created_at=at, expires_at=at + lasts)


def test_login_sessions_add_find_and_end(store: Store) -> None:
    reader = key(scope=KeyScope.READ, product_tag="shop")
    other = key("dtk_ba9876543210")
    store.add_api_key(reader)
    store.add_api_key(other)
    first, second, third = login(reader, "a" * 64), login(reader, "b" * 64), login(other, "c" * 64)
    for s in (first, second, third):
        store.add_login_session(s)
    assert store.find_login_session("a" * 64) == (first, reader)  # the session with its key, scope and limits
    assert store.find_login_session("d" * 64) is None

    store.delete_login_session("a" * 64)  # a logout
    store.delete_login_session("a" * 64)  # twice: nothing happens
    assert store.find_login_session("a" * 64) is None
    assert store.find_login_session("b" * 64) == (second, reader)

    assert store.delete_login_sessions(reader.id) == 1  # the key's revocation ends the rest of its sessions
    assert store.find_login_session("b" * 64) is None
    assert store.find_login_session("c" * 64) == (third, other)


def test_a_found_session_shows_expiry_and_revocation_and_expired_ones_are_swept(store: Store) -> None:
    k = key()
    store.add_api_key(k)
    old = login(k, "a" * 64, at=T0, lasts=HOUR)
    store.add_login_session(old)
    store.revoke_api_key(k.id, T0 + MIN)
    found = store.find_login_session("a" * 64)
    assert found is not None and found[1].revoked_at == T0 + MIN  # the caller sees the revocation
    store.add_login_session(login(k, "b" * 64, at=T0 + HOUR))  # a later login sweeps the expired one
    assert store.find_login_session("a" * 64) is None
    assert store.find_login_session("b" * 64) is not None


def test_migration_4_gives_keys_stored_before_it_the_admin_scope(backend: Backend) -> None:
    backend.migrate_to(3)  # a database of the release before scopes and login sessions
    made, prefix = new_key()
    insert = (
        "INSERT INTO api_keys (id, name, prefix, hash, product_tag, env, created_at) "
        "VALUES (:id, :name, :prefix, :hash, :product_tag, :env, :created_at)"
    )
    if backend.name == "postgres":
        insert = re.sub(r":(\w+)", r"%(\1)s", insert)
    old = {"id": "key_old", "name": "ci", "prefix": prefix, "hash": hash_key(made), "created_at": ms(T0)}
    backend.execute(insert, {**old, "product_tag": "shop", "env": None})

    store = backend.open()  # migrates to the latest version
    assert backend.snapshot()["versions"][-1] >= 4
    found = store.find_api_key(prefix)
    assert found is not None and found.scope is KeyScope.ADMIN and found.product_tag == "shop"
    checked = ApiKeys(store, FakeClock(T0)).verify(made)  # the old key still works, with every scope
    assert checked is not None and checked.scope.granted == (KeyScope.READ, KeyScope.WRITE, KeyScope.ADMIN)
    assert store.find_login_session("a" * 64) is None  # the sessions' table is there, empty


def test_migration_versions_are_unique_and_alike_on_both_backends() -> None:
    found = {b: [v for v, _ in load_migrations(f"ductape_jobs.store.{b}.migrations")] for b in ("sqlite", "postgres")}
    assert found["sqlite"] == found["postgres"]
    assert len(set(found["sqlite"])) == len(found["sqlite"])  # two NNNN_*.sql files never share a number
