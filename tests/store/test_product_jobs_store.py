"""Jobs keyed by (product, tag) on both backends, and migration 6: the jobs stored before it stay shared."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from storekit import Backend

from ductape_jobs import Ductape, FakeClock
from ductape_jobs.engine.scheduler import Scheduler
from ductape_jobs.errors import ConflictError, NotFoundError, StaleJobError
from ductape_jobs.ids import new_id
from ductape_jobs.inputs import JobDefinition
from ductape_jobs.models import JobEventTypes, RunFilter, Schedule, ScheduleStatus
from ductape_jobs.store import Store
from ductape_jobs.store.codec import ms

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _job(tag: str, product: str | None, event_tag: str = "fn") -> JobDefinition:
    return JobDefinition(name=tag, tag=tag, product_tag=product, event_type=JobEventTypes.FUNCTION, event_tag=event_tag)


def _schedule(job_tag: str, product: str, job_product: str) -> Schedule:
    return Schedule(
        id=new_id("job"),
        job_tag=job_tag,
        env="prd",
        product_tag=product,
        input={},
        retries=0,
        status=ScheduleStatus.ACTIVE,
        start_at=T0,
        next_run_at=T0,
        run_count=0,
        created_at=T0,
        job_product=job_product,
    )


def test_a_tag_is_unique_within_its_product(store: Store) -> None:
    store.create_job(_job("sync", "shop", "a"), T0)
    store.create_job(_job("sync", "blog", "b"), T0)
    store.create_job(_job("sync", None, "s"), T0)
    with pytest.raises(ConflictError):
        store.create_job(_job("sync", "shop"), T0)
    assert [(j.product_tag, j.event_tag) for j in store.jobs_tagged("sync")] == [
        (None, "s"),
        ("blog", "b"),
        ("shop", "a"),
    ]
    assert [j.event_tag for j in store.list_jobs("shop")] == ["a"]
    assert [j.event_tag for j in store.list_jobs("")] == ["s"]
    assert len(store.list_jobs()) == 3
    found = store.find_job("shop", "sync")
    assert found is not None and found.event_tag == "a"
    found = store.find_job("other", "sync")
    assert found is not None and found.product_tag is None  # the shared one
    store.update_job("shop", "sync", {"event_tag": "a2"}, T0)
    assert [j.event_tag for j in store.jobs_tagged("sync")] == ["s", "b", "a2"]  # only shop's changed
    store.delete_job("blog", "sync", T0)
    with pytest.raises(NotFoundError):
        store.delete_job("blog", "sync", T0)
    assert store.get_job("blog", "sync") is None and store.get_job("shop", "sync") is not None


def test_a_schedule_runs_the_job_it_names_and_keeps_it(store: Store) -> None:
    store.create_job(_job("sync", "shop", "a"), T0)
    store.create_job(_job("sync", None, "s"), T0)
    own, shared = _schedule("sync", "shop", "shop"), _schedule("sync", "blog", "")
    store.add_schedules([own, shared], [])
    got = store.get_schedule(own.id)
    assert got is not None and got.job_product == "shop"
    with pytest.raises(ConflictError):  # shop's job has a live schedule
        store.delete_job("shop", "sync", T0)
    with pytest.raises(NotFoundError):  # blog has no job of its own
        store.add_schedules([_schedule("sync", "blog", "blog")], [])
    # a schedule planned on the shared job while its product has its own job by now: planned again
    with pytest.raises(StaleJobError):
        store.add_schedules([_schedule("sync", "shop", "")], [])
    Scheduler(store, FakeClock(T0)).tick()  # the runs copy the event of the job each schedule names
    ran = {(r.product_tag, r.event_tag) for r in store.list_runs(RunFilter())}
    assert ran == {("shop", "a"), ("blog", "s")}


def test_migration_6_keeps_older_jobs_shared_and_working(backend: Backend) -> None:
    backend.migrate_to(5)  # a database of the release before jobs belonged to products
    insert = (
        "INSERT INTO jobs (tag, name, event_type, event_tag, executions, intervals, start_at, created_at, updated_at)"
        " VALUES (:tag, :name, :event_type, :event_tag, 0, 0, NULL, :now, :now)"
    )
    if backend.name == "postgres":
        insert = re.sub(r":(\w+)", r"%(\1)s", insert)
    backend.execute(
        insert, {"tag": "report", "name": "Report", "event_type": "function", "event_tag": "fn", "now": ms(T0)}
    )

    store = backend.open()  # migrates to the latest version
    assert backend.snapshot()["versions"][-1] >= 6
    old = store.get_job("", "report")
    assert old is not None and old.product_tag is None
    seen: list[str] = []
    dt = Ductape(store, clock=FakeClock(T0))

    @dt.function("fn")
    def fn(input: dict[str, Any], ctx: Any) -> None:
        seen.append(ctx.run_id)

    dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "report"})
    assert dt.drain().completed == 1 and len(seen) == 1
    dt.product("shop").jobs.create({"name": "R", "tag": "report", "event_type": "FUNCTION", "event_tag": "fn"})
    assert {j.product_tag for j in dt.job.fetch_all()} == {None, "shop"}
