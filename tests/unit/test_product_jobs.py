"""Jobs belong to a product (issue 11): a tag is unique within its product, ``ductape.product("shop").jobs``
manages one product's jobs, a product's own job comes before a shared one, and jobs stored before products
owned them stay shared and keep working."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from ductape_jobs import AsyncDuctape, Ductape, FakeClock
from ductape_jobs.errors import ConflictError, NotFoundError, ValidationError
from ductape_jobs.models import ScheduleStatus


def _fn(dt: Ductape, seen: list[tuple[str, Any]]) -> None:
    for tag in ("a", "b", "shared"):

        @dt.function(tag)
        def record(input: dict[str, Any], ctx: Any, _tag: str = tag) -> None:
            seen.append((_tag, input.get("n")))


def _job(tag: str, event_tag: str, **more: Any) -> dict[str, Any]:
    return {"name": tag, "tag": tag, "event_type": "FUNCTION", "event_tag": event_tag, **more}


def test_two_products_have_jobs_of_the_same_tag_and_each_runs_its_own(dt: Ductape) -> None:
    seen: list[tuple[str, Any]] = []
    _fn(dt, seen)
    shop, blog = dt.product("shop").jobs, dt.product("blog").jobs
    made = shop.create(_job("sync", "a"))
    blog.create(_job("sync", "b"))
    assert made.product_tag == "shop"
    with pytest.raises(ConflictError, match="already exists in product 'shop'"):
        shop.create(_job("sync", "a"))

    assert [(j.product_tag, j.event_tag) for j in shop.fetch_all()] == [("shop", "a")]
    assert [(j.product_tag, j.event_tag) for j in blog.fetchAll()] == [("blog", "b")]
    assert sorted(j.product_tag or "" for j in dt.job.fetch_all()) == ["blog", "shop"]  # unbound: every job

    shop.schedule({"env": "prd", "event": "sync", "input": {"n": 1}})  # bound: product_tag may be left out
    dt.job.schedule({"env": "prd", "product_tag": "blog", "event": "sync", "input": {"n": 2}})
    dt.drain()
    assert sorted(seen) == [("a", 1), ("b", 2)]


def test_a_products_own_job_comes_before_the_shared_one(dt: Ductape) -> None:
    seen: list[tuple[str, Any]] = []
    _fn(dt, seen)
    dt.job.create(_job("sync", "shared"))  # no product: shared
    dt.product("shop").jobs.create(_job("sync", "a"))
    dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "sync", "input": {"n": 1}})
    dt.job.schedule({"env": "prd", "product_tag": "other", "event": "sync", "input": {"n": 2}})
    dt.drain()
    assert sorted(seen) == [("a", 1), ("shared", 2)]
    assert dt.product("shop").jobs.fetch("sync").event_tag == "a"
    assert dt.product("other").jobs.fetch("sync").product_tag is None  # what product other's schedules run
    assert dt.product("other").jobs.fetch_all() == []  # it has no job of its own
    assert dt.job.fetch("sync").product_tag is None  # unbound: the shared one


def test_unbound_lookups_find_the_one_products_job_or_say_which_to_name(dt: Ductape) -> None:
    dt.product("shop").jobs.create(_job("sync", "a"))
    assert dt.job.fetch("sync").product_tag == "shop"  # one product has it: found
    dt.job.update("sync", {"name": "Sync"})
    assert dt.product("shop").jobs.fetch("sync").name == "Sync"
    dt.product("blog").jobs.create(_job("sync", "b"))
    with pytest.raises(ValidationError) as info:
        dt.job.fetch("sync")
    assert info.value.field == "tag" and "'shop'" in info.value.rule and "'blog'" in info.value.rule
    with pytest.raises(NotFoundError):
        dt.product("shop").jobs.fetch("nope")


def test_a_bound_client_refuses_another_products_request(dt: Ductape) -> None:
    shop = dt.product("shop").jobs
    with pytest.raises(ValidationError) as info:
        shop.create(_job("x", "a", product_tag="blog"))
    assert info.value.field == "product_tag"
    shop.create(_job("x", "a"))
    with pytest.raises(ValidationError) as info:
        shop.schedule({"env": "prd", "product_tag": "blog", "event": "x"})
    assert info.value.field == "product_tag"
    assert dt.job.list() == []
    with pytest.raises(ValidationError) as info:
        dt.product("no spaces")
    assert info.value.field == "product_tag"
    with pytest.raises(ValidationError) as info:
        shop.update("x", {"product_tag": "blog"})
    assert info.value.field == "product_tag"


def test_the_client_can_be_bound_to_a_product(tmp_path: Path, clock: FakeClock) -> None:
    with Ductape(f"sqlite:///{tmp_path / 'j.db'}", clock=clock, product="shop") as dt:
        dt.job.create(_job("sync", "a"))
        assert dt.product.jobs is dt.job and dt.product.tag == "shop"  # the seeds' ductape.product.jobs
        assert dt.product.jobs.fetch("sync").product_tag == "shop"
        assert [j.tag for j in dt.product("blog").jobs.fetch_all()] == []


def test_a_product_job_names_an_event_its_product_declares(dt: Ductape) -> None:
    dt.products.add(
        {
            "tag": "shop",
            "envs": ["prd"],
            "apps": {"crm": {"actions": {"sync": {"path": "/sync"}}, "envs": {"prd": {"base_url": "http://x"}}}},
        }
    )
    before = dt.job.fetch_all()
    with pytest.raises(ValidationError) as info:
        dt.product("shop").jobs.create(_job("s", "crm:nope", event_type="ACTION"))
    assert info.value.field == "event_tag" and "nope" in info.value.rule
    with pytest.raises(ValidationError) as info:
        dt.product("blog").jobs.create(_job("s", "crm:sync", event_type="ACTION"))
    assert info.value.field == "product_tag" and "not declared" in info.value.rule
    assert dt.job.fetch_all() == before
    made = dt.product("shop").jobs.create(_job("s", "crm:sync", event_type="ACTION"))
    assert made.product_tag == "shop"
    with pytest.raises(ValidationError) as info:
        dt.product("shop").jobs.update("s", {"event_tag": "crm:gone"})
    assert info.value.field == "event_tag"


def test_deleting_a_products_job_cancels_only_its_schedules(dt: Ductape) -> None:
    _fn(dt, [])
    dt.product("shop").jobs.create(_job("sync", "a", intervals=60_000, executions=0))
    dt.job.create(_job("sync", "shared", intervals=60_000, executions=0))
    mine = dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "sync"}).job_id
    theirs = dt.job.schedule({"env": "prd", "product_tag": "blog", "event": "sync"}).job_id
    dt.product("shop").jobs.delete("sync")
    assert dt.job.get(mine).status is ScheduleStatus.CANCELLED
    assert dt.job.get(theirs).status is ScheduleStatus.ACTIVE
    assert dt.product("shop").jobs.fetch("sync").product_tag is None  # shop now finds the shared one


def test_a_cached_shared_job_is_not_used_once_the_product_has_its_own(tmp_path: Path, clock: FakeClock) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    seen: list[tuple[str, Any]] = []
    with Ductape(url, clock=clock) as one, Ductape(url, clock=clock) as two:
        _fn(one, seen)
        one.job.create(_job("sync", "shared"))
        one.job.schedule({"env": "prd", "product_tag": "shop", "event": "sync", "input": {"n": 1}})  # cached
        two.product("shop").jobs.create(_job("sync", "a"))  # another client
        one.job.schedule({"env": "prd", "product_tag": "shop", "event": "sync", "input": {"n": 2}})
        one.drain()
    assert sorted(seen) == [("a", 2), ("shared", 1)]


def test_async_product_jobs(tmp_path: Path, clock: FakeClock) -> None:
    async def go() -> list[str | None]:
        async with AsyncDuctape(f"sqlite:///{tmp_path / 'j.db'}", clock=clock) as adt:
            await adt.product("shop").jobs.create(_job("sync", "a"))
            await adt.product.jobs.create(_job("sync", "b"))
            return [j.product_tag for j in await adt.job.fetch_all()]

    assert sorted(asyncio.run(go()), key=str) == [None, "shop"]


def test_a_schedules_app_names_the_app_of_an_action_and_nothing_else(dt: Ductape, tmp_path: Path) -> None:
    """A seed's ``app`` on a schedule: found by a fidelity probe, an action that two apps have could not be a
    product's job (refused at create, though the schedule's ``app`` settles it); an ``app`` other than the one the
    job's event names was passed over; a database's tag given as ``app`` chose the database action's database, and
    a FUNCTION's ``app`` was passed over. Each is now taken or refused, naming ``app``; nothing is stored."""

    def app() -> dict[str, Any]:
        return {
            "envs": {"prd": {"base_url": "http://127.0.0.1:9"}},
            "actions": {"sync": {"method": "GET", "path": "/"}},
        }

    database = {"envs": {"prd": f"sqlite:///{tmp_path / 'db.sqlite'}"}, "actions": {"ins": {"sql": "SELECT 1"}}}
    other = {"envs": {"prd": {"base_url": "http://127.0.0.1:9"}}, "actions": {"other": {"method": "GET", "path": "/"}}}
    dt.products.add(
        {
            "tag": "shop",
            "envs": ["prd"],
            "apps": {"a1": app(), "a2": app(), "a4": other},
            "databases": {"main": database},
        }
    )
    jobs = dt.product("shop").jobs
    jobs.create({"name": "J", "tag": "either", "event_type": "ACTION", "event_tag": "sync"})  # each schedule says
    jobs.create({"name": "K", "tag": "first", "event_type": "ACTION", "event_tag": "a1:sync"})
    jobs.create({"name": "D", "tag": "db", "event_type": "DATABASE_ACTION", "event_tag": "main:ins"})
    jobs.create({"name": "F", "tag": "fn", "event_type": "FUNCTION", "event_tag": "fn"})
    base = {"env": "prd", "product_tag": "shop"}
    assert dt.job.schedule({**base, "event": "either", "app": "a2"}).status.value == "queued"
    assert dt.job.schedule({**base, "event": "first", "app": "a1"}).status.value == "queued"
    refused = [
        ({"event": "either"}, "event", "action 'sync' exists in apps ['a1', 'a2']; write it as app_tag:sync or give "
         "the schedule's app"),
        ({"event": "either", "app": "a3"}, "app", "product 'shop' defines no app 'a3' (it has: a1, a2, a4)"),
        ({"event": "either", "app": "a4"}, "app", "defines no action 'a4:sync' (it has: a4:other)"),
        ({"event": "first", "app": "a2"}, "app", "is 'a2', but the event 'a1:sync' is app 'a1''s"),
        ({"event": "db", "app": "main"}, "app", "this event is a DATABASE_ACTION"),
        ({"event": "fn", "app": "a1"}, "app", "names the app of an ACTION event; this event is a FUNCTION"),
    ]  # fmt: skip
    for request, field, rule in refused:
        with pytest.raises(ValidationError) as raised:
            dt.job.schedule({**base, **request})
        assert raised.value.field == field and rule in raised.value.rule, (request, raised.value)
    assert len(dt.job.list()) == 2  # the two taken


def test_a_run_stored_with_an_app_the_rule_now_refuses_still_runs(dt: Ductape, tmp_path: Path) -> None:
    """The rule on ``app`` is a schedule's, when it is made: a DATABASE_ACTION schedule stored with ``app`` by an
    earlier release runs as it did (checked at run time too, each of its runs failed for good: a review)."""
    database = {"envs": {"prd": f"sqlite:///{tmp_path / 'db.sqlite'}"}, "actions": {"one": {"sql": "SELECT 1 AS n"}}}
    dt.products.add({"tag": "shop", "envs": ["prd"], "databases": {"main": database}})
    dt.product("shop").jobs.create({"name": "D", "tag": "db", "event_type": "DATABASE_ACTION", "event_tag": "main:one"})
    with mock.patch("ductape_jobs.products.feature_plan.check_app"):  # as an earlier release stored it
        dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "db", "app": "main"})
    assert dt.drain().completed == 1


def test_a_feature_events_app_names_the_app_of_an_action_and_nothing_else(dt: Ductape, tmp_path: Path) -> None:
    """The rule a schedule's ``app`` follows, for a feature's events as the product is added (a review found it
    off for them: a DATABASE_ACTION event's ``app`` chose its database)."""
    database = {"envs": {"prd": f"sqlite:///{tmp_path / 'db.sqlite'}"}, "actions": {"one": {"sql": "SELECT 1 AS n"}}}
    event = {"type": "DATABASE_ACTION", "event": "one", "app": "main", "input": {}, "retries": 0, "allow_fail": False}
    feature = {"input": {}, "sequence": [{"sequence_tag": "s", "parents": [], "events": [event]}]}
    product = {"tag": "shop", "envs": ["prd"], "databases": {"main": database}, "features": {"f": feature}}
    with pytest.raises(ValidationError) as raised:
        dt.products.add(product)
    assert raised.value.field.endswith("sequence[0].events[0].app"), raised.value.field
    assert raised.value.rule == "names the app of an ACTION event; this event is a DATABASE_ACTION"
    del event["app"]
    dt.products.add(product)  # without it: taken


def test_an_update_its_live_schedules_could_not_run_is_refused(dt: Ductape, tmp_path: Path) -> None:
    """A shared job's event changed to one a product it runs in does not declare (a probe: accepted, and every later
    run of its live schedules failed for good), or a job with schedules naming an ``app`` changed to an event that
    takes none: refused, naming the field and the schedules' product, nothing written. A schedule that will not run
    it (cancelled; a one-off whose run is made: the run keeps its event) does not hold the change back, nor does one
    elsewhere that can run it."""
    app = {"envs": {"prd": {"base_url": "http://127.0.0.1:9"}}, "actions": {"sync": {"method": "GET", "path": "/"}}}
    dt.products.add({"tag": "shop", "envs": ["prd"], "apps": {"a1": app}})
    dt.products.add({"tag": "blog", "envs": ["prd"], "apps": {"b1": app}})
    dt.job.create(
        {"name": "S", "tag": "s", "event_type": "FUNCTION", "event_tag": "fn", "intervals": 60_000, "executions": 0}
    )
    live = dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "s"}).job_id
    with pytest.raises(ValidationError) as raised:
        dt.job.update("s", {"event_type": "ACTION", "event_tag": "b1:sync"})
    assert raised.value.field == "event_tag"
    assert "its active or paused schedules in product 'shop', env 'prd' could not run it" in raised.value.rule
    assert (dt.job.fetch("s").event_type.value, dt.job.fetch("s").event_tag) == ("function", "fn")  # as it was
    dt.job.cancel(live)
    dt.job.schedule({"env": "prd", "product_tag": "blog", "event": "s"})
    assert dt.job.update("s", {"event_type": "ACTION", "event_tag": "b1:sync"}).event_tag == "b1:sync"

    shop = dt.product("shop").jobs
    shop.create(
        {
            "name": "A",
            "tag": "act",
            "event_type": "ACTION",
            "event_tag": "a1:sync",
            "intervals": 60_000,
            "executions": 0,
        }
    )
    dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "act", "app": "a1"})
    with pytest.raises(ValidationError) as raised:
        shop.update("act", {"event_type": "FUNCTION", "event_tag": "fn"})
    assert raised.value.field == "event_tag" and "app 'a1'" in raised.value.rule
    assert "names the app of an ACTION event; this event is a FUNCTION" in raised.value.rule
    assert shop.fetch("act").event_type.value == "action"
    assert shop.update("act", {"name": "Renamed"}).name == "Renamed"  # the event unchanged: not checked


@pytest.mark.parametrize("bad", [5, True, {"a": 1}, ["x"], None])
def test_a_lookup_by_something_other_than_text_is_a_validation_error(dt: Ductape, bad: Any) -> None:
    """A job's tag, a schedule's or a run's id that is not text reached the store: PostgreSQL answered "operator does
    not exist" (a StoreError, HTTP 503), SQLite a binding error or "not found". It is now refused naming it."""
    calls = {
        "tag": [dt.job.fetch, lambda t: dt.job.update(t, {"name": "x"}), dt.job.delete],
        "job_id": [dt.job.get, dt.job.pause, dt.job.resume, dt.job.cancel, dt.job.trigger, dt.job.history,
                   lambda i: dt.job.reschedule(i, {"every": 60_000}), lambda i: dt.job.runs(job_id=i or 0)],
        "run_id": [dt.job.run, dt.job.retry],
        "job_tag": [lambda t: dt.job.runs(job_tag=t or 0), lambda t: dt.job.list(job_tag=t or 0)],
    }  # fmt: skip
    for field, fns in calls.items():
        for fn in fns:
            with pytest.raises(ValidationError) as raised:
                fn(bad)
            assert (raised.value.field, raised.value.rule) == (field, "must be text"), (field, fn)
