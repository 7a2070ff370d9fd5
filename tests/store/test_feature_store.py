"""The store's feature-run methods (``Store.create_feature_run`` ... ``restart_feature_run``), on every backend.

Times are fixed; ``now`` is passed. Drivers are plain names (``d1``, ``d2``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from storekit import Backend, paged

from ductape_jobs.errors import ConflictError, NotFoundError
from ductape_jobs.features import EventResult, EventStatus, FeatureRun, FeatureRunStatus
from ductape_jobs.ids import new_id
from ductape_jobs.store import Store

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
LEASE = timedelta(seconds=30)


def feature_run(owner: str | None = "d1", **extra: Any) -> FeatureRun:
    fields: dict[str, Any] = {
        "id": new_id("feat"),
        "product_tag": "shop",
        "env": "dev",
        "feature_tag": "remind",
        "input": {"email": "ada@example.com", "n": [1, 2]},
        "status": FeatureRunStatus.RUNNING,
        "created_at": T0,
        "updated_at": T0,
        "session": {"user": {"id": "u1"}},
        "lease_owner": owner,
        "lease_expires_at": T0 + LEASE if owner else None,
        "events": [
            EventResult("lookup", "find", "function", 0),
            EventResult("notify", "mail", "notification", 1),
            EventResult("notify", "send_notification", "job", 2),
        ],
    }
    return FeatureRun(**{**fields, **extra})


def statuses(run: FeatureRun | None) -> dict[str, EventStatus]:
    assert run is not None
    return {e.event_tag: e.status for e in run.events}


def test_a_feature_run_is_stored_with_its_events_pending_in_plan_order(store: Store) -> None:
    run = feature_run()
    store.create_feature_run(run)
    got = store.get_feature_run(run.id)
    assert got is not None
    assert (got.product_tag, got.env, got.feature_tag, got.status) == (
        "shop",
        "dev",
        "remind",
        FeatureRunStatus.RUNNING,
    )
    assert got.input == run.input and got.session == {"user": {"id": "u1"}}
    assert (got.lease_owner, got.lease_expires_at, got.created_at) == ("d1", T0 + LEASE, T0)
    assert [(e.sequence_tag, e.event_tag, e.event_type, e.position) for e in got.events] == [
        ("lookup", "find", "function", 0),
        ("notify", "mail", "notification", 1),
        ("notify", "send_notification", "job", 2),
    ]
    assert all(e.status is EventStatus.PENDING and e.attempts == 0 for e in got.events)
    assert store.get_feature_run("feat_nope") is None


def test_the_same_id_twice_is_a_conflict_and_changes_nothing(store: Store) -> None:
    run = feature_run()
    store.create_feature_run(run)
    with pytest.raises(ConflictError):
        store.create_feature_run(feature_run(id=run.id, feature_tag="other"))
    got = store.get_feature_run(run.id)
    assert got is not None and got.feature_tag == "remind" and len(got.events) == 3


def test_claiming_respects_a_live_lease_and_takes_an_expired_one(store: Store) -> None:
    run = feature_run()
    store.create_feature_run(run)
    assert store.claim_feature_run(run.id, "d2", T0 + LEASE + 10 * SEC, T0 + SEC) is None  # d1 holds it
    again = store.claim_feature_run(run.id, "d1", T0 + 2 * LEASE, T0 + SEC)  # its own holder: extended
    assert again is not None and again.lease_expires_at == T0 + 2 * LEASE and len(again.events) == 3
    taken = store.claim_feature_run(run.id, "d2", T0 + 3 * LEASE, T0 + 2 * LEASE + SEC)  # expired
    assert taken is not None and taken.lease_owner == "d2"
    forced = store.claim_feature_run(run.id, "d3", T0 + 3 * LEASE, T0 + 2 * LEASE + SEC, take_over=True)
    assert forced is not None and forced.lease_owner == "d3"
    with pytest.raises(NotFoundError):
        store.claim_feature_run("feat_nope", "d1", T0 + LEASE, T0)


def test_an_unleased_run_is_claimed_and_a_finished_one_is_returned_as_it_is(store: Store) -> None:
    run = feature_run(owner=None)
    store.create_feature_run(run)
    claimed = store.claim_feature_run(run.id, "d1", T0 + LEASE, T0)
    assert claimed is not None and claimed.lease_owner == "d1"
    assert store.finish_feature_run(run.id, "d1", FeatureRunStatus.COMPLETED, T0 + SEC)
    finished = store.claim_feature_run(run.id, "d2", T0 + LEASE, T0 + 2 * SEC)
    assert finished is not None and finished.status is FeatureRunStatus.COMPLETED and finished.lease_owner is None


def test_event_attempts_are_counted_and_guarded_by_the_lease(store: Store) -> None:
    run = feature_run()
    store.create_feature_run(run)
    assert store.start_feature_event(run.id, "d2", "lookup", "find", T0) is None  # not the holder
    assert store.start_feature_event(run.id, "d1", "lookup", "find", T0) == 1
    assert store.finish_feature_event(run.id, "d1", "lookup", "find", EventStatus.RETRYING, T0, error="boom")
    retrying = store.get_feature_run(run.id)
    assert retrying is not None
    find = retrying.event("lookup", "find")
    assert (find.status, find.attempts, find.error, find.started_at, find.completed_at) == (
        EventStatus.RETRYING,
        1,
        "boom",
        T0,
        None,
    )
    assert store.start_feature_event(run.id, "d1", "lookup", "find", T0 + SEC) == 2
    assert not store.finish_feature_event(run.id, "d2", "lookup", "find", EventStatus.COMPLETED, T0 + SEC)
    output = {"title": "Launch", "at": [1, {"x": None}]}
    assert store.finish_feature_event(
        run.id, "d1", "lookup", "find", EventStatus.COMPLETED, T0 + 2 * SEC, output=output
    )
    # the same outcome recorded again (a retried COMMIT) is accepted and changes nothing
    assert store.finish_feature_event(
        run.id, "d1", "lookup", "find", EventStatus.COMPLETED, T0 + 2 * SEC, output=output
    )
    done = store.get_feature_run(run.id)
    assert done is not None
    find = done.event("lookup", "find")
    assert (find.status, find.attempts, find.output, find.error) == (EventStatus.COMPLETED, 2, output, None)
    assert (find.started_at, find.completed_at) == (T0, T0 + 2 * SEC)
    assert done.output == {"lookup": {"find": output}}
    assert store.start_feature_event(run.id, "d1", "lookup", "find", T0 + 3 * SEC) is None  # finished: never again


def test_a_job_event_keeps_its_job_id_and_no_output(store: Store) -> None:
    run = feature_run()
    store.create_feature_run(run)
    store.start_feature_event(run.id, "d1", "notify", "send_notification", T0)
    store.finish_feature_event(run.id, "d1", "notify", "send_notification", EventStatus.COMPLETED, T0, job_id="job_1")
    got = store.get_feature_run(run.id)
    assert got is not None
    event = got.event("notify", "send_notification")
    assert (event.status, event.job_id, event.output) == (EventStatus.COMPLETED, "job_1", None)
    assert got.output == {}  # a job event is void


def test_finishing_failed_skips_the_events_that_did_not_finish_and_releases_the_lease(store: Store) -> None:
    run = feature_run()
    store.create_feature_run(run)
    store.start_feature_event(run.id, "d1", "lookup", "find", T0)
    store.finish_feature_event(run.id, "d1", "lookup", "find", EventStatus.FAILED, T0, error="no such event")
    assert not store.finish_feature_run(run.id, "d2", FeatureRunStatus.FAILED, T0)  # not the holder
    assert store.finish_feature_run(run.id, "d1", FeatureRunStatus.FAILED, T0 + SEC, error="find failed")
    got = store.get_feature_run(run.id)
    assert got is not None
    assert (got.status, got.error, got.completed_at, got.lease_owner, got.lease_expires_at) == (
        FeatureRunStatus.FAILED,
        "find failed",
        T0 + SEC,
        None,
        None,
    )
    assert statuses(got) == {"find": EventStatus.FAILED, "mail": EventStatus.SKIPPED, "send_notification": "skipped"}
    assert got.event("notify", "mail").completed_at == T0 + SEC
    assert not store.finish_feature_run(run.id, "d1", FeatureRunStatus.COMPLETED, T0 + 2 * SEC)  # finished already
    assert not store.extend_feature_lease(run.id, "d1", T0 + LEASE)


def test_a_failed_run_restarts_with_its_unsuccessful_events_pending(store: Store) -> None:
    run = feature_run()
    store.create_feature_run(run)
    store.start_feature_event(run.id, "d1", "lookup", "find", T0)
    store.finish_feature_event(run.id, "d1", "lookup", "find", EventStatus.COMPLETED, T0, output=1)
    store.start_feature_event(run.id, "d1", "notify", "mail", T0)
    store.finish_feature_event(run.id, "d1", "notify", "mail", EventStatus.FAILED, T0, error="smtp down")
    with pytest.raises(ConflictError):
        store.restart_feature_run(run.id, T0)  # still running
    store.finish_feature_run(run.id, "d1", FeatureRunStatus.FAILED, T0, error="mail failed")
    restarted = store.restart_feature_run(run.id, T0 + SEC)
    assert (restarted.status, restarted.error, restarted.lease_owner, restarted.completed_at) == (
        FeatureRunStatus.RUNNING,
        None,
        None,
        None,
    )
    assert statuses(restarted) == {"find": "completed", "mail": "pending", "send_notification": "pending"}
    mail = restarted.event("notify", "mail")
    assert (mail.attempts, mail.error) == (1, None)  # the attempts made so far stay counted
    with pytest.raises(NotFoundError):
        store.restart_feature_run("feat_nope", T0)


def test_extending_a_lease_needs_to_hold_it(store: Store) -> None:
    run = feature_run()
    store.create_feature_run(run)
    assert store.extend_feature_lease(run.id, "d1", T0 + 2 * LEASE)
    assert not store.extend_feature_lease(run.id, "d2", T0 + 3 * LEASE)
    got = store.get_feature_run(run.id)
    assert got is not None and got.lease_expires_at == T0 + 2 * LEASE


def test_listing_is_newest_first_and_filters(store: Store) -> None:
    runs = [
        feature_run(created_at=T0 + i * SEC, updated_at=T0 + i * SEC, feature_tag="remind" if i % 2 else "signup")
        for i in range(5)
    ]
    for run in runs:
        store.create_feature_run(run)
    store.finish_feature_run(runs[3].id, "d1", FeatureRunStatus.COMPLETED, T0 + 9 * SEC)
    assert [r.id for r in store.list_feature_runs()] == [r.id for r in reversed(runs)]
    assert all(r.events == [] for r in store.list_feature_runs())  # listings leave the events out
    assert [r.id for r in store.list_feature_runs(feature_tag="remind")] == [runs[3].id, runs[1].id]
    assert [r.id for r in store.list_feature_runs(status=FeatureRunStatus.COMPLETED)] == [runs[3].id]
    assert [r.id for r in store.list_feature_runs(limit=2, offset=1)] == [runs[3].id, runs[2].id]


def test_listing_filters_by_product_and_env(store: Store) -> None:
    where = [("shop", "dev"), ("shop", "prd"), ("blog", "dev")]
    runs = [feature_run(created_at=T0 + i * SEC, product_tag=p, env=e) for i, (p, e) in enumerate(where)]
    for run in runs:
        store.create_feature_run(run)
    assert [r.id for r in store.list_feature_runs(product_tag="shop")] == [runs[1].id, runs[0].id]
    assert [r.id for r in store.list_feature_runs(env="dev")] == [runs[2].id, runs[0].id]
    assert [r.id for r in store.list_feature_runs(product_tag="shop", env="dev")] == [runs[0].id]
    assert [r.id for r in store.list_feature_runs(feature_tag="remind", product_tag="blog")] == [runs[2].id]
    assert store.list_feature_runs(product_tag="none") == []


def test_listing_after_a_feature_run_pages_through_every_run_once_in_order(store: Store) -> None:
    """Feature runs made at one instant (tied by their making) go by their ids, each once, under every filter (each
    query its own); a cursor outside the list's feature, product or env is not found, as an unknown one."""
    runs = [
        feature_run(
            created_at=T0 + (i // 3) * SEC,
            feature_tag="remind" if i % 2 else "signup",
            product_tag="shop" if i % 4 else "blog",
        )
        for i in range(10)
    ]
    for run in runs:
        store.create_feature_run(run)

    def ids(**flt: Any) -> list[str]:
        return [r.id for r in store.list_feature_runs(**flt)]

    for flt in ({}, {"feature_tag": "remind"}, {"product_tag": "shop"}, {"status": FeatureRunStatus.RUNNING}):
        whole = ids(**flt)
        assert len(whole) >= 4, flt
        assert paged(ids, 3, **flt) == whole, flt
        assert ids(**flt, after=whole[0], offset=1, limit=2) == whole[2:4], flt  # an offset counts past the cursor
    assert sorted(ids()) == sorted(r.id for r in runs)
    signup = next(r for r in runs if r.feature_tag == "signup" and r.product_tag == "shop")
    blog = next(r for r in runs if r.product_tag == "blog")
    for flt, outside in (({"feature_tag": "remind"}, signup.id), ({"product_tag": "shop"}, blog.id), ({}, "feat_none")):
        with pytest.raises(NotFoundError) as found:
            store.list_feature_runs(**flt, after=outside)
        assert found.value.kind == "feature run"


def test_racing_drivers_claim_an_expired_run_once(backend: Backend) -> None:
    stores = [backend.open() for _ in range(4)]
    run = feature_run()
    stores[0].create_feature_run(run)
    later = T0 + 2 * LEASE
    won: list[str] = []
    barrier = threading.Barrier(len(stores))

    def claim(i: int) -> None:
        barrier.wait()
        if stores[i].claim_feature_run(run.id, f"d{i + 10}", later + LEASE, later) is not None:
            won.append(f"d{i + 10}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    got = stores[0].get_feature_run(run.id)
    assert got is not None and got.lease_owner == won[0]


def test_a_lone_surrogate_in_an_events_output_is_kept_as_its_escapes_text(store: Store) -> None:
    """As a run's output: the feature run's answer encodes (it raised UnicodeEncodeError, a 500 over HTTP)."""
    import json

    run = feature_run()
    store.create_feature_run(run)
    assert store.start_feature_event(run.id, "d1", "lookup", "find", T0) == 1
    output = {"s": "a\ud800b", "e": "\U0001f600"}
    assert store.finish_feature_event(run.id, "d1", "lookup", "find", EventStatus.COMPLETED, T0, output=output)
    stored = store.get_feature_run(run.id)
    assert stored is not None and stored.event("lookup", "find").output == {"s": "a\\ud800b", "e": "\U0001f600"}
    json.dumps(stored.event("lookup", "find").output, ensure_ascii=False).encode()
